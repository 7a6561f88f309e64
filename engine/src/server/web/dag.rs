//! The picture of a run's DAG: steps as boxes coloured by outcome, a solid
//! arrow for each data connection and a dashed one for each `after:`
//! ordering constraint, laid out in columns from left to right.
//!
//! The arrows come from what the run store recorded with the run, not from
//! the pipeline file, which may have changed since:
//!
//! - the run's graph, kept with the run when it started, names every
//!   step's inputs (`step.output`) and `after:` list, including those of
//!   steps that never started;
//! - runs recorded before the graph was kept fall back to each step's key
//!   detail, whose inputs name their producer, and without one to matching
//!   an input's content hash to the outputs of the run's other steps. There
//!   a step that never started has no arrows: it is drawn in an extra last
//!   column, and the caption explains why.
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
use crate::runstore::{GraphStep, RunDetail, RunStatus, StepStatus};
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

/// A connection: `from` produced an artifact that `to` read, or `to` runs
/// after `from` without reading its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edge {
    pub(super) from: usize,
    pub(super) to: usize,
    /// `output → input` pairs, or `after`, for the tooltip.
    pub(super) labels: Vec<String>,
    /// Whether the connection carries no data (an `after:` constraint).
    pub(super) ordering_only: bool,
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
            let in_graph = run
                .graph
                .as_ref()
                .is_some_and(|graph| graph.steps.iter().any(|g| g.id == step.step_id));
            let node = Node {
                id: step.step_id.clone(),
                status: step.status,
                duration_ms: step.duration_ms,
                inputs_known: in_graph || step.key_detail.is_some() || !step.inputs.is_empty(),
            };
            match index.get(step.step_id.as_str()) {
                Some(&i) => nodes[i] = node,
                None => {
                    index.insert(&step.step_id, nodes.len());
                    nodes.push(node);
                }
            }
        }
        // A run still going, or one whose process died, has steps that
        // never started and so were never recorded, but the graph lists them.
        // (A failed or cancelled run records them as skipped.)
        let unfinished = matches!(run.run.status, RunStatus::Running | RunStatus::Interrupted);
        let mut not_started: Vec<&GraphStep> = Vec::new();
        if let Some(graph) = run.graph.as_ref().filter(|_| unfinished) {
            for step in &graph.steps {
                if !index.contains_key(step.id.as_str()) {
                    index.insert(&step.id, nodes.len());
                    nodes.push(Node {
                        id: step.id.clone(),
                        status: StepStatus::Pending,
                        duration_ms: None,
                        inputs_known: true,
                    });
                    not_started.push(step);
                }
            }
        }

        // (from, to) -> (labels, whether any carries data)
        let mut edges: BTreeMap<(usize, usize), (Vec<String>, bool)> = BTreeMap::new();
        let mut add = |from: usize, to: usize, label: String, data: bool| {
            if from == to {
                return;
            }
            let (labels, carries_data) = edges.entry((from, to)).or_default();
            if !labels.contains(&label) {
                labels.push(label);
            }
            *carries_data |= data;
        };
        for step in &run.steps {
            let recorded = run
                .graph
                .as_ref()
                .and_then(|graph| graph.steps.iter().find(|g| g.id == step.step_id));
            match recorded {
                Some(graph_step) => {
                    for (from, to, label, data) in graph_edges(graph_step, &index) {
                        add(from, to, label, data);
                    }
                }
                None => {
                    let to = index[step.step_id.as_str()];
                    for (from, label) in producers(run, step, &index) {
                        add(from, to, label, true);
                    }
                }
            }
        }
        for graph_step in not_started {
            for (from, to, label, data) in graph_edges(graph_step, &index) {
                add(from, to, label, data);
            }
        }
        let edges = edges
            .into_iter()
            .map(|((from, to), (labels, data))| Edge {
                from,
                to,
                labels,
                ordering_only: !data,
            })
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
        let class = if edge.ordering_only {
            "edge after"
        } else {
            "edge"
        };
        html! {
            path class=(class) d={ "M " (x1) " " (y1) " C " (x1 + bend) " " (y1 - lift) ", "
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
                    // A step that never ran has no duration worth showing.
                    @if let Some(ms) = node.duration_ms.filter(|_| !matches!(node.status, StepStatus::Skipped | StepStatus::Pending)) {
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
/// Returns the connections into a step of the recorded graph, as
/// `(from, to, label, carries data)`, to the steps in `index`.
fn graph_edges(
    graph_step: &GraphStep,
    index: &BTreeMap<&str, usize>,
) -> Vec<(usize, usize, String, bool)> {
    let to = index[graph_step.id.as_str()];
    let mut found = Vec::new();
    for (input, source) in &graph_step.inputs {
        // A step id never contains a dot, so the first one ends it.
        let (producer, output) = source.split_once('.').unwrap_or((source, ""));
        if let Some(&from) = index.get(producer) {
            found.push((from, to, format!("{output} → {input}"), true));
        }
    }
    for before in &graph_step.after {
        if let Some(&from) = index.get(before.as_str()) {
            found.push((from, to, "after".to_string(), false));
        }
    }
    found
}

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
        StepStatus::Pending => "pending: not started",
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
        ArtifactRecord, GraphStep, InputRecord, OutputRecord, RunGraph, RunStatus, RunSummary,
        StepRunDetail,
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

    /// Builds a step of a recorded graph with its inputs (`input`,
    /// `step.output`) and `after:` list.
    fn graph_step(id: &str, inputs: &[(&str, &str)], after: &[&str]) -> GraphStep {
        GraphStep {
            id: id.to_string(),
            uses: id.to_string(),
            inputs: inputs
                .iter()
                .map(|(input, from)| (input.to_string(), from.to_string()))
                .collect(),
            after: after.iter().map(|s| s.to_string()).collect(),
        }
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
            graph: None,
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
    fn recorded_graph_draws_skipped_steps_and_after_edges() {
        let never_started = |id: &str| StepRunDetail {
            key_detail: None,
            duration_ms: None,
            ..step(id, StepStatus::Skipped)
        };
        let mut record = run(vec![
            step("a", StepStatus::Succeeded),
            reads(step("b", StepStatus::Failed), &[("x", "a.out")]),
            never_started("c"),
            never_started("d"),
        ]);
        record.graph = Some(RunGraph {
            steps: vec![
                graph_step("a", &[], &[]),
                graph_step("b", &[("x", "a.out")], &[]),
                graph_step("c", &[("y", "b.out")], &["a"]),
                graph_step("d", &[], &["b"]),
                // In the pipeline but not part of this run: not drawn.
                graph_step("z", &[("q", "a.out")], &[]),
            ],
        });
        let dag = Dag::from_run(&record);
        assert!(!dag.has_unknown_inputs());
        let edges: Vec<(usize, usize, bool)> = dag
            .edges
            .iter()
            .map(|e| (e.from, e.to, e.ordering_only))
            .collect();
        assert_eq!(
            edges,
            [(0, 1, false), (0, 2, true), (1, 2, false), (1, 3, true)]
        );
        assert_eq!(dag.edges[2].labels, ["out → y"]);
        assert_eq!(dag.layout(), [(0, 0), (1, 0), (2, 0), (2, 1)]);
        let svg = dag.svg().into_string();
        assert_eq!(
            svg.matches(r#"<path class="edge after""#).count(),
            2,
            "{svg}"
        );
    }

    #[test]
    fn steps_that_never_ran_show_no_duration() {
        let record = run(vec![
            step("a", StepStatus::Failed),
            reads(step("b", StepStatus::Skipped), &[("x", "a.out")]),
        ]);
        let svg = Dag::from_run(&record).svg().into_string();
        assert!(svg.contains("failed · "), "{svg}");
        assert!(!svg.contains("skipped · "), "{svg}");
    }

    #[test]
    fn interrupted_run_draws_the_steps_it_never_started() {
        let mut record = run(vec![
            step("a", StepStatus::Cached),
            reads(step("b", StepStatus::Interrupted), &[("x", "a.out")]),
        ]);
        record.run.status = RunStatus::Interrupted;
        record.graph = Some(RunGraph {
            steps: vec![
                graph_step("a", &[], &[]),
                graph_step("b", &[("x", "a.out")], &[]),
                graph_step("c", &[("y", "b.out")], &["a"]),
            ],
        });
        let dag = Dag::from_run(&record);
        let ids: Vec<(&str, StepStatus)> = dag
            .nodes
            .iter()
            .map(|n| (n.id.as_str(), n.status))
            .collect();
        assert_eq!(
            ids,
            [
                ("a", StepStatus::Cached),
                ("b", StepStatus::Interrupted),
                ("c", StepStatus::Pending)
            ]
        );
        let edges: Vec<(usize, usize, bool)> = dag
            .edges
            .iter()
            .map(|e| (e.from, e.to, e.ordering_only))
            .collect();
        assert_eq!(edges, [(0, 1, false), (0, 2, true), (1, 2, false)]);

        // A finished run draws only its recorded steps.
        record.run.status = RunStatus::Succeeded;
        assert_eq!(Dag::from_run(&record).nodes.len(), 2);
    }

    #[test]
    fn svg_escapes_step_ids() {
        let dag = Dag::from_run(&run(vec![step("<b>x</b>", StepStatus::Succeeded)]));
        let svg = dag.svg().into_string();
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;b&gt;x&lt;/b&gt;"));
    }
}
