//! `flowrun models`: list registered models and versions, promote a version
//! to a stage, roll production back, and show the stage history. Promotions
//! to production and rollbacks go through the engine's deploy module, so a
//! running server follows them and a version it cannot load is not left in
//! production. This module never talks to the server or writes SQL itself.

use crate::args::{ModelsArgs, ModelsCommand, StageArg};
use crate::output::outln;
use anyhow::Context;
use flowrun_engine::runstore::{ModelVersionInfo, RunStore, Stage};
use flowrun_engine::server::deploy::{self, PromoteOutcome, ServerPolicy, ServerReport};
use std::collections::BTreeMap;
use std::path::Path;

pub(crate) fn models(args: &ModelsArgs, store_dir: &Path) -> anyhow::Result<u8> {
    let path = store_dir.join("runs.db");
    if !path.exists() {
        anyhow::bail!(
            "no run store at {}; run a pipeline first, or point --store at the store directory",
            path.display()
        );
    }
    let runs = RunStore::open(&path).context("failed to open the run store")?;
    if let Some(
        ModelsCommand::Promote { name, .. }
        | ModelsCommand::Rollback { name, .. }
        | ModelsCommand::History { name, .. },
    ) = &args.command
    {
        require_registered(&runs, name)?;
    }
    match &args.command {
        None => list(&runs, args.json),
        Some(ModelsCommand::Promote {
            name,
            version,
            stage,
            reason,
        }) => promote(&runs, store_dir, name, *version, *stage, reason.as_deref()),
        Some(ModelsCommand::Rollback { name, reason }) => {
            let current = runs.production_version(name)?.map(|v| v.version);
            let reason = reason.clone().unwrap_or_else(|| match current {
                Some(current) => format!("manual rollback from version {current}"),
                None => "manual rollback".to_string(),
            });
            let outcome = deploy::rollback(
                store_dir,
                &runs,
                name,
                &reason,
                &ServerPolicy::NotifyIfRunning,
            )?;
            print_outcome(&outcome);
            Ok(0)
        }
        Some(ModelsCommand::History { name, json }) => history(&runs, name, *json || args.json),
    }
}

/// Fails unless `name` has a registered version, naming the models that do,
/// so that a typo is not reported as "no history" or "no version 3".
fn require_registered(runs: &RunStore, name: &str) -> anyhow::Result<()> {
    let mut names: Vec<String> = runs
        .list_models()?
        .into_iter()
        .map(|version| version.model)
        .collect();
    names.dedup();
    if names.iter().any(|registered| registered == name) {
        return Ok(());
    }
    if names.is_empty() {
        anyhow::bail!(
            "model `{name}` is not registered, and no model is registered yet; the deployment \
             pipeline (pipelines/deployment.yaml) registers them"
        );
    }
    anyhow::bail!(
        "model `{name}` is not registered; the registered models are: {}",
        names.join(", ")
    );
}

fn list(runs: &RunStore, json: bool) -> anyhow::Result<u8> {
    let versions = runs.list_model_versions()?;
    let mut by_model: BTreeMap<&str, Vec<&ModelVersionInfo>> = BTreeMap::new();
    for version in &versions {
        by_model
            .entry(version.version.model.as_str())
            .or_default()
            .push(version);
    }

    if json {
        let models: Vec<serde_json::Value> = by_model
            .iter()
            .map(|(name, versions)| {
                let production = versions
                    .iter()
                    .find(|v| v.version.stage == Stage::Production)
                    .map(|v| v.version.version);
                serde_json::json!({
                    "name": name,
                    "production_version": production,
                    "versions": versions,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "models": models }))?
        );
        return Ok(0);
    }
    if versions.is_empty() {
        outln!("No models registered yet; the deployment pipeline registers them.");
        return Ok(0);
    }
    outln!(
        "{:<24} {:>7}  {:<10} {:>10}  {:<18} {:<22} {:<19}",
        "MODEL",
        "VERSION",
        "STAGE",
        "MSE",
        "FLAVOR",
        "RUN",
        "REGISTERED"
    );
    for version in &versions {
        let v = &version.version;
        let mse = v
            .metrics
            .get("mse")
            .and_then(|m| m.as_f64())
            .map_or("-".to_string(), |m| format!("{:.4}", m));
        outln!(
            "{:<24} {:>7}  {:<10} {:>10}  {:<18} {:<22} {:<19}",
            v.model,
            v.version,
            v.stage.as_str(),
            mse,
            version.flavor.as_deref().unwrap_or("-"),
            v.run_id,
            v.created_at
                .replace('T', " ")
                .chars()
                .take(19)
                .collect::<String>()
        );
    }
    Ok(0)
}

fn promote(
    runs: &RunStore,
    store_dir: &Path,
    name: &str,
    version: i64,
    stage: StageArg,
    reason: Option<&str>,
) -> anyhow::Result<u8> {
    let stage = match stage {
        StageArg::Staging => Stage::Staging,
        StageArg::Production => Stage::Production,
        StageArg::Archived => Stage::Archived,
    };
    let reason = reason
        .map(str::to_string)
        .unwrap_or_else(|| format!("promoted to {stage} by hand"));
    if stage == Stage::Production {
        let outcome = deploy::promote(
            store_dir,
            runs,
            name,
            version,
            &reason,
            &ServerPolicy::NotifyIfRunning,
        )?;
        print_outcome(&outcome);
        return Ok(0);
    }

    let current = runs.production_version(name)?.map(|v| v.version);
    runs.set_stage(name, version, stage, &reason)?;
    outln!("Model {name} version {version} is now in {stage}.");
    if current == Some(version) {
        outln!(
            "It was the production version: the model has no production version now, and a \
             running server keeps serving version {version} until another one is promoted."
        );
    }
    Ok(0)
}

fn print_outcome(outcome: &PromoteOutcome) {
    let previous = match outcome.previous {
        Some(previous) if previous != outcome.version => {
            format!(" (version {previous} archived)")
        }
        _ => String::new(),
    };
    outln!(
        "Model {} version {} is in production{previous}.",
        outcome.model,
        outcome.version
    );
    match &outcome.server {
        ServerReport::Serving {
            pid, port, version, ..
        } => outln!("The server (pid {pid}, port {port}) serves version {version}."),
        ServerReport::NotRunning => {
            outln!("No server is running; `flowrun serve --daemon` serves the production version.")
        }
        ServerReport::NotNotified { reason } => outln!(
            "The server was not notified ({reason}); it picks up the change at its next registry poll."
        ),
    }
}

fn history(runs: &RunStore, name: &str, json: bool) -> anyhow::Result<u8> {
    let transitions = runs.stage_history(name)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&transitions)?);
        return Ok(0);
    }
    if transitions.is_empty() {
        outln!("Model {name} has no stage changes.");
        return Ok(0);
    }
    outln!(
        "{:<19} {:>7}  {:<10} {:<10} {:<12} REASON",
        "AT",
        "VERSION",
        "FROM",
        "TO",
        "BY"
    );
    for t in &transitions {
        outln!(
            "{:<19} {:>7}  {:<10} {:<10} {:<12} {}",
            t.at.replace('T', " ").chars().take(19).collect::<String>(),
            t.version,
            t.from_stage.as_str(),
            t.to_stage.as_str(),
            t.by,
            t.reason
        );
    }
    Ok(0)
}
