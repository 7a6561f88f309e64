//! The executor: runs a validated pipeline's graph on a rayon pool, taking
//! each step from cache when the store has a result for its key.
//!
//! # Concurrency model
//!
//! The calling thread owns the schedule. It keeps, for each step, the number
//! of upstream steps not yet finished, hands every step whose count reaches
//! zero to a rayon pool of `--jobs` threads, and waits on a channel for
//! outcomes. A step's whole life (key, cache lookup, lock, attempts, storing
//! outputs, recording) happens in its pool task, see [`task`]. Steps that use
//! rayon themselves run their parallel work on the same pool, so `--jobs`
//! bounds the threads of the whole run.
//!
//! Across processes, a step that misses the cache takes an exclusive lock on
//! its key in the artifact store and looks again once it holds the lock, so
//! two runs that need the same result compute it once: the second waits and
//! then takes it from cache.
//!
//! # Failure policy
//!
//! - A failed step marks every step downstream of it `skipped`.
//! - By default the run then stops: steps already running finish, no new step
//!   starts, and every step not started is recorded as `skipped`. With
//!   `--keep-going`, every step that does not depend on a failure still runs.
//! - Cancellation (Ctrl-C) sets the [`CancelToken`]; running steps stop at
//!   their next [`StepContext::check_cancelled`](crate::StepContext::check_cancelled)
//!   and are recorded as `cancelled`.
//! - Every step that the run touched ends with a final status in the run
//!   store; [`RunStore::finish_run`] marks anything left over as interrupted,
//!   and a later run marks runs whose process died (`kill -9`) the same way.
//! - A step's outputs are stored and its cache entry written only after an
//!   attempt succeeds, so a failed attempt is never cached.

mod plan;
mod task;

pub use plan::{PlanEntry, PlanStatus};

use crate::graph::PipelineGraph;
use crate::key::{CacheKey, KeyDetail};
use crate::registry::Registry;
use crate::runstore::{
    GraphStep, NewRun, RunGraph, RunStatus, RunStore, RunStoreError, StepStatus,
};
use crate::spec::Pipeline;
use crate::step::CancelToken;
use flowrun_artifacts::store::{ArtifactRef, ArtifactStore};
use flowrun_artifacts::{Artifact, ArtifactError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The maximum size of a run's thread pool, whatever `--jobs` requests.
pub const MAX_JOBS: usize = 256;

/// The steps of a pipeline that a run executes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Selection {
    /// Every step.
    #[default]
    All,
    /// The given step and everything downstream of it (`--from`).
    From(String),
    /// Only the given steps (`--only`, repeatable).
    Only(Vec<String>),
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Size of the thread pool.
    pub jobs: usize,
    /// Keep running steps that do not depend on a failed step.
    pub keep_going: bool,
    /// Never take a step from cache (results are still stored).
    pub no_cache: bool,
    /// The steps that run; the others that they need are taken from cache.
    pub selection: Selection,
    /// The command line, recorded with the run.
    pub command_line: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            keep_going: false,
            no_cache: false,
            selection: Selection::All,
            command_line: String::new(),
        }
    }
}

/// The final outcome of a step in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Taken from cache.
    Cached,
    /// Executed and succeeded.
    Ran,
    /// Executed and failed (after its retries).
    Failed,
    /// Not executed because an upstream step failed or the run stopped.
    Skipped,
    /// Stopped by cancellation.
    Cancelled,
}

impl Outcome {
    /// Returns the word used in output and the run store.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Cached => "cached",
            Outcome::Ran => "ran",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Cancelled => "cancelled",
        }
    }

    fn status(self) -> StepStatus {
        match self {
            Outcome::Cached => StepStatus::Cached,
            Outcome::Ran => StepStatus::Succeeded,
            Outcome::Failed => StepStatus::Failed,
            Outcome::Skipped => StepStatus::Skipped,
            Outcome::Cancelled => StepStatus::Cancelled,
        }
    }
}

