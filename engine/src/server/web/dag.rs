//! The picture of a run's DAG: steps as boxes coloured by outcome, and an
//! arrow for each data connection, laid out in columns from left to right.
//!
//! The arrows come from what the run store recorded with each step, not
//! from the pipeline file, which may have changed since the run:
//!
//! - a step that started has a key detail whose inputs name their producer
//!   (`step.output`), and that is the arrow;
//! - without a key detail, an input's content hash is matched to the
//!   outputs of the run's other steps.
//!
//! NOTE: two kinds of edge cannot be drawn from the record. `after:`
//! ordering constraints carry no data and are not stored, and a step that
//! never started (skipped, pending) recorded no inputs. Such steps are drawn
//! in an extra last column without arrows, and the caption explains why.
//!
//! Layout: a step's column is one more than the highest column of the
//! steps it reads from. Within a column, steps are ordered by the mean row
//! of their producers (the barycenter heuristic), then by start order,
//! which keeps most arrows short and uncrossed for pipelines of this size.
//! An arrow between neighbouring columns is a flat curve. An arrow that
//! skips columns arcs upwards, higher the more columns it skips, so that it
//! passes above the boxes of its own row instead of behind them. Arrows
//! between rows may still cross boxes of other rows.

use super::format;
use crate::runstore::{RunDetail, StepStatus};
use maud::{Markup, html};
use std::collections::BTreeMap;

const NODE_WIDTH: f64 = 156.0;
const NODE_HEIGHT: f64 = 50.0;
const COLUMN_GAP: f64 = 44.0;
/// How far above its row an arrow that skips one column rises, and how
/// much higher each further skipped column lifts it.
const ARC_LIFT: f64 = 50.0;
const ARC_STEP: f64 = 14.0;
const ROW_GAP: f64 = 18.0;
const MARGIN: f64 = 16.0;
/// The characters of a step id that fit in a box.
const ID_CHARS: usize = 19;

/// A step of the picture.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    pub(super) id: String,
    pub(super) status: StepStatus,
    pub(super) duration_ms: Option<i64>,
    /// Whether the record contains the step's inputs. It is false for steps
    /// that never started.
    pub(super) inputs_known: bool,
}

/// A data connection: `from` produced an artifact that `to` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edge {
    pub(super) from: usize,
    pub(super) to: usize,
    /// `output → input` pairs, for the tooltip.
    pub(super) labels: Vec<String>,
}

/// The steps and data connections of one run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Dag {
    pub(super) nodes: Vec<Node>,
    pub(super) edges: Vec<Edge>,
}

impl Dag {
    /// Derives the DAG from a run's record. A step id recorded more than
    /// once is one node with its last status.
    pub(super) fn from_run(run: &RunDetail) -> Dag {
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        let mut nodes: Vec<Node> = Vec::new();
        for step in &run.steps {
            let node = Node {
                id: step.step_id.clone(),
                status: step.status,
                duration_ms: step.duration_ms,
                inputs_known: step.key_detail.is_some() || !step.inputs.is_empty(),
            };
            match index.get(step.step_id.as_str()) {
                Some(&i) => nodes[i] = node,
                None => {
                    index.insert(&step.step_id, nodes.len());
                    nodes.push(node);
                }
            }
        }

        let mut edges: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
        for step in &run.steps {
            let to = index[step.step_id.as_str()];
            for (from, label) in producers(run, step, &index) {
                if from != to {
                    let labels = edges.entry((from, to)).or_default();
                    if !labels.contains(&label) {
                        labels.push(label);
                    }
                }
            }
        }
        let edges = edges
            .into_iter()
            .map(|((from, to), labels)| Edge { from, to, labels })
            .collect();
        Dag { nodes, edges }
    }

