//! The step graph: which step feeds which, in what order steps may run, and
//! what lies upstream or downstream of a step.
//!
//! A [`PipelineGraph`] has one node per step, in file order, and one edge
//! per data connection (`inputs:`, labelled with the output and input
//! names) or ordering constraint (`after:`), pointing from the step that
//! runs first to the one that waits. Building it rejects cycles and reports
//! each one as its path, `a -> b -> c -> a`.
//!
//! Every query is deterministic: ties are broken by file order, never by
//! hash order. This module never reads YAML and never runs a step.

use crate::spec::{Pipeline, SpecError, SpecErrors};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::fmt::Write;

/// Why one step depends on another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeKind {
    /// The downstream step reads an output of the upstream step.
    Data {
        /// The upstream step's output name.
        output: String,
        /// The downstream step's input name.
        input: String,
    },
    /// The downstream step lists the upstream one in `after:`.
    After,
}

/// The DAG of a pipeline's steps.
#[derive(Debug, Clone)]
pub struct PipelineGraph {
    /// Node weights are step ids; node indices follow file order.
    graph: DiGraph<String, EdgeKind>,
    index: HashMap<String, NodeIndex>,
    /// Node indices in topological order, ties broken by file order.
    order: Vec<NodeIndex>,
}

impl PipelineGraph {
    /// Builds the graph of `pipeline` and checks that it is acyclic.
    ///
    /// References to unknown steps are reported as errors too, for
    /// pipelines built in code; [`load`](crate::spec::load) has already
    /// reported and dropped those.
    pub fn build(pipeline: &Pipeline) -> Result<PipelineGraph, SpecErrors> {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for step in &pipeline.steps {
            let node = graph.add_node(step.id.clone());
            index.insert(step.id.clone(), node);
        }

        let mut errors = Vec::new();
        for step in &pipeline.steps {
            let to = index[&step.id];
            let mut unknown = |other: &str| {
                let mut error = SpecError::new(format!(
                    "step `{}` depends on `{other}`, but no step `{other}` exists",
                    step.id
                ));
                error.location = Some(step.location.clone());
                errors.push(error);
            };
            for (input, source) in &step.inputs {
                match index.get(&source.step) {
                    Some(&from) => {
                        let kind = EdgeKind::Data {
                            output: source.output.clone(),
                            input: input.clone(),
                        };
                        graph.add_edge(from, to, kind);
                    }
                    None => unknown(&source.step),
                }
            }
            for other in &step.after {
                match index.get(other) {
                    Some(&from) => {
                        graph.add_edge(from, to, EdgeKind::After);
                    }
                    None => unknown(other),
                }
            }
        }

        let mut built = PipelineGraph {
            graph,
            index,
            order: Vec::new(),
        };
        errors.extend(built.cycle_errors(pipeline));
        if !errors.is_empty() {
            return Err(SpecErrors(errors));
        }
        built.order = built.kahn_order();
        Ok(built)
    }

    /// Returns one error per cycle: each strongly connected component with
    /// more than one step, or a step that depends on itself.
    fn cycle_errors(&self, pipeline: &Pipeline) -> Vec<SpecError> {
        let mut components = petgraph::algo::tarjan_scc(&self.graph);
        for component in &mut components {
            component.sort();
        }
        components.sort();

        let mut errors = Vec::new();
        for component in components {
            let start = component[0];
            let self_loop = self.graph.contains_edge(start, start);
            if component.len() < 2 && !self_loop {
                continue;
            }
            let members: BTreeSet<NodeIndex> = component.iter().copied().collect();
            let path = self.cycle_path(start, &members);
            errors.push(self.cycle_error(pipeline, &path));
        }
        errors
    }