/// The outcome of one step, with its timing and reason.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// The step id.
    pub id: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Wall time, including retries and their delays.
    pub duration: Duration,
    /// Attempts made (0 for cached and skipped steps).
    pub attempts: u32,
    /// The reason the step ran, or was skipped.
    pub reason: Option<String>,
    /// The error of the last attempt, for failed steps.
    pub error: Option<String>,
}

/// Progress of a run, as it happens.
#[derive(Debug)]
pub enum Event<'a> {
    /// The run was recorded and is starting.
    RunStarted {
        /// The run id.
        run_id: &'a str,
        /// The pipeline name.
        pipeline: &'a str,
        /// How many steps the run will look at.
        steps: usize,
        /// The thread pool size.
        jobs: usize,
    },
    /// A step missed the cache and starts executing.
    StepStarted {
        /// The step id.
        id: &'a str,
        /// The reason it runs.
        reason: &'a str,
    },
    /// A step waits for another process that computes the same key.
    WaitingForLock {
        /// The step id.
        id: &'a str,
    },
    /// An attempt failed and the step will try again.
    Retrying {
        /// The step id.
        id: &'a str,
        /// The attempt that failed, from 1.
        attempt: u32,
        /// Attempts allowed in all.
        of: u32,
        /// The error of that attempt.
        error: &'a str,
        /// The delay before the next attempt.
        delay: Duration,
    },
    /// A stored artifact could not be used and its producer runs again.
    Recomputing {
        /// The producing step id.
        id: &'a str,
        /// The reason the artifact could not be used.
        reason: &'a str,
    },
    /// A step reached its final outcome.
    StepFinished(&'a StepReport),
}

