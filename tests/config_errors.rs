//! Bad configs through the real binary: each names file, line and column and says what is wrong.

mod common;

use assert_cmd::Command;
use predicates::str::contains;

/// (what, config, expected message, expected `devstack.toml:LINE:COL`)
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "syntax",
        "[services.a\nrun = \"x\"\n",
        "unclosed table, expected `]`",
        "devstack.toml:1:12",
    ),
    (
        "unknown key",
        "[services.a]\nrun = \"x\"\nbulid = \"y\"\n",
        "unknown key `bulid`",
        "devstack.toml:3:1",
    ),
    (
        "unknown section",
        "[stak]\nname = \"x\"\n",
        "did you mean `stack`?",
        "devstack.toml:1:2",
    ),
    (
        "wrong type",
        "[services.a]\nrun = 5\n",
        "invalid type: integer `5`, expected a command string",
        "devstack.toml:2:7",
    ),
    (
        "bad duration",
        "[services.a]\nrun = \"x\"\ngrace = \"5 parsecs\"\n",
        "invalid duration `5 parsecs`",
        "devstack.toml:3:9",
    ),
    (
        "unknown dependency",
        "[services.a]\nrun = \"x\"\ndepends_on = [\"dbb\"]\n[services.db]\nrun = \"y\"\n",
        "unknown service `dbb`; did you mean `db`? services are: a, db",
        "devstack.toml:3:15",
    ),
    (
        "cycle",
        "[services.a]\nrun = \"x\"\ndepends_on = [\"b\"]\n[services.b]\nrun = \"y\"\ndepends_on = [\"c\"]\n[services.c]\nrun = \"z\"\ndepends_on = [\"a\"]\n",
        "dependency cycle: a → b → c → a",
        "devstack.toml:3:15",
    ),
    (
        "undefined variable",
        "[services.a]\nrun = \"echo ${DEVSTACK_TEST_NOPE}\"\n",
        "undefined variable `DEVSTACK_TEST_NOPE`",
        "devstack.toml:2:13",
    ),
    (
        "duplicate port",
        "[services.a]\nrun = \"x\"\nport = 8000\n[services.b]\nrun = \"y\"\nport = 8000\n",
        "port 8000 is used by both `a` and `b`",
        "devstack.toml:6:8",
    ),
    (
        "bad restart",
        "[services.a]\nrun = \"x\"\nrestart = \"sometimes\"\n",
        "unknown variant `sometimes`, expected one of `no`, `on-failure`, `always`",
        "devstack.toml:3:11",
    ),
    (
        "bad signal",
        "[services.a]\nrun = \"x\"\nstop_signal = \"TERMINATE\"\n",
        "unknown signal `TERMINATE`",
        "devstack.toml:3:15",
    ),
    (
        "nothing to run",
        "[services.a]\ncwd = \".\"\n",
        "service `a` has neither `run` nor `build`",
        "devstack.toml:1:11",
    ),
    (
        "two probes",
        "[services.a]\nrun = \"x\"\nport = 9\n[services.a.health]\nhttp = \"/h\"\ntcp = true\n",
        "exactly one of `http`, `tcp`, `cmd` or `log`",
        "devstack.toml:4:1",
    ),
    (
        "port out of range",
        "[services.a]\nrun = \"x\"\nport = 70000\n",
        "port 70000 is out of range; use 1-65535",
        "devstack.toml:3:8",
    ),
    (
        "missing env_file",
        "[stack]\nenv_file = \".nope\"\n[services.a]\nrun = \"x\"\n",
        "cannot read env_file",
        "devstack.toml:2:12",
    ),
    (
        "bad condition",
        "[services.a]\nrun = \"x\"\ndepends_on = { b = \"ready\" }\n[services.b]\nrun = \"y\"\n",
        "unknown variant `ready`, expected one of `started`, `healthy`, `completed`",
        "devstack.toml:3:20",
    ),
    (
        "empty command",
        "[services.a]\nrun = []\n",
        "the command array is empty",
        "devstack.toml:2:7",
    ),
    (
        "bad regex",
        "[services.a]\nrun = \"x\"\n[services.a.health]\nlog = \"(unclosed\"\n",
        "invalid regex",
        "devstack.toml:4:7",
    ),
    (
        "healthy without a probe",
        "[services.a]\nrun = \"x\"\ndepends_on = { b = \"healthy\" }\n[services.b]\nrun = \"y\"\n",
        "`b` has no [services.b.health]",
        "devstack.toml:3:16",
    ),
    (
        "completed on a service that keeps running",
        "[services.a]\nrun = \"x\"\ndepends_on = { db = \"completed\" }\n[services.db]\nrun = \"y\"\n",
        "`db` keeps running (it has `run`), so it never completes",
        "devstack.toml:3:16",
    ),
    (
        "probe interval too short",
        "[services.a]\nrun = \"x\"\n[services.a.health]\ncmd = \"true\"\ninterval = \"0s\"\n",
        "health `interval` must be at least 10ms",
        "devstack.toml:3:1",
    ),
    (
        "absurd duration",
        "[services.a]\nrun = \"x\"\ngrace = \"500000000000y\"\n",
        "is longer than a week",
        "devstack.toml:3:9",
    ),
    (
        "unknown service port",
        "[services.a]\nrun = \"x ${services.nope.port}\"\n",
        "unknown service `nope`",
        "devstack.toml:2:10",
    ),
];

#[test]
fn every_bad_config_names_file_line_column_and_the_problem() {
    for (what, toml, message, location) in CASES {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("devstack.toml"), toml).unwrap();
        let out = Command::new(common::BIN)
            .arg("check")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: exit code\n{stderr}");
        assert!(
            stderr.contains(message),
            "{what}: expected `{message}` in\n{stderr}"
        );
        assert!(
            stderr.contains(location),
            "{what}: expected `{location}` in\n{stderr}"
        );
    }
}

#[test]
fn the_offending_line_is_shown_with_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("devstack.toml"),
        "[services.a]\nrun = \"x\"\ngrace = \"soon\"\n",
    )
    .unwrap();
    Command::new(common::BIN)
        .arg("check")
        .current_dir(dir.path())
        .assert()
        .code(2)
        .stderr(contains("3 | grace = \"soon\"\n  |         ^^^^^^"));
}

#[test]
fn check_finds_the_config_in_a_parent_folder_and_prints_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("devstack.toml"),
        "[services.api]\nrun = \"serve\"\nport = 7001\ndepends_on = [\"db\"]\n[services.db]\nrun = \"db\"\n",
    )
    .unwrap();
    let sub = dir.path().join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let out = Command::new(common::BIN)
        .arg("check")
        .current_dir(&sub)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let db = text.find("1. db").expect("db first");
    let api = text.find("2. api").expect("api second");
    assert!(
        db < api && text.contains("port:  7001") && text.contains("after: db (started)"),
        "{text}"
    );
}

#[test]
fn file_flag_overrides_and_a_missing_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    Command::new(common::BIN)
        .arg("check")
        .current_dir(dir.path())
        .assert()
        .code(2)
        .stderr(contains("no devstack.toml in"));
    std::fs::write(dir.path().join("other.toml"), "[services.x]\nrun = \"y\"\n").unwrap();
    Command::new(common::BIN)
        .args(["check", "-f", "other.toml"])
        .current_dir(dir.path())
        .assert()
        .success()
        .stdout(contains("1. x"));
}
