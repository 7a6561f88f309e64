//! Execution: failures end a run cleanly, retries keep their count and
//! delay, timeouts cancel a step, and independent steps run in parallel.

mod common;

use common::Project;

/// Parses the millisecond timestamps that `flaky` writes per attempt.
fn attempt_times(lines: &[String]) -> Vec<u128> {
    lines
        .iter()
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

fn statuses(project: &Project) -> Vec<(String, String)> {
    let db = project.db();
    let mut statement = db
        .prepare("SELECT step_id, status FROM step_runs WHERE run_id = (SELECT id FROM runs ORDER BY seq DESC LIMIT 1) ORDER BY step_id")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn failed_step_skips_dependents() {
    //   ok ──> after_ok
    //   boom ─> after_boom ─> last
    //   slow (independent, already running when boom fails)
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: fails\nsteps:\n  slow:\n    uses: sleep\n    params: {seconds: 1.0, trace: t}\n  boom:\n    uses: fail\n    params: {message: disk on fire}\n  after_boom:\n    uses: scale\n    inputs: {x: boom.out}\n  last:\n    uses: scale\n    inputs: {x: after_boom.out}\n  later:\n    uses: emit\n    after: [slow]\n",
    );
    let out = project.run(&["run", "p.yaml", "--jobs", "2"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("disk on fire"), "{}", out.all());
    assert_eq!(out.status_of("boom").as_deref(), Some("failed"));
    assert_eq!(out.status_of("after_boom").as_deref(), Some("skipped"));
    assert_eq!(out.status_of("last").as_deref(), Some("skipped"));
    // The failure is printed before the steps it skipped.
    let position = |text: &str| out.stderr.find(text).unwrap_or(usize::MAX);
    assert!(
        position("failed    boom") < position("skipped   after_boom"),
        "{}",
        out.all()
    );
    // The independent running step finished; the one not started is skipped.
    assert_eq!(
        out.status_of("slow").as_deref(),
        Some("ran"),
        "{}",
        out.all()
    );
    assert_eq!(
        out.status_of("later").as_deref(),
        Some("skipped"),
        "{}",
        out.all()
    );
    assert_eq!(project.trace("t"), vec!["slow start", "slow end"]);

    let recorded = statuses(&project);
    assert_eq!(recorded.len(), 5, "{recorded:?}");
    assert!(recorded.iter().all(|(_, s)| s != "running"), "{recorded:?}");
    let run = project.latest_run();
    assert_eq!(run["status"], "failed", "{run}");
    // The run keeps the pipeline's graph, so the connections of the steps
    // that never started are known too.
    let graph = run["graph"]["steps"].as_array().expect("graph recorded");
    let step = |id: &str| graph.iter().find(|s| s["id"] == id).unwrap().clone();
    assert_eq!(step("last")["inputs"]["x"], "after_boom.out", "{run}");
    assert_eq!(step("later")["after"][0], "slow", "{run}");
}

#[test]
fn keep_going_runs_independent_steps() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: keep\nsteps:\n  boom:\n    uses: fail\n  after_boom:\n    uses: scale\n    inputs: {x: boom.out}\n  other:\n    uses: emit\n    after: [boom]\n  free:\n    uses: emit\n  after_free:\n    uses: scale\n    inputs: {x: free.out}\n",
    );
    let out = project.run(&["run", "p.yaml", "--keep-going", "--jobs", "1"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(out.status_of("boom").as_deref(), Some("failed"));
    assert_eq!(out.status_of("after_boom").as_deref(), Some("skipped"));
    assert_eq!(out.status_of("other").as_deref(), Some("skipped"));
    assert_eq!(
        out.status_of("free").as_deref(),
        Some("ran"),
        "{}",
        out.all()
    );
    assert_eq!(
        out.status_of("after_free").as_deref(),
        Some("ran"),
        "{}",
        out.all()
    );

    let stopped = project.run(&["run", "p.yaml", "--jobs", "1", "--no-cache"]);
    assert_eq!(stopped.code, 1, "{}", stopped.all());
    assert_eq!(
        stopped.status_of("free").as_deref(),
        Some("skipped"),
        "{}",
        stopped.all()
    );
}

#[test]
fn retries_keep_count_and_delay() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: retry\nsteps:\n  flaky:\n    uses: flaky\n    params: {fail_times: 2, trace: t}\n    retries: 2\n    retry_delay: 1s\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.status_of("flaky").as_deref(), Some("ran"));
    let lines = project.trace("t");
    assert_eq!(lines.len(), 3, "{lines:?}");
    let times = attempt_times(&lines);
    assert!(times[1] - times[0] >= 1000, "{times:?}");
    assert!(times[2] - times[1] >= 1000, "{times:?}");
    let attempts: i64 = project
        .db()
        .query_row(
            "SELECT attempts FROM step_runs WHERE step_id = 'flaky'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(attempts, 3);
}

#[test]
fn exhausted_retries_fail_uncached() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: retry\nsteps:\n  flaky:\n    uses: flaky\n    params: {fail_times: 5, trace: t}\n    retries: 2\n    retry_delay: 1s\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(out.status_of("flaky").as_deref(), Some("failed"));
    assert_eq!(project.trace("t").len(), 3);

    // Nothing of the failed attempts was cached: the next run tries again.
    let again = project.run(&["run", "p.yaml"]);
    assert_eq!(again.status_of("flaky").as_deref(), Some("failed"));
    assert_eq!(project.trace("t").len(), 6);
}

