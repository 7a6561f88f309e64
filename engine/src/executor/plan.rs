//! Dry runs: what a run would do, and why, without running or writing
//! anything.

use super::{ExecError, Executor, Node, Selection, build_nodes};
use crate::graph::PipelineGraph;
use crate::key::{self, InputDetail, KeyDetail, MissReason};
use crate::spec::Pipeline;
use flowrun_artifacts::ContentHash;
use std::collections::{BTreeMap, HashMap};

/// The action a run would take for a step.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanStatus {
    /// Taken from cache.
    Cached,
    /// Executed, for these reasons.
    Run(Vec<MissReason>),
    /// Needed by a selected step but not cached: the run would fail here.
    Unavailable,
    /// Not part of the selection and not needed by it.
    NotSelected,
}

/// One step of a plan.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    /// The step id.
    pub id: String,
    /// The action.
    pub status: PlanStatus,
}

impl PlanEntry {
    /// Renders the reason as one sentence.
    pub fn describe(&self) -> String {
        match &self.status {
            PlanStatus::Cached => "cached".to_string(),
            PlanStatus::Run(reasons) => format!("would run: {}", key::describe(reasons)),
            PlanStatus::Unavailable => {
                "not selected, and no cached result: the run would fail here".to_string()
            }
            PlanStatus::NotSelected => "not selected".to_string(),
        }
    }
}

impl Executor<'_> {
    /// Computes, for each step in topological order, whether a run with
    /// these options would take it from cache or run it, and why. Reads the
    /// stores but writes nothing.
    pub fn plan(
        &self,
        pipeline: &Pipeline,
        graph: &PipelineGraph,
        no_cache: bool,
        selection: &Selection,
    ) -> Result<Vec<PlanEntry>, ExecError> {
        let nodes = build_nodes(pipeline, graph, selection)?;
        // Output hashes known without running: those of cached steps.
        let mut known: HashMap<&str, BTreeMap<String, ContentHash>> = HashMap::new();
        let mut entries = Vec::with_capacity(nodes.len());

        for node in &nodes {
            let step = node.step;
            if !node.selected && !super::needed_by_selection(node, &nodes) {
                entries.push(PlanEntry {
                    id: step.id.clone(),
                    status: PlanStatus::NotSelected,
                });
                continue;
            }
            let status = self.plan_step(pipeline, node, &known, no_cache)?;
            if let (PlanStatus::Cached, Some(outputs)) =
                (&status, self.cached_outputs(pipeline, node, &known)?)
            {
                known.insert(step.id.as_str(), outputs);
            }
            entries.push(PlanEntry {
                id: step.id.clone(),
                status,
            });
        }
        Ok(entries)
    }

    fn plan_step(
        &self,
        pipeline: &Pipeline,
        node: &Node<'_>,
        known: &HashMap<&str, BTreeMap<String, ContentHash>>,
        no_cache: bool,
    ) -> Result<PlanStatus, ExecError> {
        let step = node.step;
        let registered = self.registry.get(&step.uses).expect("validated");
        let cacheable = registered.signature().cacheable;
        let lookup = cacheable && step.cache && (!no_cache || !node.selected);

        let Some(detail) = plan_detail(node, registered, known) else {
            // An input comes from a step that would run.
            let (name, input) = step
                .inputs
                .iter()
                .find(|(_, r)| {
                    known
                        .get(r.step.as_str())
                        .is_none_or(|outputs| !outputs.contains_key(&r.output))
                })
                .expect("some input is unknown");
            if !node.selected {
                return Ok(PlanStatus::Unavailable);
            }
            return Ok(PlanStatus::Run(vec![MissReason::UpstreamRuns {
                input: name.clone(),
                from: input.to_string(),
            }]));
        };

        let key = detail.key();
        if lookup
            && let Some(entry) = self.artifacts.get_entry(key.as_str())?
            && entry.outputs.values().all(|r| self.artifacts.exists(r))
        {
            return Ok(PlanStatus::Cached);
        }
        if !node.selected {
            return Ok(PlanStatus::Unavailable);
        }
        let reasons = if !cacheable {
            vec![MissReason::NotCacheable]
        } else if !step.cache {
            vec![MissReason::CacheDisabled]
        } else if no_cache {
            vec![MissReason::NoCacheFlag]
        } else {
            let previous = self
                .runs
                .previous_step(&pipeline.name, &step.id)?
                .and_then(|p| p.key_detail)
                .and_then(|json| serde_json::from_value::<KeyDetail>(json).ok());
            match previous {
                None => vec![MissReason::FirstRun],
                Some(previous) => {
                    let reasons = key::explain(&previous, &detail);
                    if reasons.is_empty() {
                        vec![MissReason::EntryMissing]
                    } else {
                        reasons
                    }
                }
            }
        };
        Ok(PlanStatus::Run(reasons))
    }

    fn cached_outputs(
        &self,
        _pipeline: &Pipeline,
        node: &Node<'_>,
        known: &HashMap<&str, BTreeMap<String, ContentHash>>,
    ) -> Result<Option<BTreeMap<String, ContentHash>>, ExecError> {
        let registered = self.registry.get(&node.step.uses).expect("validated");
        let Some(detail) = plan_detail(node, registered, known) else {
            return Ok(None);
        };
        let entry = self.artifacts.get_entry(detail.key().as_str())?;
        Ok(entry.map(|e| {
            e.outputs
                .into_iter()
                .map(|(name, r)| (name, r.hash))
                .collect()
        }))
    }
}

/// Builds a step's key detail when every input's hash is known.
fn plan_detail(
    node: &Node<'_>,
    registered: &crate::registry::RegisteredStep,
    known: &HashMap<&str, BTreeMap<String, ContentHash>>,
) -> Option<KeyDetail> {
    let step = node.step;
    let fingerprint = &registered.fingerprint.0;
    let mut inputs = BTreeMap::new();
    for (name, input) in &step.inputs {
        let hash = known.get(input.step.as_str())?.get(&input.output)?;
        inputs.insert(
            name.clone(),
            InputDetail {
                from: input.to_string(),
                hash: hash.clone(),
            },
        );
    }
    Some(KeyDetail {
        step: step.uses.clone(),
        fingerprint: fingerprint.to_string(),
        params: step.params.clone(),
        inputs,
        files: crate::contents::for_params(registered.signature(), &step.params),
    })
}
