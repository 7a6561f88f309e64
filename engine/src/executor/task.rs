//! One step's life in a run: key, cache lookup, lock, attempts, storing the
//! outputs and recording everything in the run store.

use super::{Done, Event, Outcome, Shared, StepReport, duration_ms};
use crate::key::{self, CacheKey, InputDetail, KeyDetail, MissReason};
use crate::runstore::{ArtifactRecord, NewStepRun, StepFinish, StepStatus};
use crate::spec::PipelineStep;
use crate::step::{StepContext, StepError, StepOutputs};
use flowrun_artifacts::store::{ArtifactRef, CacheEntry};
use flowrun_artifacts::{Artifact, ArtifactError};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Processes step `i` to its final outcome. Errors of the step and the
/// stores, and a panic inside the step, become a `Failed` report.
pub(super) fn process(shared: &Shared<'_>, i: usize) -> StepReport {
    let started = Instant::now();
    let step = shared.nodes[i].step;
    let span = tracing::info_span!("step", id = %step.id);
    let _enter = span.enter();

    match process_inner(shared, i, started) {
        Ok(report) => report,
        Err(error) => {
            // The step failed before it was recorded as running.
            let finish = StepFinish {
                status: StepStatus::Failed,
                attempts: 0,
                duration_ms: duration_ms(started.elapsed()),
                miss_reason: None,
                error: Some(error.clone()),
            };
            let new = NewStepRun {
                step_id: step.id.clone(),
                step_name: step.uses.clone(),
                cache_key: None,
                key_detail: None,
                params: step.params.clone(),
            };
            if let Err(e) = shared.exec.runs.record_step(&shared.run_id, &new, &finish) {
                tracing::warn!(error = %e, "failed to record the step's failure");
            }
            failed_report(step, started, 0, String::new(), error)
        }
    }
}