    /// Returns each node's column and row.
    pub(super) fn layout(&self) -> Vec<(usize, usize)> {
        let n = self.nodes.len();
        let mut column = vec![0usize; n];
        // Edges point from earlier to later started steps in a valid run,
        // but a fixed number of passes keeps a malformed record finite.
        for _ in 0..n {
            let mut changed = false;
            for edge in &self.edges {
                if column[edge.to] < column[edge.from] + 1 {
                    column[edge.to] = column[edge.from] + 1;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let last = (0..n)
            .filter(|&i| self.nodes[i].inputs_known)
            .map(|i| column[i])
            .max()
            .map_or(0, |c| c + 1);
        for (i, node) in self.nodes.iter().enumerate() {
            let has_edges = self.edges.iter().any(|e| e.from == i || e.to == i);
            if !node.inputs_known && !has_edges {
                column[i] = last;
            }
        }

        let columns = column.iter().max().map_or(0, |c| c + 1);
        let mut row = vec![0usize; n];
        for c in 0..columns {
            let mut members: Vec<(f64, usize)> = (0..n)
                .filter(|&i| column[i] == c)
                .map(|i| (self.barycenter(i, &row, &column), i))
                .collect();
            members.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (r, (_, i)) in members.into_iter().enumerate() {
                row[i] = r;
            }
        }
        column.into_iter().zip(row).collect()
    }

    /// Returns the mean row of a node's producers in earlier columns, or
    /// its start position when it has none.
    fn barycenter(&self, node: usize, row: &[usize], column: &[usize]) -> f64 {
        let rows: Vec<f64> = self
            .edges
            .iter()
            .filter(|e| e.to == node && column[e.from] < column[node])
            .map(|e| row[e.from] as f64)
            .collect();
        if rows.is_empty() {
            node as f64
        } else {
            rows.iter().sum::<f64>() / rows.len() as f64
        }
    }

    /// Returns whether some step's inputs are unknown, which the caption
    /// explains.
    pub(super) fn has_unknown_inputs(&self) -> bool {
        self.nodes.iter().any(|node| !node.inputs_known)
    }

    /// Renders the DAG as SVG. Each box links to the step's row of the
    /// steps table (`#step-ID`).
    pub(super) fn svg(&self) -> Markup {
        let geometry = Geometry::new(self);
        html! {
            svg.dag viewBox={ "0 0 " (geometry.width) " " (geometry.height) }
                width=(geometry.width) height=(geometry.height)
                role="img" aria-label="The run's steps and the data connections between them" {
                defs {
                    marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"
                        markerHeight="7" orient="auto-start-reverse" {
                        path.arrowhead d="M 0 0 L 10 5 L 0 10 z" {}
                    }
                }
                @for edge in &self.edges {
                    (self.edge_path(&geometry, edge))
                }
                @for (i, node) in self.nodes.iter().enumerate() {
                    (node_box(node, geometry.position(i)))
                }
            }
        }
    }

    /// Draws the arrow of one edge, from the right side of the producer's
    /// box to the left side of the consumer's.
    fn edge_path(&self, geometry: &Geometry, edge: &Edge) -> Markup {
        let (x1, y1) = geometry.position(edge.from);
        let (x2, y2) = geometry.position(edge.to);
        let (x1, y1) = (x1 + NODE_WIDTH, y1 + NODE_HEIGHT / 2.0);
        let y2 = y2 + NODE_HEIGHT / 2.0;
        let (bend, lift) = match geometry.skipped(edge) {
            0 => (((x2 - x1) / 2.0).max(24.0), 0.0),
            n => (COLUMN_GAP, arc_lift(n)),
        };
        html! {
            path.edge d={ "M " (x1) " " (y1) " C " (x1 + bend) " " (y1 - lift) ", "
                (x2 - bend) " " (y2 - lift) ", " (x2 - 1.0) " " (y2) }
                marker-end="url(#arrow)" {
                title {
                    (self.nodes[edge.from].id) " → " (self.nodes[edge.to].id) ": "
                    (edge.labels.join(", "))
                }
            }
        }
    }
}

/// The positions of a laid-out DAG's boxes, in SVG user units.
struct Geometry {
    /// Each node's column and row.
    places: Vec<(usize, usize)>,
    /// The number of rows of the tallest column.
    rows: usize,
    /// The space above the first row that arcs need.
    top: f64,
    width: f64,
    height: f64,
}

impl Geometry {
    fn new(dag: &Dag) -> Geometry {
        let places = dag.layout();
        let columns = places.iter().map(|p| p.0).max().map_or(0, |c| c + 1);
        let rows = places.iter().map(|p| p.1).max().map_or(0, |r| r + 1);
        let mut geometry = Geometry {
            places,
            rows,
            top: 0.0,
            width: 2.0 * MARGIN
                + columns as f64 * NODE_WIDTH
                + columns.saturating_sub(1) as f64 * COLUMN_GAP,
            height: 0.0,
        };
        // A cubic curve rises to three quarters of its control points' lift.
        geometry.top = dag
            .edges
            .iter()
            .map(|e| geometry.skipped(e))
            .filter(|&n| n > 0)
            .map(|n| arc_lift(n) * 0.75 - NODE_HEIGHT / 2.0)
            .fold(0.0, f64::max);
        geometry.height = geometry.top
            + 2.0 * MARGIN
            + rows as f64 * NODE_HEIGHT
            + rows.saturating_sub(1) as f64 * ROW_GAP;
        geometry
    }

    /// Returns the top-left corner of a node's box. Shorter columns are
    /// centred against the tallest.
    fn position(&self, node: usize) -> (f64, f64) {
        let (column, row) = self.places[node];
        let column_rows = self.places.iter().filter(|p| p.0 == column).count();
        let shift = (self.rows - column_rows) as f64 * (NODE_HEIGHT + ROW_GAP) / 2.0;
        let x = MARGIN + column as f64 * (NODE_WIDTH + COLUMN_GAP);
        let y = self.top + MARGIN + shift + row as f64 * (NODE_HEIGHT + ROW_GAP);
        (x, y)
    }

    /// Returns how many columns an edge passes over.
    fn skipped(&self, edge: &Edge) -> usize {
        self.places[edge.to]
            .0
            .saturating_sub(self.places[edge.from].0 + 1)
    }
}

/// Draws a step's box at `(x, y)`, linked to its row of the steps table.
fn node_box(node: &Node, (x, y): (f64, f64)) -> Markup {
    html! {
        a href={ "#step-" (node.id) } {
            g class={ "node " (status_class(node.status)) } {
                title { (node.id) ": " (status_text(node.status)) }
                rect x=(x) y=(y) width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="8" {}
                text.step x=(x + 12.0) y=(y + 21.0) { (clip(&node.id)) }
                text.outcome x=(x + 12.0) y=(y + 39.0) {
                    (status_text(node.status))
                    @if let Some(ms) = node.duration_ms {
                        " · " (format::duration_ms(ms))
                    }
                }
            }
        }
    }
}

/// Returns the height of the control points of an arrow that skips `n`
/// columns.
fn arc_lift(n: usize) -> f64 {
    ARC_LIFT + ARC_STEP * (n as f64 - 1.0)
}

/// Lists the producers of a step's inputs as (node, `output → input`).
fn producers(
    run: &RunDetail,
    step: &crate::runstore::StepRunDetail,
    index: &BTreeMap<&str, usize>,
) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    if let Some(inputs) = step
        .key_detail
        .as_ref()
        .and_then(|detail| detail.get("inputs"))
        .and_then(|inputs| inputs.as_object())
    {
        for (input, detail) in inputs {
            let Some(from) = detail.get("from").and_then(|f| f.as_str()) else {
                continue;
            };
            // A step id never contains a dot, so the first one ends it.
            let (producer, output) = from.split_once('.').unwrap_or((from, ""));
            if let Some(&i) = index.get(producer) {
                found.push((i, format!("{output} → {input}")));
            }
        }
        return found;
    }
    for input in &step.inputs {
        let producer = run.steps.iter().find_map(|other| {
            let output = other
                .outputs
                .iter()
                .find(|o| o.artifact.hash == input.hash)?;
            Some((index[other.step_id.as_str()], &output.output))
        });
        if let Some((i, output)) = producer {
            found.push((i, format!("{output} → {}", input.input)));
        }
    }
    found
}

/// Returns the CSS class of a step status, shared by the boxes, the legend
/// and the status badges.
pub(super) fn status_class(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "st-pending",
        StepStatus::Running => "st-running",
        StepStatus::Succeeded => "st-succeeded",
        StepStatus::Cached => "st-cached",
        StepStatus::Failed => "st-failed",
        StepStatus::Skipped => "st-skipped",
        StepStatus::Cancelled => "st-cancelled",
        StepStatus::Interrupted => "st-interrupted",
    }
}

/// Returns the legend's word for a step status: "ran" for a step that ran
/// and succeeded, its stored name otherwise.
pub(super) fn status_text(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "ran",
        other => other.as_str(),
    }
}

