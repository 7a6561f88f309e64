//! The web pages in a real browser. The deployment pipeline runs twice on
//! the shipped sample, so the registry has two versions and the server
//! runs. Then `tests/browser/predict.test.mjs` drives headless Chromium
//! through the predict form, the models and runs pages and the 404 page.
//!
//! The test skips, and passes, only where Chromium (`/usr/bin/chromium`,
//! Debian's package) or `node` is missing; `.ci/run` installs both
//! dependencies of the test. The screenshots go to a temporary folder;
//! with `FLOWRUN_UPDATE_SCREENSHOTS=1` they replace the ones in
//! `docs/screenshots/`.

mod serving_common;

use serving_common::{Project, repo, server_port};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser the test script launches, as `executablePath`.
const CHROMIUM: &str = "/usr/bin/chromium";

/// The screenshots the script writes.
const SCREENSHOTS: [&str; 4] = ["predict.png", "models.png", "runs.png", "run.png"];

/// Returns why the browser test cannot run here, if it cannot.
fn missing_tool() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "Chromium not found at {CHROMIUM}; install it with `apt-get install -y chromium`"
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(output) if output.status.success() => None,
        _ => Some("`node` not found on PATH; install Node.js 20 or later".to_string()),
    }
}

/// Installs the script's pinned packages when `node_modules` is missing.
fn install_packages(dir: &Path) {
    if dir.join("node_modules/playwright-core").is_dir() {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .expect("failed to start `npm ci`; install npm or run it in tests/browser by hand");
    assert!(
        output.status.success(),
        "`npm ci` in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn screenshot_dir(project: &Project) -> PathBuf {
    if std::env::var_os("FLOWRUN_UPDATE_SCREENSHOTS").is_some() {
        repo().join("docs/screenshots")
    } else {
        project.path().join("screenshots")
    }
}

#[test]
fn browser_drives_web_pages() {
    if let Some(reason) = missing_tool() {
        println!("skipping the browser test: {reason}");
        return;
    }
    let browser_dir = repo().join("tests/browser");
    install_packages(&browser_dir);

    let project = Project::new();
    let _guard = project.guard();
    let first = project.deploy(0, &["max_mse=100"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let port = server_port(&project);
    let second = project.deploy(
        port,
        &[
            "max_mse=100",
            "require_improvement=false",
            "train_model.iterations=120",
        ],
    );
    assert_eq!(second.code, 0, "{}", second.all());

    let shots = screenshot_dir(&project);
    let output = Command::new("node")
        .args(["--test", "--test-timeout=120000", "predict.test.mjs"])
        .current_dir(&browser_dir)
        .env("FLOWRUN_URL", format!("http://127.0.0.1:{port}"))
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("failed to start node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    for name in SCREENSHOTS {
        let size = std::fs::metadata(shots.join(name)).map_or(0, |m| m.len());
        assert!(size > 10_000, "screenshot {name} is missing or empty");
    }
}