fn process_inner(shared: &Shared<'_>, i: usize, started: Instant) -> Result<StepReport, String> {
    let node = &shared.nodes[i];
    let step = node.step;
    let registered = shared
        .exec
        .registry
        .get(&step.uses)
        .ok_or_else(|| format!("step `{}` is not registered", step.uses))?;
    let signature = registered.signature();

    let mut detail = key_detail(shared, step, &registered.fingerprint.0)?;
    detail.files = crate::contents::for_params(signature, &step.params);
    let mut cache_key = detail.key();
    // Steps outside --from/--only always come from cache, even with --no-cache.
    let lookup = signature.cacheable && step.cache && (!shared.options.no_cache || !node.selected);
    let store = shared.exec.artifacts;

    if lookup && let Some(report) = try_cached(shared, i, &detail, &cache_key, started, None)? {
        return Ok(report);
    }
    if !node.selected {
        return Err(format!(
            "step {} is outside the selected steps and has no cached result for its current \
             parameters, inputs and code; run the whole pipeline once, or select it too",
            step.id
        ));
    }

    let reasons = miss_reasons(shared, step, &detail, signature.cacheable);
    let reason = key::describe(&reasons);

    // Take the key's lock, so that a concurrent run computing the same key
    // finishes first and this one then takes its result from cache.
    let _lock = if signature.cacheable && step.cache {
        let lock = match store
            .try_lock_key(cache_key.as_str())
            .map_err(|e| e.to_string())?
        {
            Some(lock) => lock,
            None => {
                shared
                    .reporter
                    .event(&Event::WaitingForLock { id: &step.id });
                store
                    .lock_key(cache_key.as_str())
                    .map_err(|e| e.to_string())?
            }
        };
        if lookup
            && let Some(report) = try_cached(
                shared,
                i,
                &detail,
                &cache_key,
                started,
                Some("computed by a concurrent run"),
            )?
        {
            return Ok(report);
        }
        Some(lock)
    } else {
        None
    };

    tracing::info!(reason = %reason, "re-running {}: {reason}", step.id);
    shared.reporter.event(&Event::StepStarted {
        id: &step.id,
        reason: &reason,
    });
    let step_run = shared
        .exec
        .runs
        .begin_step(&shared.run_id, &new_step_run(step, &cache_key, &detail))
        .map_err(|e| e.to_string())?;

    // Load the inputs; a corrupt stored input is recomputed, and if the
    // recomputed content differs the key is computed again.
    let inputs = match load_inputs(shared, i, &mut detail) {
        Ok(inputs) => inputs,
        Err(error) => {
            finish_failed(shared, step_run, 0, started, &reason, &error);
            return Ok(failed_report(step, started, 0, reason, error));
        }
    };
    cache_key = detail.key();

    let (result, attempts) = attempt_loop(shared, i, &inputs);
    let (outputs, context_log) = match result {
        Ok(ok) => ok,
        Err(StepFailure { error, cancelled }) => {
            let status = if cancelled {
                StepStatus::Cancelled
            } else {
                StepStatus::Failed
            };
            let finish = StepFinish {
                status,
                attempts,
                duration_ms: duration_ms(started.elapsed()),
                miss_reason: Some(reason.clone()),
                error: Some(error.clone()),
            };
            let _ = shared.exec.runs.finish_step(step_run, &finish);
            let mut report = failed_report(step, started, attempts, reason, error);
            if cancelled {
                report.outcome = Outcome::Cancelled;
            }
            return Ok(report);
        }
    };

    let stored = store_outputs(
        shared,
        i,
        step_run,
        &cache_key,
        outputs,
        &context_log,
        started,
    );
    let outputs = match stored {
        Ok(outputs) => outputs,
        Err(error) => {
            finish_failed(shared, step_run, attempts, started, &reason, &error);
            return Ok(failed_report(step, started, attempts, reason, error));
        }
    };

    record_inputs(shared, step_run, &detail);
    shared.results.lock().expect("results poisoned")[i] = Some(Done {
        detail,
        key: cache_key,
        outputs,
        step_run,
    });
    let finish = StepFinish {
        status: StepStatus::Succeeded,
        attempts,
        duration_ms: duration_ms(started.elapsed()),
        miss_reason: Some(reason.clone()),
        error: None,
    };
    shared
        .exec
        .runs
        .finish_step(step_run, &finish)
        .map_err(|e| e.to_string())?;

    Ok(StepReport {
        id: step.id.clone(),
        outcome: Outcome::Ran,
        duration: started.elapsed(),
        attempts,
        reason: Some(reason),
        error: None,
    })
}

/// Builds the key detail from the step's parameters and its inputs' hashes.
fn key_detail(
    shared: &Shared<'_>,
    step: &PipelineStep,
    fingerprint: &str,
) -> Result<KeyDetail, String> {
    let results = shared.results.lock().expect("results poisoned");
    let mut inputs = BTreeMap::new();
    for (name, input) in &step.inputs {
        let producer = shared.index[input.step.as_str()];
        let done = results[producer]
            .as_ref()
            .ok_or_else(|| format!("input {input} is not available"))?;
        let artifact = done.outputs.get(&input.output).ok_or_else(|| {
            format!(
                "step {} did not produce output {}",
                input.step, input.output
            )
        })?;
        inputs.insert(
            name.clone(),
            InputDetail {
                from: input.to_string(),
                hash: artifact.hash.clone(),
            },
        );
    }
    Ok(KeyDetail {
        step: step.uses.clone(),
        fingerprint: fingerprint.to_string(),
        params: step.params.clone(),
        inputs,
        files: BTreeMap::new(),
    })
}

fn new_step_run(step: &PipelineStep, key: &CacheKey, detail: &KeyDetail) -> NewStepRun {
    NewStepRun {
        step_id: step.id.clone(),
        step_name: step.uses.clone(),
        cache_key: Some(key.to_string()),
        key_detail: serde_json::to_value(detail).ok(),
        params: step.params.clone(),
    }
}