/// Renders the legend: one swatch per step status.
pub(super) fn legend() -> Markup {
    html! {
        ul.legend aria-label="Step outcomes" {
            @for status in StepStatus::ALL {
                li { span class={ "swatch " (status_class(*status)) } {} (legend_text(*status)) }
            }
        }
    }
}

fn legend_text(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "pending: waiting for its inputs",
        StepStatus::Running => "running",
        StepStatus::Succeeded => "ran and succeeded",
        StepStatus::Cached => "cached: result taken from the cache",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped: a step it depends on failed",
        StepStatus::Cancelled => "cancelled or timed out",
        StepStatus::Interrupted => "interrupted: the process stopped",
    }
}

fn clip(id: &str) -> String {
    if id.chars().count() <= ID_CHARS {
        id.to_string()
    } else {
        let mut short: String = id.chars().take(ID_CHARS - 1).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runstore::{
        ArtifactRecord, InputRecord, OutputRecord, RunStatus, RunSummary, StepRunDetail,
    };
    use flowrun_artifacts::ArtifactKind;

    fn step(id: &str, status: StepStatus) -> StepRunDetail {
        StepRunDetail {
            id: 0,
            step_id: id.to_string(),
            step_name: id.to_string(),
            status,
            attempts: 1,
            started_at: String::new(),
            ended_at: None,
            duration_ms: Some(5),
            cache_key: None,
            miss_reason: None,
            error: None,
            key_detail: Some(serde_json::json!({"inputs": {}})),
            params: Default::default(),
            metrics: Vec::new(),
            tags: Default::default(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn reads(mut step: StepRunDetail, inputs: &[(&str, &str)]) -> StepRunDetail {
        let map: serde_json::Map<String, serde_json::Value> = inputs
            .iter()
            .map(|(input, from)| (input.to_string(), serde_json::json!({"from": from})))
            .collect();
        step.key_detail = Some(serde_json::json!({ "inputs": map }));
        step
    }

    fn run(steps: Vec<StepRunDetail>) -> RunDetail {
        RunDetail {
            run: RunSummary {
                id: "r".into(),
                pipeline: "p".into(),
                pipeline_file: "p.yaml".into(),
                status: RunStatus::Failed,
                started_at: String::new(),
                ended_at: None,
                duration_ms: None,
                command_line: String::new(),
                pid: 1,
                flowrun_version: String::new(),
            },
            params: Default::default(),
            steps,
        }
    }

    //   a ──> b ──> d
    //    \          ^
    //     └──> c ───┘        e (skipped: inputs unknown)
    fn diamond() -> RunDetail {
        run(vec![
            step("a", StepStatus::Succeeded),
            reads(step("b", StepStatus::Cached), &[("x", "a.out")]),
            reads(step("c", StepStatus::Succeeded), &[("x", "a.out")]),
            reads(
                step("d", StepStatus::Failed),
                &[("left", "b.out"), ("right", "c.out")],
            ),
            StepRunDetail {
                key_detail: None,
                duration_ms: None,
                ..step("e", StepStatus::Skipped)
            },
        ])
    }

    #[test]
    fn edges_come_from_key_detail() {
        let dag = Dag::from_run(&diamond());
        let pairs: Vec<(usize, usize)> = dag.edges.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(pairs, [(0, 1), (0, 2), (1, 3), (2, 3)]);
        assert_eq!(dag.edges[2].labels, ["out → left"]);
        assert!(dag.has_unknown_inputs());
    }

    #[test]
    fn layout_puts_unknown_steps_last() {
        let places = Dag::from_run(&diamond()).layout();
        assert_eq!(places, [(0, 0), (1, 0), (1, 1), (2, 0), (3, 0)]);
    }

    #[test]
    fn hashes_link_steps_without_key_detail() {
        let record = |hash: &str| ArtifactRecord {
            hash: hash.to_string(),
            kind: ArtifactKind::Json,
            size: 1,
            path: String::new(),
        };
        let mut producer = step("make", StepStatus::Succeeded);
        producer.outputs.push(OutputRecord {
            output: "report".into(),
            artifact: record("h1"),
        });
        let mut consumer = step("use", StepStatus::Succeeded);
        consumer.key_detail = None;
        consumer.inputs.push(InputRecord {
            input: "data".into(),
            hash: "h1".into(),
        });
        let dag = Dag::from_run(&run(vec![producer, consumer]));
        assert_eq!(dag.edges.len(), 1);
        assert_eq!(dag.edges[0].labels, ["report → data"]);
    }

    #[test]
    fn svg_escapes_step_ids() {
        let dag = Dag::from_run(&run(vec![step("<b>x</b>", StepStatus::Succeeded)]));
        let svg = dag.svg().into_string();
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;b&gt;x&lt;/b&gt;"));
    }
}
