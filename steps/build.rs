//! Fingerprints the step modules, and tells the tests whether the full
//! Olist data sits beside the repository (`../shared/data/olist`), so that
//! the tests that need it show as ignored, with the reason, in a clone
//! without it.

use std::path::Path;

fn main() {
    flowrun_build::write_fingerprints();

    println!("cargo::rustc-check-cfg=cfg(flowrun_no_full_data)");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace_parent = Path::new(&manifest).join("../..");
    let data = workspace_parent.join("shared/data/olist");
    if !data.is_dir() {
        println!("cargo::rustc-cfg=flowrun_no_full_data");
    }
    // Re-check when the folder beside the repository appears or goes.
    let watched = if data.is_dir() {
        data
    } else {
        workspace_parent
    };
    println!("cargo::rerun-if-changed={}", watched.display());
}