/// Returns a `Cached` report when the store has a complete entry for the
/// key. An entry whose artifacts are gone is removed and treated as a miss.
fn try_cached(
    shared: &Shared<'_>,
    i: usize,
    detail: &KeyDetail,
    key: &CacheKey,
    started: Instant,
    note: Option<&str>,
) -> Result<Option<StepReport>, String> {
    let store = shared.exec.artifacts;
    let step = shared.nodes[i].step;
    let Some(entry) = store.get_entry(key.as_str()).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if let Some(missing) = entry.outputs.iter().find(|(_, r)| !store.exists(r)) {
        tracing::warn!(
            step = %step.id,
            output = %missing.0,
            "cache entry {} lists an artifact that is missing, truncated or changed; recomputing",
            key.short()
        );
        store
            .remove_entry(key.as_str())
            .map_err(|e| e.to_string())?;
        return Ok(None);
    }

    let runs = shared.exec.runs;
    let finish = StepFinish {
        status: StepStatus::Cached,
        attempts: 0,
        duration_ms: duration_ms(started.elapsed()),
        miss_reason: note.map(str::to_string),
        error: None,
    };
    let step_run = runs
        .record_step(&shared.run_id, &new_step_run(step, key, detail), &finish)
        .map_err(|e| e.to_string())?;
    for (name, artifact) in &entry.outputs {
        runs.record_output(step_run, name, &artifact_record(shared, artifact))
            .map_err(|e| e.to_string())?;
    }
    record_inputs(shared, step_run, detail);
    if !entry.metrics.is_empty() {
        runs.log_metrics(&shared.run_id, step_run, &entry.metrics)
            .map_err(|e| e.to_string())?;
    }
    if !entry.tags.is_empty() {
        runs.log_tags(&shared.run_id, step_run, &entry.tags)
            .map_err(|e| e.to_string())?;
    }

    shared.results.lock().expect("results poisoned")[i] = Some(Done {
        detail: detail.clone(),
        key: key.clone(),
        outputs: entry.outputs,
        step_run,
    });
    Ok(Some(StepReport {
        id: step.id.clone(),
        outcome: Outcome::Cached,
        duration: started.elapsed(),
        attempts: 0,
        reason: note.map(str::to_string),
        error: None,
    }))
}

fn artifact_record(shared: &Shared<'_>, artifact: &ArtifactRef) -> ArtifactRecord {
    ArtifactRecord {
        hash: artifact.hash.to_string(),
        kind: artifact.kind,
        size: artifact.size,
        path: shared
            .exec
            .artifacts
            .path_of(artifact)
            .display()
            .to_string(),
    }
}

fn record_inputs(shared: &Shared<'_>, step_run: i64, detail: &KeyDetail) {
    for (name, input) in &detail.inputs {
        if let Err(error) = shared
            .exec
            .runs
            .record_input(step_run, name, input.hash.as_str())
        {
            tracing::warn!(%error, input = %name, "failed to record input lineage");
        }
    }
}

/// Explains a cache miss by comparing with the last successful run of the
/// same step in the same pipeline.
fn miss_reasons(
    shared: &Shared<'_>,
    step: &PipelineStep,
    detail: &KeyDetail,
    cacheable: bool,
) -> Vec<MissReason> {
    if !cacheable {
        return vec![MissReason::NotCacheable];
    }
    if !step.cache {
        return vec![MissReason::CacheDisabled];
    }
    if shared.options.no_cache {
        return vec![MissReason::NoCacheFlag];
    }
    let previous = shared
        .exec
        .runs
        .previous_step(&shared.pipeline.name, &step.id)
        .ok()
        .flatten()
        .and_then(|p| p.key_detail)
        .and_then(|json| serde_json::from_value::<KeyDetail>(json).ok());
    match previous {
        None => vec![MissReason::FirstRun],
        Some(previous) => {
            let reasons = key::explain(&previous, detail);
            if reasons.is_empty() {
                vec![MissReason::EntryMissing]
            } else {
                reasons
            }
        }
    }
}

