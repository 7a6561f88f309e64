//! Two flowrun processes on one store: a shared step executes once, the
//! other run waits and reuses it, and SQLite never reports a locked
//! database.

mod common;

use common::Project;

#[test]
fn concurrent_runs_share_a_step() {
    let project = Project::new();
    let shared = "  shared:\n    uses: sleep\n    params: {seconds: 1.5, trace: t}\n";
    project.write(
        "one.yaml",
        &format!("name: one\nsteps:\n{shared}  mine:\n    uses: emit\n    params: {{value: 1, trace: t}}\n    after: [shared]\n"),
    );
    project.write(
        "two.yaml",
        &format!("name: two\nsteps:\n{shared}  mine:\n    uses: emit\n    params: {{value: 2, trace: t}}\n    after: [shared]\n"),
    );

    let first = project
        .command(&["run", "one.yaml"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let second = project
        .command(&["run", "two.yaml"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    let first_err = String::from_utf8_lossy(&first.stderr);
    let second_err = String::from_utf8_lossy(&second.stderr);

    assert!(first.status.success(), "{first_err}");
    assert!(second.status.success(), "{second_err}");
    for text in [&first_err, &second_err] {
        assert!(!text.contains("database is locked"), "{text}");
    }

    let trace = project.trace("t");
    let starts = trace
        .iter()
        .filter(|l| l.as_str() == "shared start")
        .count();
    assert_eq!(starts, 1, "the shared step executed once: {trace:?}");
    assert_eq!(
        trace.iter().filter(|l| l.as_str() == "mine").count(),
        2,
        "{trace:?}"
    );
    let reused = [&first_err, &second_err]
        .iter()
        .filter(|text| text.contains("computed by a concurrent run"))
        .count();
    assert_eq!(
        reused, 1,
        "one run reused the other's result\n{first_err}\n{second_err}"
    );

    let db = project.db();
    let runs: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(runs, 2);
}

#[test]
fn many_parallel_runs_record_everything() {
    let project = Project::new();
    let mut yaml = String::from("name: wide\nsteps:\n");
    for i in 0..40 {
        yaml.push_str(&format!(
            "  s{i}:\n    uses: noop\n    params: {{n: {i}}}\n"
        ));
    }
    project.write("p.yaml", &yaml);
    let children: Vec<_> = (0..4)
        .map(|_| {
            project
                .command(&["run", "p.yaml", "--jobs", "2"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{text}");
        assert!(!text.contains("locked"), "{text}");
    }
    let steps: i64 = project
        .db()
        .query_row("SELECT COUNT(*) FROM step_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(steps, 160);
}