/// Receives [`Event`]s; the CLI prints them.
pub trait Reporter: Sync {
    /// Handles one event. Called from several threads.
    fn event(&self, event: &Event<'_>);
}

/// A reporter that ignores every event.
pub struct SilentReporter;

impl Reporter for SilentReporter {
    fn event(&self, _event: &Event<'_>) {}
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run id in the run store.
    pub run_id: String,
    /// The final status.
    pub status: RunStatus,
    /// Every step the run looked at, in topological order.
    pub steps: Vec<StepReport>,
    /// Wall time of the whole run.
    pub duration: Duration,
}

impl RunReport {
    /// Counts the steps with an outcome.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.steps.iter().filter(|s| s.outcome == outcome).count()
    }
}

/// Errors that stop a run before or outside any step.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The run store failed.
    #[error(transparent)]
    RunStore(#[from] RunStoreError),
    /// The artifact store failed.
    #[error(transparent)]
    Artifacts(#[from] ArtifactError),
    /// A selected step does not exist.
    #[error("no step `{0}` in the pipeline")]
    UnknownStep(String),
    /// The run lock could not be taken.
    #[error("failed to create the run lock {path}: {source}")]
    RunLock {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The services a run needs: the step registry and both stores.
pub struct Executor<'a> {
    /// Registered steps.
    pub registry: &'a Registry,
    /// The store of artifacts and cache entries.
    pub artifacts: &'a dyn ArtifactStore,
    /// The run store.
    pub runs: &'a RunStore,
    /// The store directory, handed to steps.
    pub store_dir: &'a Path,
    /// Progress bars of long steps, when output goes to a terminal.
    pub progress: Option<&'a indicatif::MultiProgress>,
}

/// The result of a finished step, kept for its dependents.
#[derive(Debug, Clone)]
pub(crate) struct Done {
    pub(crate) detail: KeyDetail,
    pub(crate) key: CacheKey,
    pub(crate) outputs: BTreeMap<String, ArtifactRef>,
    /// The step run that recorded this step in the run store, so that a
    /// later recomputation of its outputs can correct the record.
    pub(crate) step_run: i64,
}

/// A step in the schedule's topological order.
pub(crate) struct Node<'p> {
    pub(crate) step: &'p crate::spec::PipelineStep,
    /// Indexes of upstream steps.
    pub(crate) upstream: Vec<usize>,
    /// Indexes of downstream steps.
    pub(crate) downstream: Vec<usize>,
    /// Indexes of the downstream steps that read an output of this one
    /// (`downstream` without the `after:` constraints).
    pub(crate) consumers: Vec<usize>,
    /// Whether the run executes the step; an unselected step that a selected
    /// one needs must come from cache.
    pub(crate) selected: bool,
}

/// A step's output in this run: the step's index and the output name.
pub(crate) type OutputSlot = (usize, String);

/// An artifact held in memory and the number of consumers still to read it.
pub(crate) type Held = (Arc<Artifact>, usize);

/// State shared by the schedule and the step tasks of one run.
pub(crate) struct Shared<'r> {
    pub(crate) exec: &'r Executor<'r>,
    pub(crate) pipeline: &'r Pipeline,
    pub(crate) nodes: Vec<Node<'r>>,
    pub(crate) index: HashMap<&'r str, usize>,
    pub(crate) options: &'r RunOptions,
    pub(crate) reporter: &'r dyn Reporter,
    pub(crate) cancel: &'r CancelToken,
    pub(crate) run_id: String,
    pub(crate) results: Mutex<Vec<Option<Done>>>,
    /// Artifacts produced in this process, kept until their last consumer
    /// has finished so that they are not read back from disk.
    pub(crate) memory: Mutex<HashMap<OutputSlot, Held>>,
    /// Serialises recomputation of a producer after a corrupt artifact.
    pub(crate) recompute_lock: Mutex<()>,
}

impl<'a> Executor<'a> {
    /// Runs a pipeline and records it. Returns the report even when steps
    /// failed; an `Err` means the run could not be carried out at all.
    pub fn run(
        &self,
        pipeline: &Pipeline,
        graph: &PipelineGraph,
        options: &RunOptions,
        reporter: &dyn Reporter,
        cancel: &CancelToken,
    ) -> Result<RunReport, ExecError> {
        let started = Instant::now();
        self.mark_dead_runs();
        let nodes = build_nodes(pipeline, graph, &options.selection)?;

        // Pipeline parameters, then the step parameters set with `--set
        // step.param=...` as `step.param`. Validation rejects a dot in a step
        // id, so the two kinds of name cannot collide.
        let params = pipeline
            .params
            .iter()
            .map(|(name, p)| (name.clone(), p.value.clone()))
            .chain(pipeline.step_overrides.clone())
            .collect();
        let run_id = self.runs.begin_run(&NewRun {
            pipeline: pipeline.name.clone(),
            pipeline_file: pipeline.file.display().to_string(),
            params,
            command_line: options.command_line.clone(),
            pid: std::process::id(),
            graph: Some(run_graph(pipeline)),
        })?;
        let _run_lock = self.lock_run(&run_id)?;

        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.step.id.as_str(), i))
            .collect();
        let considered = nodes
            .iter()
            .filter(|n| n.selected || needed_by_selection(n, &nodes))
            .count();
        reporter.event(&Event::RunStarted {
            run_id: &run_id,
            pipeline: &pipeline.name,
            steps: considered,
            jobs: options.jobs,
        });

        let shared = Shared {
            exec: self,
            pipeline,
            results: Mutex::new(vec![None; nodes.len()]),
            memory: Mutex::new(HashMap::new()),
            recompute_lock: Mutex::new(()),
            nodes,
            index,
            options,
            reporter,
            cancel,
            run_id: run_id.clone(),
        };
        let steps = schedule(&shared)?;

        let status = run_status(&steps, cancel);
        self.runs.finish_run(&run_id, status)?;
        Ok(RunReport {
            run_id,
            status,
            steps,
            duration: started.elapsed(),
        })
    }

    fn mark_dead_runs(&self) {
        mark_dead_runs(self.runs, self.store_dir);
    }

    fn run_lock_path(&self, run_id: &str) -> PathBuf {
        run_lock_path(self.store_dir, run_id)
    }

    /// Takes the lock that marks this run as alive for later processes. The
    /// operating system releases it when the process dies.
    fn lock_run(&self, run_id: &str) -> Result<RunLock, ExecError> {
        let path = self.run_lock_path(run_id);
        let lock_error = |source| ExecError::RunLock {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("lock path has a parent"))
            .map_err(lock_error)?;
        let file = File::create(&path).map_err(lock_error)?;
        file.lock().map_err(lock_error)?;
        Ok(RunLock { file, path })
    }
}