/// Loads every connected input. When a stored artifact is missing or
/// corrupt, its producer runs again to recreate it.
fn load_inputs(
    shared: &Shared<'_>,
    i: usize,
    detail: &mut KeyDetail,
) -> Result<BTreeMap<String, Arc<Artifact>>, String> {
    let step = shared.nodes[i].step;
    let mut inputs = BTreeMap::new();
    for (name, input) in &step.inputs {
        let producer = shared.index[input.step.as_str()];
        let artifact = load_output(shared, producer, &input.output)?;
        let hash = artifact.content_hash();
        let entry = detail.inputs.get_mut(name).expect("detail has every input");
        if entry.hash != hash {
            tracing::warn!(
                input = %input,
                "recomputed input differs from the stored one; step {} is not deterministic",
                input.step
            );
            entry.hash = hash;
        }
        inputs.insert(name.clone(), artifact);
    }
    Ok(inputs)
}

/// Returns an output of a finished step: from memory when it ran in this
/// process, else from the store, else by running the producer again.
fn load_output(
    shared: &Shared<'_>,
    producer: usize,
    output: &str,
) -> Result<Arc<Artifact>, String> {
    let memory_key = (producer, output.to_string());
    if let Some((artifact, _)) = shared
        .memory
        .lock()
        .expect("memory poisoned")
        .get(&memory_key)
    {
        return Ok(artifact.clone());
    }
    let reference = {
        let results = shared.results.lock().expect("results poisoned");
        let done = results[producer]
            .as_ref()
            .ok_or("producer has not finished")?;
        done.outputs
            .get(output)
            .cloned()
            .ok_or_else(|| format!("output {output} not found"))?
    };
    match shared.exec.artifacts.get(&reference) {
        Ok(artifact) => Ok(Arc::new(artifact)),
        Err(
            error @ (ArtifactError::Corrupt { .. }
            | ArtifactError::NotFound { .. }
            | ArtifactError::Decode { .. }),
        ) => recompute(shared, producer, output, &reference, &error.to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// Runs a finished step again because one of its stored outputs could not
/// be read, stores the new outputs and returns the one asked for.
fn recompute(
    shared: &Shared<'_>,
    producer: usize,
    output: &str,
    broken: &ArtifactRef,
    problem: &str,
) -> Result<Arc<Artifact>, String> {
    let _serial = shared
        .recompute_lock
        .lock()
        .expect("recompute lock poisoned");
    let step = shared.nodes[producer].step;
    shared.reporter.event(&Event::Recomputing {
        id: &step.id,
        reason: problem,
    });
    tracing::warn!(step = %step.id, "stored output {output} is unusable ({problem}); running the step again");

    let started = Instant::now();
    let store = shared.exec.artifacts;
    let done = shared.results.lock().expect("results poisoned")[producer]
        .clone()
        .ok_or("producer has not finished")?;
    let _ = store.remove(broken);
    let _ = store.remove_entry(done.key.as_str());

    let mut detail = done.detail.clone();
    let inputs = load_inputs(shared, producer, &mut detail)?;
    let (result, attempts) = attempt_loop(shared, producer, &inputs);
    let (outputs, log) = result.map_err(|f| {
        format!(
            "step {} failed while recreating output {output}: {}",
            step.id, f.error
        )
    })?;

    let mut refs = BTreeMap::new();
    let mut wanted = None;
    for (name, artifact) in outputs.artifacts {
        let producer_label = format!("{}@{}", step.uses, done.key.short());
        let reference = store
            .put(&artifact, &producer_label)
            .map_err(|e| e.to_string())?;
        if name == output {
            wanted = Some(Arc::new(artifact));
        }
        refs.insert(name, reference);
    }
    let entry = cache_entry(shared, step, &refs, &log, Duration::ZERO);
    store
        .put_entry(detail.key().as_str(), &entry)
        .map_err(|e| e.to_string())?;
    record_recompute(
        shared,
        done.step_run,
        &refs,
        attempts,
        started,
        output,
        problem,
    )?;
    if let Some(done) = shared.results.lock().expect("results poisoned")[producer].as_mut() {
        done.outputs = refs;
    }
    wanted.ok_or_else(|| format!("step {} did not produce output {output}", step.id))
}

/// Corrects the run store's record of a step whose outputs were taken
/// from the cache and then recomputed: the step ran in this run after all,
/// and its outputs are the new artifacts.
fn record_recompute(
    shared: &Shared<'_>,
    step_run: i64,
    refs: &BTreeMap<String, ArtifactRef>,
    attempts: u32,
    started: Instant,
    output: &str,
    problem: &str,
) -> Result<(), String> {
    let runs = shared.exec.runs;
    let finish = StepFinish {
        status: StepStatus::Succeeded,
        attempts,
        duration_ms: duration_ms(started.elapsed()),
        miss_reason: Some(format!(
            "stored output {output} was unusable ({problem}); ran again"
        )),
        error: None,
    };
    runs.finish_step(step_run, &finish)
        .map_err(|e| e.to_string())?;
    for (name, artifact) in refs {
        runs.record_output(step_run, name, &artifact_record(shared, artifact))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

struct StepFailure {
    error: String,
    cancelled: bool,
}

/// Metrics and tags a step logged during its successful attempt.
pub(super) struct ContextLog {
    metrics: Vec<(String, f64)>,
    tags: Vec<(String, String)>,
}

/// Runs the step with its retry policy. Returns the outputs of the first
/// successful attempt, or the last failure, and the number of attempts.
fn attempt_loop(
    shared: &Shared<'_>,
    i: usize,
    inputs: &BTreeMap<String, Arc<Artifact>>,
) -> (Result<(StepOutputs, ContextLog), StepFailure>, u32) {
    let step = shared.nodes[i].step;
    let registered = shared.exec.registry.get(&step.uses).expect("validated");
    let allowed = step.retries + 1;
    let mut attempt = 1;
    loop {
        let context = StepContext {
            step_id: &step.id,
            params: &step.params,
            inputs,
            cancel: shared.cancel,
            deadline: step.timeout.map(|t| Instant::now() + t),
            timeout: step.timeout,
            attempt,
            store_dir: shared.exec.store_dir,
            run_id: &shared.run_id,
            metrics: Default::default(),
            tags: Default::default(),
            progress: shared.exec.progress,
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| registered.step.run(&context)));
        let error = match result {
            Ok(Ok(outputs)) => match check_outputs(registered.signature(), &outputs) {
                Ok(()) => {
                    let log = ContextLog {
                        metrics: context.metrics.into_inner().unwrap_or_default(),
                        tags: context.tags.into_inner().unwrap_or_default(),
                    };
                    return (Ok((outputs, log)), attempt);
                }
                Err(error) => error,
            },
            Ok(Err(StepError::Cancelled(message))) if shared.cancel.is_cancelled() => {
                let failure = StepFailure {
                    error: message,
                    cancelled: true,
                };
                return (Err(failure), attempt);
            }
            Ok(Err(error)) => error.to_string(),
            Err(panic) => format!("the step panicked: {}", panic_message(&panic)),
        };

        if attempt >= allowed || shared.cancel.is_cancelled() {
            let failure = StepFailure {
                error,
                cancelled: false,
            };
            return (Err(failure), attempt);
        }
        shared.reporter.event(&Event::Retrying {
            id: &step.id,
            attempt,
            of: allowed,
            error: &error,
            delay: step.retry_delay,
        });
        tracing::debug!(attempt, %error, "attempt {attempt} of {allowed} failed; retrying");
        sleep_unless_cancelled(step.retry_delay, shared);
        attempt += 1;
    }
}

fn sleep_unless_cancelled(delay: Duration, shared: &Shared<'_>) {
    let until = Instant::now() + delay;
    while !shared.cancel.is_cancelled() {
        let now = Instant::now();
        if now >= until {
            break;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Checks that a step returned exactly its declared outputs, each of the
/// declared kind.
fn check_outputs(signature: &crate::StepSignature, outputs: &StepOutputs) -> Result<(), String> {
    for spec in &signature.outputs {
        match outputs.artifacts.get(&spec.name) {
            None => {
                return Err(format!(
                    "the step did not produce its output `{}`",
                    spec.name
                ));
            }
            Some(artifact) if artifact.kind() != spec.kind => {
                return Err(format!(
                    "output `{}` is a {}, but the step declares a {}",
                    spec.name,
                    artifact.kind(),
                    spec.kind
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = outputs
        .artifacts
        .keys()
        .find(|name| signature.find_output(name).is_none())
    {
        return Err(format!("the step produced an undeclared output `{extra}`"));
    }
    Ok(())
}

/// Writes the outputs to the store, then the cache entry (last, so that an
/// entry never points at an artifact that is not in place), then the run
/// store records.
fn store_outputs(
    shared: &Shared<'_>,
    i: usize,
    step_run: i64,
    key: &CacheKey,
    outputs: StepOutputs,
    log: &ContextLog,
    started: Instant,
) -> Result<BTreeMap<String, ArtifactRef>, String> {
    let step = shared.nodes[i].step;
    let store = shared.exec.artifacts;
    let runs = shared.exec.runs;
    let producer_label = format!("{}@{}", step.uses, key.short());

    let mut refs = BTreeMap::new();
    for (name, artifact) in outputs.artifacts {
        let reference = store
            .put(&artifact, &producer_label)
            .map_err(|e| e.to_string())?;
        let consumers = shared.consumers_of(i, &name);
        if consumers > 0 {
            shared
                .memory
                .lock()
                .expect("memory poisoned")
                .insert((i, name.clone()), (Arc::new(artifact), consumers));
        }
        refs.insert(name, reference);
    }

    let registered = shared.exec.registry.get(&step.uses).expect("validated");
    if registered.signature().cacheable && step.cache {
        let entry = cache_entry(shared, step, &refs, log, started.elapsed());
        store
            .put_entry(key.as_str(), &entry)
            .map_err(|e| e.to_string())?;
    }

    for (name, artifact) in &refs {
        runs.record_output(step_run, name, &artifact_record(shared, artifact))
            .map_err(|e| e.to_string())?;
    }
    if !log.metrics.is_empty() {
        runs.log_metrics(&shared.run_id, step_run, &log.metrics)
            .map_err(|e| e.to_string())?;
    }
    if !log.tags.is_empty() {
        runs.log_tags(&shared.run_id, step_run, &log.tags)
            .map_err(|e| e.to_string())?;
    }
    Ok(refs)
}

fn cache_entry(
    shared: &Shared<'_>,
    step: &PipelineStep,
    refs: &BTreeMap<String, ArtifactRef>,
    log: &ContextLog,
    duration: Duration,
) -> CacheEntry {
    CacheEntry {
        format_version: key::CACHE_FORMAT_VERSION,
        step: step.uses.clone(),
        outputs: refs.clone(),
        metrics: log.metrics.clone(),
        tags: log.tags.clone(),
        run_id: shared.run_id.clone(),
        duration_ms: duration_ms(duration),
    }
}

fn finish_failed(
    shared: &Shared<'_>,
    step_run: i64,
    attempts: u32,
    started: Instant,
    reason: &str,
    error: &str,
) {
    let finish = StepFinish {
        status: StepStatus::Failed,
        attempts,
        duration_ms: duration_ms(started.elapsed()),
        miss_reason: Some(reason.to_string()),
        error: Some(error.to_string()),
    };
    if let Err(e) = shared.exec.runs.finish_step(step_run, &finish) {
        tracing::warn!(error = %e, "failed to record the step's failure");
    }
}

fn failed_report(
    step: &PipelineStep,
    started: Instant,
    attempts: u32,
    reason: String,
    error: String,
) -> StepReport {
    StepReport {
        id: step.id.clone(),
        outcome: Outcome::Failed,
        duration: started.elapsed(),
        attempts,
        reason: (!reason.is_empty()).then_some(reason),
        error: Some(error),
    }
}
