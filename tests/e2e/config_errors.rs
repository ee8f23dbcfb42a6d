//! Bad configs through the real binary: each names file, line and column and says what is wrong.

use assert_cmd::Command;
use predicates::str::contains;

/// (what, config, expected message, expected `devstack.toml:LINE:COL`)
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "a bad word in a fault scenario",
        "[services.users]\nrun = \"x\"\nport = 8080\n[faults.slow]\nfaults = [\"users latency=2s\", \"users latncy=2s\"]\n",
        "`latncy` is not a fault's word",
        "devstack.toml:5:31",
    ),
    (
        "a fault scenario's caller not in the stack",
        "[services.users]\nrun = \"x\"\nport = 8080\n[faults.slow]\nfaults = [\"orders->users error=503\"]\n",
        "unknown service `orders`; services are: users (or `external`, for a caller)",
        "devstack.toml:5:12",
    ),
    (
        "a fault scenario on a service not proxied",
        "[services.db]\nrun = \"x\"\nport = 8080\nproxy = false\n[faults.db-down]\nfaults = [\"db reset\"]\n",
        "db is not proxied",
        "devstack.toml:6:12",
    ),
    (
        "a bad word in a fault scenario's table",
        "[services.users]\nrun = \"x\"\nport = 8080\n[faults.slow]\nusers = { latency = \"2s\", colour = \"red\" }\n",
        "`colour` is not a fault's word",
        "devstack.toml:5:9",
    ),
    (
        "a fault scenario's table scoped on a service not in the stack",
        "[services.users]\nrun = \"x\"\nport = 8080\n[faults.slow]\n\"orders->users\" = { error = 503 }\n",
        "unknown service `orders`",
        "devstack.toml:5:1",
    ),
    (
        "a word set false in a fault scenario's table",
        "[services.users]\nrun = \"x\"\nport = 8080\n[faults.slow]\nusers = { reset = false }\n",
        "`reset = false` sets nothing",
        "devstack.toml:5:19",
    ),
    (
        "a blue-green rollout of a service the proxy is not in front of",
        "[services.db]\nrun = \"x\"\nport = 8080\nproxy = false\nrollout = \"blue-green\"\n",
        "this service is not proxied",
        "devstack.toml:5:11",
    ),
    (
        "volumes on a service without an image",
        "[services.api]\nrun = \"x\"\nvolumes = [\"data:/data\"]\n",
        "`volumes` are a container's",
        "devstack.toml:3:12",
    ),
    (
        "a probe run inside a container the service does not have",
        "[services.api]\nrun = \"x\"\n[services.api.health]\ncmd = \"true\"\nexec = true\n",
        "this service has no `image`",
        "devstack.toml:5:8",
    ),
    (
        "a volume without a path inside",
        "[services.db]\nimage = \"postgres:16\"\nvolumes = [\"pgdata\"]\n",
        "write `name:/path`",
        "devstack.toml:3:12",
    ),
    (
        "an engine devstack does not drive",
        "[stack]\ncontainer_engine = \"lxc\"\n[services.db]\nimage = \"postgres:16\"\n",
        "`lxc` is not a container engine",
        "devstack.toml:2:20",
    ),
    (
        "a url service with no port to be reached on",
        "[services.billing]\nurl = \"https://billing.example.com\"\n",
        "reached here on its `port`",
        "devstack.toml:2:7",
    ),
    (
        "insecure on a url without TLS",
        "[services.billing]\nurl = \"http://billing.example.com\"\nport = 7300\ninsecure = true\n",
        "only an https `url` has one",
        "devstack.toml:4:12",
    ),
    (
        "a url of a scheme devstack does not forward",
        "[services.billing]\nurl = \"ftp://files.example.com\"\nport = 7300\n",
        "`ftp://` is not a scheme",
        "devstack.toml:2:7",
    ),
    (
        "a name the traffic views use",
        "[services.api]\nrun = \"x\"\n[services.external]\nrun = \"y\"\n",
        "`external` can't be a service's name",
        "devstack.toml:3:11",
    ),
    (
        "protocol without a proxied port",
        "[services.api]\nrun = \"x\"\nprotocol = \"http\"\n",
        "this service is not proxied",
        "devstack.toml:3:12",
    ),
    (
        "unknown protocol",
        "[services.api]\nrun = \"x\"\nport = 8080\nprotocol = \"grpc\"\n",
        "unknown variant `grpc`",
        "devstack.toml:4:12",
    ),
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
        "port in quotes",
        "[services.a]\nrun = \"x\"\nport = \"8201\"\n",
        "a port is a number, not a string: write `port = 8201` (no quotes)",
        "devstack.toml:3:8",
    ),
    (
        "port not a number",
        "[services.a]\nrun = \"x\"\nport = \"web\"\n",
        "expected a port number (1-65535), e.g. `port = 8201`",
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
    (
        "an escape inside an unclosed ${",
        "[services.a]\nrun = \"x ${\\té\"\n",
        "unclosed `${`",
        "devstack.toml:2:10",
    ),
    (
        "a reference after an escape",
        "[services.a]\nrun = \"a\\tb ${DEVSTACK_TEST_NOPE}\"\n",
        "undefined variable `DEVSTACK_TEST_NOPE`",
        "devstack.toml:2:13",
    ),
    (
        "a reference in a multi-line string",
        "[services.a]\nrun = \"\"\"\nserve \\\n  --db ${DEVSTACK_TEST_NOPE}\"\"\"\n",
        "undefined variable `DEVSTACK_TEST_NOPE`",
        "devstack.toml:4:8",
    ),
];

