//! Reads artifacts that a page finds through a run's lineage: the feature
//! importance table of a model version, and the training target of the
//! served model for the range of its predictions.
//!
//! The run store records each artifact's content hash and size, but not the
//! file digest that `ArtifactStore::get` checks. So this module reads the
//! file where the store keeps it, and accepts it only when the decoded
//! value hashes to the recorded content hash. It never writes to either
//! store.

use crate::runstore::RunDetail;
use crate::server::state::{LoadedModel, ServerState};
use flowrun_artifacts::store::{ArtifactRef, ArtifactStore};
use flowrun_artifacts::{
    Artifact, ArtifactKind, ColumnData, ContentHash, Table, format as artifact_format,
};

/// Reads a table from the artifact store by its recorded content hash and
/// size, checking that the decoded table hashes to the recorded hash. It
/// reads the file directly because the run store does not keep the file
/// digest that `ArtifactStore::get` checks.
pub(super) fn read_table(state: &ServerState, hash: &str, size: u64) -> Result<Table, String> {
    let content_hash =
        ContentHash::from_hex(hash).ok_or_else(|| format!("invalid content hash `{hash}`"))?;
    let reference = ArtifactRef {
        hash: content_hash.clone(),
        kind: ArtifactKind::Table,
        size,
        file_digest: String::new(),
    };
    let path = state.artifacts().path_of(&reference);
    let bytes =
        std::fs::read(&path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    if bytes.len() as u64 != size {
        return Err(format!(
            "{} has {} bytes, but the run recorded {size}",
            path.display(),
            bytes.len()
        ));
    }
    let (artifact, _) =
        artifact_format::decode(&bytes, ArtifactKind::Table, &path).map_err(|e| e.to_string())?;
    if artifact.content_hash() != content_hash {
        return Err(format!(
            "{} does not hold the artifact {hash}",
            path.display()
        ));
    }
    match artifact {
        Artifact::Table(table) => Ok(table),
        other => Err(format!(
            "{} holds a {}, not a table",
            path.display(),
            other.kind()
        )),
    }
}

/// Returns the range of the served model's target in its training data:
/// the minimum and maximum of the target column in the table that the step
/// which produced the model read, found through the run that registered
/// the version. `None` when the run, the step or the column is not there.
///
/// It reads the table on every call. That costs a few milliseconds for the
/// shipped data and is only done for a rendered prediction, never for
/// `/invocations`.
pub(super) fn target_range(state: &ServerState, model: &LoadedModel) -> Option<(f64, f64)> {
    let version = &model.info.version;
    let run = match state.runs().get_run(&version.run_id) {
        Ok(run) => run,
        Err(error) => {
            tracing::debug!(run = %version.run_id, %error, "no run to read the target range from");
            return None;
        }
    };
    let target = training_target(state, &run, &version.artifact_hash, &model.target)?;
    let finite = target.iter().copied().filter(|y| y.is_finite());
    let (min, max) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    (max > min).then_some((min, max))
}

/// Reads the target column from the tables that the producer of the model
/// artifact `model_hash` read in `run`.
fn training_target(
    state: &ServerState,
    run: &RunDetail,
    model_hash: &str,
    target: &str,
) -> Option<Vec<f64>> {
    let producer = run
        .steps
        .iter()
        .find(|step| step.outputs.iter().any(|o| o.artifact.hash == model_hash))?;
    for input in &producer.inputs {
        let Some(table) = run
            .steps
            .iter()
            .flat_map(|step| &step.outputs)
            .find(|o| o.artifact.hash == input.hash && o.artifact.kind == ArtifactKind::Table)
        else {
            continue;
        };
        match read_table(state, &table.artifact.hash, table.artifact.size) {
            Ok(table) => {
                if let Some(ColumnData::Float64(values)) = table.column(target).map(|c| &c.data) {
                    return Some(values.clone());
                }
            }
            Err(error) => {
                tracing::warn!(run = %run.run.id, input = %input.input, %error, "failed to read a training table");
            }
        }
    }
    None
}
