//! Helpers of the serving and deployment tests. They provide a temporary
//! project with the shipped pipelines, a runner for the real `flowrun`
//! binary, a free loopback port and a raw HTTP client. A guard stops the
//! store's server when a test ends, even when it fails.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Returns the repository root, which contains the pipelines and sample data.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary folder with the shipped pipelines and its own store, and
/// the server guard of that store.
pub struct Project {
    dir: tempfile::TempDir,
}

/// The result of one `flowrun` invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("failed to create a temp dir");
        let pipelines = dir.path().join("pipelines");
        std::fs::create_dir_all(&pipelines).unwrap();
        for name in ["training.yaml", "deployment.yaml", "inference.yaml"] {
            std::fs::copy(repo().join("pipelines").join(name), pipelines.join(name)).unwrap();
        }
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> PathBuf {
        self.path().join(".flowrun")
    }

    pub fn server_dir(&self) -> PathBuf {
        self.store().join("server")
    }

    /// Returns a `flowrun` command running in the project.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowrun"));
        command
            .args(args)
            .current_dir(self.path())
            .env_remove("FLOWRUN_STORE")
            .env_remove("FLOWRUN_LOG");
        command
    }

    /// Runs `flowrun` with `args` and waits for it.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(
            self.command(args)
                .output()
                .expect("failed to start flowrun"),
        )
    }

    /// Runs the deployment pipeline on the shipped sample with the server
    /// on `port`, plus `extra` overrides.
    pub fn deploy(&self, port: u16, extra: &[&str]) -> Run {
        self.deploy_data(&repo().join("data/olist-sample"), port, extra)
    }

    /// Runs the deployment pipeline on the Olist tables in `data_dir`, with
    /// the server on `port`, plus `extra` overrides.
    pub fn deploy_data(&self, data_dir: &Path, port: u16, extra: &[&str]) -> Run {
        let data = format!("data_dir={}", data_dir.display());
        let port = format!("port={port}");
        let mut args = vec![
            "run",
            "pipelines/deployment.yaml",
            "--set",
            &data,
            "--set",
            &port,
        ];
        for item in extra {
            args.push("--set");
            args.push(item);
        }
        self.run(&args)
    }

    /// Returns the `deployment_trigger` step of the latest run, as
    /// `runs show latest --json` prints it.
    pub fn latest_trigger(&self) -> serde_json::Value {
        let out = self.run(&["runs", "show", "latest", "--json"]);
        let run: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("runs show --json ({e}): {}", out.all()));
        run["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["step_id"] == "deployment_trigger"))
            .cloned()
            .unwrap_or_else(|| panic!("no deployment_trigger step in {run}"))
    }

    /// Returns the server pid from `flowrun serve status --json`, if one
    /// runs.
    pub fn server_pid(&self) -> Option<u32> {
        let status = self.run(&["serve", "status", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&status.stdout).ok()?;
        json["pid"].as_u64().map(|pid| pid as u32)
    }

    /// Returns a guard that stops the store's server when dropped.
    pub fn guard(&self) -> ServerGuard<'_> {
        ServerGuard { project: self }
    }

    /// Parses `flowrun models --json`.
    pub fn models(&self) -> serde_json::Value {
        let out = self.run(&["models", "--json"]);
        assert_eq!(out.code, 0, "{}", out.all());
        serde_json::from_str(&out.stdout).expect("models --json prints JSON")
    }

    /// Returns the production version of the default model.
    pub fn production_version(&self) -> Option<i64> {
        let models = self.models();
        models["models"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == "customer_satisfaction")?["production_version"]
            .as_i64()
    }
}

/// Stops the project's server on drop: `flowrun serve stop`, then SIGKILL
/// of the recorded pid if the process is still there.
pub struct ServerGuard<'a> {
    project: &'a Project,
}

impl Drop for ServerGuard<'_> {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.project.server_dir().join("server.pid"))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        let _ = self
            .project
            .command(&["serve", "stop", "--timeout", "5"])
            .output();
        if let Some(pid) = pid
            && !process_gone(pid)
        {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
        }
    }
}

/// Returns the port of the store's running server, as `flowrun serve
/// status` reports it. Tests start servers on port 0, so that the server
/// binds a free port itself and no two tests race for one.
pub fn server_port(project: &Project) -> u16 {
    let status = project.run(&["serve", "status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout)
        .unwrap_or_else(|e| panic!("serve status --json ({e}): {}", status.all()));
    json["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("no server runs: {json}")) as u16
}

/// Returns whether a process has exited: no `/proc` entry, or a zombie
/// waiting for its parent to reap it.
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Waits up to `timeout` for `condition`.
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    condition()
}

/// An HTTP response: status, the model version header and the body.
pub struct Answer {
    pub status: u16,
    pub version: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn answer(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Answer, String> {
    let mut response = response.map_err(|e| e.to_string())?;
    let version = response
        .headers()
        .get("x-flowrun-model-version")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 28)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        status,
        version,
        body,
    })
}

/// Sends `GET path` to 127.0.0.1:`port`.
pub fn get(port: u16, path: &str) -> Result<Answer, String> {
    answer(
        agent()
            .get(&format!("http://127.0.0.1:{port}{path}"))
            .call(),
    )
}

/// Sends `POST /invocations` with a body and content type.
pub fn post(port: u16, content_type: &str, body: &str) -> Result<Answer, String> {
    answer(
        agent()
            .post(&format!("http://127.0.0.1:{port}/invocations"))
            .header("content-type", content_type)
            .send(body.to_string()),
    )
}

/// Builds one valid `dataframe_records` row from the served model's
/// metadata: every feature present, numbers for numeric features and the
/// first level for categorical ones.
pub fn valid_record(port: u16) -> serde_json::Map<String, serde_json::Value> {
    let metadata = get(port, "/metadata").expect("metadata").json();
    metadata["features"]
        .as_array()
        .expect("features list")
        .iter()
        .map(|f| {
            let value = if f["type"] == "numeric" {
                serde_json::json!(1.5)
            } else {
                f["levels"][0].clone()
            };
            (f["name"].as_str().unwrap().to_string(), value)
        })
        .collect()
}