#[test]
fn every_bad_config_names_file_line_column_and_the_problem() {
    for (what, toml, message, location) in CASES {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("devstack.toml"), toml).unwrap();
        let out = Command::new(crate::common::BIN)
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
    Command::new(crate::common::BIN)
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
    let out = Command::new(crate::common::BIN)
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
    Command::new(crate::common::BIN)
        .arg("check")
        .current_dir(dir.path())
        .assert()
        .code(2)
        .stderr(contains("no devstack.toml in"));
    std::fs::write(dir.path().join("other.toml"), "[services.x]\nrun = \"y\"\n").unwrap();
    Command::new(crate::common::BIN)
        .args(["check", "-f", "other.toml"])
        .current_dir(dir.path())
        .assert()
        .success()
        .stdout(contains("1. x"));
}

/// `devstack check` on this config text: (exit code, stdout, stderr).
fn check(toml: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("devstack.toml"), toml).unwrap();
    let out = Command::new(crate::common::BIN)
        .arg("check")
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// No byte a terminal would act on, except line ends (and tabs, which the caret line repeats).
fn assert_no_control_bytes(text: &str) {
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "control characters printed: {text:?}"
    );
}

#[test]
fn control_bytes_in_a_bad_config_are_shown_escaped_with_the_caret_aligned() {
    // A window title and a bell, raw in the file: the parser stops at the ESC.
    let (code, _, stderr) = check("[services.a]\nrun = \"x\"\ngrace = \"\x1b]0;pwned\x07\"\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert_no_control_bytes(&stderr);
    assert!(
        stderr.contains("3 | grace = \"\\u{1b}]0;pwned\\u{7}\"\n  |          ^^^^^^\n"),
        "{stderr}"
    );

    // Written as TOML escapes, they reach names and values in messages.
    let (code, _, stderr) = check(
        "[services.\"a\\u001b]52;c;cHdu\\u0007\"]\nrun = \"x\"\ncwd = \"\\u001b]0;t\\u0007\"\n",
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_no_control_bytes(&stderr);
    assert!(
        stderr.contains("invalid service name `a\\u{1b}]52;c;cHdu\\u{7}`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\\u{1b}]0;t\\u{7}` is not a directory"),
        "{stderr}"
    );
}

#[test]
fn the_caret_lines_up_under_wide_characters() {
    let (code, _, stderr) = check("[services.a]\nrun = \"日本 ${DEVSTACK_TEST_NOPE}\"\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "2 | run = \"日本 ${DEVSTACK_TEST_NOPE}\"\n  |             ^^^^^^^^^^^^^^^^^^^^^\n"
        ),
        "{stderr}"
    );
}

#[test]
fn the_plan_keeps_service_names_as_written() {
    let (code, stdout, stderr) = check(
        "[services.MyDb]\nrun = \"db\"\n[services.Api]\nrun = \"api\"\ndepends_on = [\"MyDb\"]\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("1. MyDb"), "{stdout}");
    assert!(stdout.contains("2. Api"), "{stdout}");
    assert!(stdout.contains("after: MyDb (started)"), "{stdout}");
}

#[test]
fn the_plan_escapes_control_characters() {
    // The stack is named after its folder, here one with a window title in its name.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s\x1b]0;t\x07");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("devstack.toml"),
        "[services.a]\nrun = \"x\\u0007\"\nwatch = [\"\\u001b]0;w\\u0007\"]\n",
    )
    .unwrap();
    let out = Command::new(crate::common::BIN)
        .arg("check")
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_no_control_bytes(&stdout);
    assert!(stdout.contains("stack `s\\u{1b}]0;t\\u{7}`"), "{stdout}");
    assert!(stdout.contains("watch: \\u{1b}]0;w\\u{7}"), "{stdout}");
    assert!(stdout.contains("run:   sh -c \"x\\u{7}\""), "{stdout}");
}

#[test]
fn a_stack_name_with_control_characters_is_an_error() {
    let (code, _, stderr) =
        check("[stack]\nname = \"s\\u001b]0;t\\u0007\"\n[services.a]\nrun = \"x\"\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert_no_control_bytes(&stderr);
    assert!(
        stderr.contains("the stack's name has control characters"),
        "{stderr}"
    );
    assert!(stderr.contains("devstack.toml:2:8"), "{stderr}");
}

#[test]
fn a_config_without_services_is_an_error_for_check_and_up() {
    for toml in [
        "",
        "# nothing yet\n",
        "[stack]\nname = \"x\"\n",
        "[env]\nA = \"1\"\n",
    ] {
        let (code, stdout, stderr) = check(toml);
        assert_eq!(code, Some(2), "{toml:?}: {stdout}{stderr}");
        assert!(stderr.contains("no services"), "{stderr}");
        assert!(stderr.contains("devstack.toml"), "{stderr}");
        assert!(
            stderr.contains("= help: add a [services.NAME] table with `run"),
            "{stderr}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("devstack.toml"), "").unwrap();
    Command::new(crate::common::BIN)
        .args(["up", "--headless"])
        .current_dir(dir.path())
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(contains("no services"));
}