/// Marks runs whose process died (their run lock is free) as interrupted,
/// so that no run stays `running` after `kill -9` or an abort. Runs as each
/// run starts and before `flowrun runs` lists runs; failures are logged,
/// since a stale status must not stop a run.
pub fn mark_dead_runs(runs: &RunStore, store_dir: &Path) {
    let Ok(running) = runs.running_runs() else {
        return;
    };
    for run in running {
        let path = run_lock_path(store_dir, &run.id);
        let free = match File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(file) => file.try_lock().is_ok(),
            Err(_) => true,
        };
        if free {
            tracing::info!(run = %run.id, "marking run as interrupted: its process is gone");
            if let Err(error) = runs.mark_interrupted(&run.id) {
                tracing::warn!(run = %run.id, %error, "failed to mark run as interrupted");
            }
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn run_lock_path(store_dir: &Path, run_id: &str) -> PathBuf {
    store_dir.join("locks").join(format!("run-{run_id}.lock"))
}

struct RunLock {
    file: File,
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn run_status(steps: &[StepReport], cancel: &CancelToken) -> RunStatus {
    if cancel.is_cancelled() {
        RunStatus::Cancelled
    } else if steps.iter().any(|s| {
        matches!(
            s.outcome,
            Outcome::Failed | Outcome::Skipped | Outcome::Cancelled
        )
    }) {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    }
}

/// Orders the steps topologically and marks which ones the run executes.
pub(crate) fn build_nodes<'p>(
    pipeline: &'p Pipeline,
    graph: &PipelineGraph,
    selection: &Selection,
) -> Result<Vec<Node<'p>>, ExecError> {
    let order = graph.topological_order();
    let position: HashMap<&str, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();

    let selected: BTreeSet<String> = match selection {
        Selection::All => order.iter().map(|id| id.to_string()).collect(),
        Selection::From(id) => {
            if !position.contains_key(id.as_str()) {
                return Err(ExecError::UnknownStep(id.clone()));
            }
            graph.downstream_closure(id)
        }
        Selection::Only(ids) => {
            for id in ids {
                if !position.contains_key(id.as_str()) {
                    return Err(ExecError::UnknownStep(id.clone()));
                }
            }
            ids.iter().cloned().collect()
        }
    };

    let mut consumers: HashMap<&str, BTreeSet<usize>> = HashMap::new();
    for step in &pipeline.steps {
        for input in step.inputs.values() {
            consumers
                .entry(input.step.as_str())
                .or_default()
                .insert(position[step.id.as_str()]);
        }
    }
    let nodes = order
        .iter()
        .map(|id| {
            let step = pipeline.step(id).expect("graph and pipeline agree");
            Node {
                step,
                upstream: graph.dependencies(id).iter().map(|d| position[d]).collect(),
                downstream: graph.dependents(id).iter().map(|d| position[d]).collect(),
                consumers: consumers
                    .get(*id)
                    .map(|c| c.iter().copied().collect())
                    .unwrap_or_default(),
                selected: selected.contains(*id),
            }
        })
        .collect();
    Ok(nodes)
}

/// Returns whether an unselected step is upstream of a selected one.
fn needed_by_selection(node: &Node<'_>, nodes: &[Node<'_>]) -> bool {
    // Only data counts: a selected step that merely runs `after:` an
    // unselected one does not need it, since nothing flows between them.
    let mut stack: Vec<usize> = node.consumers.clone();
    let mut seen = BTreeSet::new();
    while let Some(i) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        if nodes[i].selected {
            return true;
        }
        stack.extend(nodes[i].consumers.iter().copied());
    }
    false
}