    /// Finds the shortest path from `start` back to itself inside one
    /// strongly connected component, as a list of nodes that begins and ends
    /// with `start`.
    fn cycle_path(&self, start: NodeIndex, members: &BTreeSet<NodeIndex>) -> Vec<NodeIndex> {
        if self.graph.contains_edge(start, start) {
            return vec![start, start];
        }
        let mut previous: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for next in self.successors_in_order(node) {
                if next == start {
                    let mut path = vec![start, node];
                    let mut current = node;
                    while current != start {
                        current = previous[&current];
                        path.push(current);
                    }
                    path.reverse();
                    return path;
                }
                if members.contains(&next) && !previous.contains_key(&next) {
                    previous.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        // A strongly connected component always has a way back to its
        // start; this is only reached if that invariant breaks.
        vec![start]
    }

    fn cycle_error(&self, pipeline: &Pipeline, path: &[NodeIndex]) -> SpecError {
        let names: Vec<&str> = path.iter().map(|n| self.graph[*n].as_str()).collect();
        let reasons: Vec<String> = path
            .windows(2)
            .map(|pair| self.edge_reason(pair[0], pair[1]))
            .collect();

        let mut error = SpecError::new(format!("steps form a cycle: {}", names.join(" -> ")))
            .with_help(format!(
                "{}; remove one of these inputs or `after` entries",
                reasons.join(", ")
            ));
        error.location = pipeline.step(names[0]).map(|s| s.location.clone());
        error
    }

    /// Describes why `to` depends on `from`: "`b` reads `a.x`" or
    /// "`b` runs after `a`".
    fn edge_reason(&self, from: NodeIndex, to: NodeIndex) -> String {
        let (from_id, to_id) = (&self.graph[from], &self.graph[to]);
        let edge = self
            .graph
            .edges_connecting(from, to)
            .next()
            .map(|e| e.weight().clone());
        match edge {
            Some(EdgeKind::Data { output, .. }) => format!("`{to_id}` reads `{from_id}.{output}`"),
            _ => format!("`{to_id}` runs after `{from_id}`"),
        }
    }

    /// Returns the direct successors of `node` in file order, each once.
    fn successors_in_order(&self, node: NodeIndex) -> Vec<NodeIndex> {
        let set: BTreeSet<NodeIndex> = self
            .graph
            .neighbors_directed(node, Direction::Outgoing)
            .collect();
        set.into_iter().collect()
    }

    /// Kahn's algorithm with a min-heap of node indices, so that of the
    /// steps ready to run, the earliest in the file comes first.
    fn kahn_order(&self) -> Vec<NodeIndex> {
        let mut remaining: Vec<usize> = self
            .graph
            .node_indices()
            .map(|n| self.unique_neighbors(n, Direction::Incoming).len())
            .collect();
        let mut ready: BinaryHeap<Reverse<NodeIndex>> = self
            .graph
            .node_indices()
            .filter(|n| remaining[n.index()] == 0)
            .map(Reverse)
            .collect();

        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some(Reverse(node)) = ready.pop() {
            order.push(node);
            for next in self.unique_neighbors(node, Direction::Outgoing) {
                remaining[next.index()] -= 1;
                if remaining[next.index()] == 0 {
                    ready.push(Reverse(next));
                }
            }
        }
        order
    }

    /// Returns the distinct neighbours in one direction, in file order.
    fn unique_neighbors(&self, node: NodeIndex, direction: Direction) -> Vec<NodeIndex> {
        let set: BTreeSet<NodeIndex> = self.graph.neighbors_directed(node, direction).collect();
        set.into_iter().collect()
    }

    fn ids(&self, nodes: Vec<NodeIndex>) -> Vec<&str> {
        nodes.into_iter().map(|n| self.graph[n].as_str()).collect()
    }

    /// Returns every step id in an order where each step comes after the
    /// steps it depends on. Among steps that could go next, the earliest in
    /// the file goes first.
    pub fn topological_order(&self) -> Vec<&str> {
        self.ids(self.order.clone())
    }

    /// Returns the steps `id` directly depends on, in file order. Empty for
    /// an unknown id.
    pub fn dependencies(&self, id: &str) -> Vec<&str> {
        match self.index.get(id) {
            Some(&node) => self.ids(self.unique_neighbors(node, Direction::Incoming)),
            None => Vec::new(),
        }
    }

    /// Returns the steps that directly depend on `id`, in file order. Empty
    /// for an unknown id.
    pub fn dependents(&self, id: &str) -> Vec<&str> {
        match self.index.get(id) {
            Some(&node) => self.ids(self.unique_neighbors(node, Direction::Outgoing)),
            None => Vec::new(),
        }
    }

    /// Returns `id` and every step that depends on it, directly or not, as
    /// `--from` selects them. Empty for an unknown id.
    pub fn downstream_closure(&self, id: &str) -> BTreeSet<String> {
        self.closure(id, Direction::Outgoing)
    }

    /// Returns `id` and every step it depends on, directly or not. Empty for
    /// an unknown id.
    pub fn upstream_closure(&self, id: &str) -> BTreeSet<String> {
        self.closure(id, Direction::Incoming)
    }

    fn closure(&self, id: &str, direction: Direction) -> BTreeSet<String> {
        let Some(&start) = self.index.get(id) else {
            return BTreeSet::new();
        };
        let mut seen = BTreeSet::from([start]);
        let mut queue = vec![start];
        while let Some(node) = queue.pop() {
            for next in self.graph.neighbors_directed(node, direction) {
                if seen.insert(next) {
                    queue.push(next);
                }
            }
        }
        seen.into_iter().map(|n| self.graph[n].clone()).collect()
    }

    /// Returns the data edges from `from` to `to` as their output names,
    /// sorted and without repeats, and whether an `after` edge exists.
    fn edge_labels(&self, from: NodeIndex, to: NodeIndex) -> (Vec<&str>, bool) {
        let mut outputs = BTreeSet::new();
        let mut after = false;
        for edge in self.graph.edges_connecting(from, to) {
            match edge.weight() {
                EdgeKind::Data { output, .. } => {
                    outputs.insert(output.as_str());
                }
                EdgeKind::After => after = true,
            }
        }
        (outputs.into_iter().collect(), after)
    }

    /// Returns each connected pair of steps once, in topological order of
    /// the upstream step, then file order of the downstream one.
    fn connected_pairs(&self) -> Vec<(NodeIndex, NodeIndex)> {
        self.order
            .iter()
            .flat_map(|&from| {
                self.unique_neighbors(from, Direction::Outgoing)
                    .into_iter()
                    .map(move |to| (from, to))
            })
            .collect()
    }

    /// Renders the graph as a Mermaid `flowchart TD`. Data edges are solid
    /// and labelled with the output names; `after` edges are dotted.
    pub fn to_mermaid(&self, pipeline: &Pipeline) -> String {
        let mut text = String::from("flowchart TD\n");
        for &node in &self.order {
            let id = &self.graph[node];
            let label = node_label(pipeline, id);
            let _ = writeln!(
                text,
                "    s{}[\"{}\"]",
                node.index(),
                mermaid_escape(&label)
            );
        }
        for (from, to) in self.connected_pairs() {
            let (outputs, after) = self.edge_labels(from, to);
            let (a, b) = (from.index(), to.index());
            if !outputs.is_empty() {
                let label = mermaid_escape(&outputs.join(", "));
                let _ = writeln!(text, "    s{a} -->|\"{label}\"| s{b}");
            }
            if after {
                let _ = writeln!(text, "    s{a} -.-> s{b}");
            }
        }
        text
    }

    /// Renders the graph in Graphviz DOT. Data edges are labelled with the
    /// output names; `after` edges are dashed.
    pub fn to_dot(&self, pipeline: &Pipeline) -> String {
        let mut text = format!("digraph {} {{\n", dot_quote(&pipeline.name));
        text.push_str("    rankdir=TB;\n    node [shape=box];\n");
        for &node in &self.order {
            let id = &self.graph[node];
            let label = node_label(pipeline, id);
            let _ = writeln!(text, "    {} [label={}];", dot_quote(id), dot_quote(&label));
        }
        for (from, to) in self.connected_pairs() {
            let (outputs, after) = self.edge_labels(from, to);
            let (a, b) = (dot_quote(&self.graph[from]), dot_quote(&self.graph[to]));
            if !outputs.is_empty() {
                let label = dot_quote(&outputs.join(", "));
                let _ = writeln!(text, "    {a} -> {b} [label={label}];");
            }
            if after {
                let _ = writeln!(text, "    {a} -> {b} [style=dashed];");
            }
        }
        text.push_str("}\n");
        text
    }
}

/// Labels a node with the step id, and the registered step name when it
/// differs.
fn node_label(pipeline: &Pipeline, id: &str) -> String {
    match pipeline.step(id) {
        Some(step) if step.uses != step.id => format!("{id} ({})", step.uses),
        _ => id.to_string(),
    }
}

/// Escapes text inside a quoted Mermaid label, where `"` ends the label.
fn mermaid_escape(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// Quotes a DOT identifier.
fn dot_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{InputRef, Location, PipelineStep};
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    /// Builds a step; each input is `(input name, "producer.output")`.
    fn step(id: &str, inputs: &[(&str, &str)], after: &[&str]) -> PipelineStep {
        let inputs = inputs
            .iter()
            .map(|(name, source)| {
                let (step, output) = source.split_once('.').unwrap();
                let source = InputRef {
                    step: step.to_string(),
                    output: output.to_string(),
                };
                (name.to_string(), source)
            })
            .collect();
        PipelineStep {
            id: id.to_string(),
            uses: id.to_string(),
            params: BTreeMap::new(),
            inputs,
            after: after.iter().map(|a| a.to_string()).collect(),
            retries: 0,
            retry_delay: Duration::ZERO,
            timeout: None,
            cache: true,
            location: Location {
                file: PathBuf::from("p.yaml"),
                line: 1,
                column: 3,
            },
        }
    }

    fn pipeline(steps: Vec<PipelineStep>) -> Pipeline {
        Pipeline {
            name: "test".to_string(),
            description: None,
            file: PathBuf::from("p.yaml"),
            files: vec![PathBuf::from("p.yaml")],
            params: BTreeMap::new(),
            steps,
            step_overrides: BTreeMap::new(),
        }
    }

    ///   ingest
    ///   /    \
    /// clean  stats
    ///   \    /
    ///   train
    fn diamond() -> Pipeline {
        pipeline(vec![
            step("ingest", &[], &[]),
            step("clean", &[("orders", "ingest.orders")], &[]),
            step("stats", &[("orders", "ingest.orders")], &[]),
            step(
                "train",
                &[("x_train", "clean.x_train"), ("summary", "stats.summary")],
                &[],
            ),
        ])
    }

    fn messages(errors: &SpecErrors) -> Vec<&str> {
        errors.iter().map(|e| e.message.as_str()).collect()
    }

    #[test]
    fn diamond_orders_and_neighbours() {
        let graph = PipelineGraph::build(&diamond()).unwrap();
        assert_eq!(
            graph.topological_order(),
            ["ingest", "clean", "stats", "train"]
        );
        assert_eq!(graph.dependencies("train"), ["clean", "stats"]);
        assert_eq!(graph.dependents("ingest"), ["clean", "stats"]);
        assert!(graph.dependencies("ingest").is_empty());
        assert!(graph.dependents("nope").is_empty());
    }

    #[test]
    fn diamond_closures() {
        let graph = PipelineGraph::build(&diamond()).unwrap();
        let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(graph.downstream_closure("clean"), set(&["clean", "train"]));
        assert_eq!(
            graph.downstream_closure("ingest"),
            set(&["ingest", "clean", "stats", "train"])
        );
        assert_eq!(graph.upstream_closure("clean"), set(&["ingest", "clean"]));
        assert_eq!(
            graph.upstream_closure("train"),
            set(&["ingest", "clean", "stats", "train"])
        );
        assert!(graph.downstream_closure("nope").is_empty());
    }

    /// c   a   b     (no edges)
    #[test]
    fn independent_steps_keep_file_order() {
        let graph = PipelineGraph::build(&pipeline(vec![
            step("c", &[], &[]),
            step("a", &[], &[]),
            step("b", &[], &[]),
        ]))
        .unwrap();
        assert_eq!(graph.topological_order(), ["c", "a", "b"]);
    }

    /// late --> first     early
    ///
    /// `first` comes first in the file but waits for `late`. `early` is
    /// ready from the start and precedes `late` in the file, so it runs
    /// before `first`.
    #[test]
    fn ties_break_by_file_order() {
        let graph = PipelineGraph::build(&pipeline(vec![
            step("first", &[("x", "late.x")], &[]),
            step("early", &[], &[]),
            step("late", &[], &[]),
        ]))
        .unwrap();
        assert_eq!(graph.topological_order(), ["early", "late", "first"]);
    }

    /// setup ..after..> train    (no data edge)
    #[test]
    fn after_is_a_dependency() {
        let graph = PipelineGraph::build(&pipeline(vec![
            step("train", &[], &["setup"]),
            step("setup", &[], &[]),
        ]))
        .unwrap();
        assert_eq!(graph.topological_order(), ["setup", "train"]);
        assert_eq!(graph.dependencies("train"), ["setup"]);
    }

    /// a -> b -> c -> a
    #[test]
    fn cycle_reported_as_path() {
        let errors = PipelineGraph::build(&pipeline(vec![
            step("a", &[("x", "c.out")], &[]),
            step("b", &[("x", "a.out")], &[]),
            step("c", &[], &["b"]),
        ]))
        .unwrap_err();
        assert_eq!(messages(&errors), ["steps form a cycle: a -> b -> c -> a"]);
        let help = errors.0[0].help.as_deref().unwrap();
        assert!(help.contains("`b` reads `a.out`"), "{help}");
        assert!(help.contains("`c` runs after `b`"), "{help}");
        assert!(help.contains("`a` reads `c.out`"), "{help}");
        assert!(errors.0[0].location.is_some());
    }

    /// a <-> b     c <-> d     e
    #[test]
    fn each_cycle_reported_once() {
        let errors = PipelineGraph::build(&pipeline(vec![
            step("a", &[], &["b"]),
            step("b", &[], &["a"]),
            step("c", &[], &["d"]),
            step("d", &[], &["c"]),
            step("e", &[], &[]),
        ]))
        .unwrap_err();
        assert_eq!(
            messages(&errors),
            [
                "steps form a cycle: a -> b -> a",
                "steps form a cycle: c -> d -> c"
            ]
        );
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let errors =
            PipelineGraph::build(&pipeline(vec![step("a", &[("x", "a.out")], &[])])).unwrap_err();
        assert_eq!(messages(&errors), ["steps form a cycle: a -> a"]);
    }

    #[test]
    fn unknown_step_reference_fails() {
        let errors = PipelineGraph::build(&pipeline(vec![step("a", &[], &["ghost"])])).unwrap_err();
        assert_eq!(
            messages(&errors),
            ["step `a` depends on `ghost`, but no step `ghost` exists"]
        );
    }

    /// prep --x_train, y_train--> train
    ///   .                          ^
    ///   ....after.... check ........
    #[test]
    fn mermaid_labels_edges_with_outputs() {
        let mut steps = vec![
            step("prep", &[], &[]),
            step("check", &[], &["prep"]),
            step(
                "train",
                &[("x", "prep.x_train"), ("y", "prep.y_train")],
                &["check"],
            ),
        ];
        steps[2].uses = "train_model".to_string();
        let pipeline = pipeline(steps);
        let graph = PipelineGraph::build(&pipeline).unwrap();
        let expected = "\
flowchart TD
    s0[\"prep\"]
    s1[\"check\"]
    s2[\"train (train_model)\"]
    s0 -.-> s1
    s0 -->|\"x_train, y_train\"| s2
    s1 -.-> s2
";
        assert_eq!(graph.to_mermaid(&pipeline), expected);
    }

    #[test]
    fn dot_quotes_names_and_dashes_after() {
        let pipeline = pipeline(vec![
            step("prep", &[], &[]),
            step("train", &[("x", "prep.x_train")], &["prep"]),
        ]);
        let graph = PipelineGraph::build(&pipeline).unwrap();
        let expected = "\
digraph \"test\" {
    rankdir=TB;
    node [shape=box];
    \"prep\" [label=\"prep\"];
    \"train\" [label=\"train\"];
    \"prep\" -> \"train\" [label=\"x_train\"];
    \"prep\" -> \"train\" [style=dashed];
}
";
        assert_eq!(graph.to_dot(&pipeline), expected);
    }
}