#[test]
fn timeout_cancels_cooperatively() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: slow\nsteps:\n  nap:\n    uses: sleep\n    params: {seconds: 30, trace: t}\n    timeout: 300ms\n",
    );
    let started = std::time::Instant::now();
    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(
        out.status_of("nap").as_deref(),
        Some("failed"),
        "{}",
        out.all()
    );
    assert!(
        out.stderr
            .contains("timed out after 300ms; raise `timeout:` of step `nap`"),
        "{}",
        out.all()
    );
    assert_eq!(project.trace("t"), vec!["nap start"]);
    assert!(started.elapsed().as_secs() < 20, "the step was not stopped");
}

#[test]
fn independent_steps_overlap() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: par\nsteps:\n  one:\n    uses: sleep\n    params: {seconds: 1.5, trace: t}\n  two:\n    uses: sleep\n    params: {seconds: 1.6, trace: t}\n",
    );
    let out = project.run(&["run", "p.yaml", "--jobs", "2"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let lines = project.trace("t");
    // Both started before either ended.
    assert_eq!(lines[0].split(' ').nth(1), Some("start"), "{lines:?}");
    assert_eq!(lines[1].split(' ').nth(1), Some("start"), "{lines:?}");

    project.write(
        "p.yaml",
        &std::fs::read_to_string(project.path().join("p.yaml"))
            .unwrap()
            .replace("1.5", "0.4")
            .replace("1.6", "0.3"),
    );
    std::fs::remove_file(project.path().join("t")).unwrap();
    let serial = project.run(&["run", "p.yaml", "--jobs", "1"]);
    assert_eq!(serial.code, 0, "{}", serial.all());
    let lines = project.trace("t");
    assert_eq!(
        lines[1].split(' ').nth(1),
        Some("end"),
        "one job runs one step at a time: {lines:?}"
    );
}

#[test]
fn step_error_is_reported() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: failing\nsteps:\n  t:\n    uses: fail\n    params: {message: the disk is full}\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("the disk is full"), "{}", out.all());

    // --quiet prints only errors, and a failed step is one.
    let quiet = project.run(&["-q", "run", "p.yaml"]);
    assert_eq!(quiet.code, 1, "{}", quiet.all());
    assert!(
        quiet.stderr.contains("failed") && quiet.stderr.contains("the disk is full"),
        "{}",
        quiet.all()
    );
    assert!(!quiet.stderr.contains("Run "), "{}", quiet.all());
}

#[test]
fn interrupt_cancels_running_step() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: long\nsteps:\n  nap:\n    uses: sleep\n    params: {seconds: 60, trace: t}\n  after:\n    uses: emit\n    after: [nap]\n",
    );
    let mut child = project
        .command(&["run", "p.yaml"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while project.trace("t").is_empty() {
        assert!(started.elapsed().as_secs() < 30, "the step never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let stopping = std::time::Instant::now();
    let code = child.wait().unwrap().code();
    assert!(
        stopping.elapsed().as_secs() < 10,
        "cancellation took too long"
    );
    assert_eq!(code, Some(130));
    let recorded = statuses(&project);
    assert_eq!(
        recorded,
        vec![
            ("after".to_string(), "skipped".to_string()),
            ("nap".to_string(), "cancelled".to_string()),
        ]
    );
    let run = project.latest_run();
    assert_eq!(run["status"], "cancelled", "{run}");
}
