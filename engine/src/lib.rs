//! The flowrun engine: it turns a pipeline written in YAML into a validated
//! spec, a graph of steps, a cache key per step, a parallel execution and a
//! record of every run in SQLite.
//!
//! The data path, one module per stage:
//!
//! 1. [`spec`] reads the YAML and validates it against the [`registry`] of
//!    steps, collecting every error with its file, line and column.
//! 2. [`graph`] builds the DAG of steps with petgraph and rejects cycles.
//! 3. [`key`] computes each step's cache key from its code fingerprint,
//!    parameters and input hashes.
//! 4. [`executor`] runs the graph on a rayon pool, taking cached results from
//!    the artifact store where the key matches.
//! 5. [`runstore`] records runs, steps, parameters, metrics and lineage in
//!    SQLite, and keeps the model registry.
//! 6. [`server`] serves the production version of a registered model over
//!    HTTP and swaps in new versions without dropping a request.
//!
//! The engine never depends on a crate of domain steps: steps implement
//! [`Step`] and are added to a [`Registry`] by the binary that wires them in.

#![warn(missing_docs)]

pub mod contents;
pub mod executor;
pub mod graph;
pub mod key;
pub mod param;
pub mod predict;
pub mod registry;
pub mod runstore;
pub mod server;
pub mod spec;
pub mod step;

pub use param::{ParamType, ParamValue};
pub use registry::Registry;
pub use step::{
    CancelToken, CodeFingerprint, InputSpec, OutputSpec, ParamSpec, Step, StepContext, StepError,
    StepOutputs, StepSignature,
};