/// The state of a step in the schedule.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Waiting,
    Running,
    Finished(Outcome),
    /// Not part of this run (unselected and not needed).
    Ignored,
}

/// Runs the schedule loop on the calling thread and returns the step
/// reports in topological order.
fn schedule(shared: &Shared<'_>) -> Result<Vec<StepReport>, ExecError> {
    let nodes = &shared.nodes;
    // More threads than steps cannot run more steps at once, and a huge
    // --jobs would only spawn idle threads.
    let threads = shared
        .options
        .jobs
        .clamp(1, MAX_JOBS)
        .min(nodes.len().max(1));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("flowrun-step-{i}"))
        .build()
        .expect("failed to start the step thread pool");

    let mut slots: Vec<Slot> = nodes
        .iter()
        .map(|n| {
            if n.selected || needed_by_selection(n, nodes) {
                Slot::Waiting
            } else {
                Slot::Ignored
            }
        })
        .collect();
    let mut pending: Vec<usize> = nodes
        .iter()
        .map(|n| {
            n.upstream
                .iter()
                .filter(|&&u| slots[u] != Slot::Ignored)
                .count()
        })
        .collect();
    let mut reports: Vec<Option<StepReport>> = vec![None; nodes.len()];

    let mut stop_reason: Option<String> = None;
    let (sender, receiver) = mpsc::channel::<(usize, StepReport)>();

    pool.in_place_scope(|scope| -> Result<(), ExecError> {
        let mut running = 0usize;
        loop {
            if shared.cancel.is_cancelled() && stop_reason.is_none() {
                stop_reason = Some("the run was cancelled".to_string());
            }

            // Start waiting steps whose upstream steps have all finished, in
            // topological order, up to --jobs at a time.
            for i in 0..nodes.len() {
                if slots[i] != Slot::Waiting || pending[i] > 0 {
                    continue;
                }
                if running >= shared.options.jobs.max(1) && stop_reason.is_none() {
                    break;
                }
                if let Some(reason) = &stop_reason {
                    let report = skipped(&nodes[i], reason.clone());
                    shared.record_skipped(i, &report)?;
                    finish(shared, i, report, &mut slots, &mut pending, &mut reports);
                    continue;
                }
                slots[i] = Slot::Running;
                running += 1;
                let sender = sender.clone();
                scope.spawn(move |_| {
                    // A panic outside the step's own code (which the attempt
                    // loop catches) must still send a report, or the
                    // schedule would wait for this step for ever.
                    let started = Instant::now();
                    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        task::process(shared, i)
                    }))
                    .unwrap_or_else(|panic| {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".to_string());
                        StepReport {
                            id: shared.nodes[i].step.id.clone(),
                            outcome: Outcome::Failed,
                            duration: started.elapsed(),
                            attempts: 0,
                            reason: None,
                            error: Some(format!(
                                "flowrun failed while running the step: {message}"
                            )),
                        }
                    });
                    // The schedule outlives every task, so the send succeeds.
                    let _ = sender.send((i, report));
                });
            }

            if running == 0 {
                break;
            }
            let Ok((i, report)) = receiver.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            running -= 1;

            // The failure is reported before the steps it skips.
            let failed = matches!(report.outcome, Outcome::Failed | Outcome::Cancelled);
            finish(shared, i, report, &mut slots, &mut pending, &mut reports);
            if failed {
                let failed_id = nodes[i].step.id.clone();
                skip_downstream(
                    shared,
                    i,
                    &failed_id,
                    &mut slots,
                    &mut pending,
                    &mut reports,
                )?;
                if !shared.options.keep_going && stop_reason.is_none() {
                    stop_reason = Some(format!("the run stopped after {failed_id} failed"));
                }
            }
        }
        Ok(())
    })?;

    // Steps that never became ready (their upstream was skipped before they
    // were reached) are already reported; anything else left is skipped.
    for i in 0..nodes.len() {
        if slots[i] == Slot::Waiting {
            let reason = stop_reason
                .clone()
                .unwrap_or_else(|| "an upstream step did not finish".to_string());
            let report = skipped(&nodes[i], reason);
            shared.record_skipped(i, &report)?;
            reports[i] = Some(report);
        }
    }
    Ok(reports.into_iter().flatten().collect())
}

fn skipped(node: &Node<'_>, reason: String) -> StepReport {
    StepReport {
        id: node.step.id.clone(),
        outcome: Outcome::Skipped,
        duration: Duration::ZERO,
        attempts: 0,
        reason: Some(reason),
        error: None,
    }
}

/// Records a step's final report and releases its dependents.
fn finish(
    shared: &Shared<'_>,
    i: usize,
    report: StepReport,
    slots: &mut [Slot],
    pending: &mut [usize],
    reports: &mut [Option<StepReport>],
) {
    slots[i] = Slot::Finished(report.outcome);
    for &d in &shared.nodes[i].downstream {
        pending[d] = pending[d].saturating_sub(1);
    }
    shared.release_inputs(i);
    shared.reporter.event(&Event::StepFinished(&report));
    reports[i] = Some(report);
}

/// Marks every waiting step downstream of a failed one as skipped.
fn skip_downstream(
    shared: &Shared<'_>,
    failed: usize,
    reason: &str,
    slots: &mut [Slot],
    pending: &mut [usize],
    reports: &mut [Option<StepReport>],
) -> Result<(), ExecError> {
    let mut stack = shared.nodes[failed].downstream.clone();
    while let Some(i) = stack.pop() {
        if slots[i] != Slot::Waiting {
            continue;
        }
        let report = skipped(&shared.nodes[i], reason.to_string());
        shared.record_skipped(i, &report)?;
        finish(shared, i, report, slots, pending, reports);
        stack.extend(shared.nodes[i].downstream.iter().copied());
    }
    Ok(())
}

impl Shared<'_> {
    fn record_skipped(&self, i: usize, report: &StepReport) -> Result<(), ExecError> {
        let step = self.nodes[i].step;
        self.exec.runs.record_step(
            &self.run_id,
            &crate::runstore::NewStepRun {
                step_id: step.id.clone(),
                step_name: step.uses.clone(),
                cache_key: None,
                key_detail: None,
                params: step.params.clone(),
            },
            &crate::runstore::StepFinish {
                status: report.outcome.status(),
                attempts: 0,
                duration_ms: 0,
                miss_reason: report.reason.clone(),
                error: None,
            },
        )?;
        Ok(())
    }

    /// Drops in-memory artifacts that no step still waiting needs.
    fn release_inputs(&self, consumer: usize) {
        let node = &self.nodes[consumer];
        let mut memory = self.memory.lock().expect("artifact memory poisoned");
        for input in node.step.inputs.values() {
            let Some(&producer) = self.index.get(input.step.as_str()) else {
                continue;
            };
            let key = (producer, input.output.clone());
            let drop_it = match memory.get_mut(&key) {
                Some((_, consumers)) => {
                    *consumers = consumers.saturating_sub(1);
                    *consumers == 0
                }
                None => false,
            };
            if drop_it {
                memory.remove(&key);
            }
        }
    }

    /// Counts how many steps of this run read an output.
    pub(crate) fn consumers_of(&self, producer: usize, output: &str) -> usize {
        let id = &self.nodes[producer].step.id;
        self.nodes[producer]
            .downstream
            .iter()
            .map(|&d| {
                self.nodes[d]
                    .step
                    .inputs
                    .values()
                    .filter(|r| &r.step == id && r.output == output)
                    .count()
            })
            .sum()
    }
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Builds the pipeline's graph as the run store keeps it with a run.
fn run_graph(pipeline: &Pipeline) -> RunGraph {
    RunGraph {
        steps: pipeline
            .steps
            .iter()
            .map(|step| GraphStep {
                id: step.id.clone(),
                uses: step.uses.clone(),
                inputs: step
                    .inputs
                    .iter()
                    .map(|(name, input)| (name.clone(), input.to_string()))
                    .collect(),
                after: step.after.clone(),
            })
            .collect(),
    }
}
