//! The scripting CLI against a running stack: how a command finds the stack it means, the state
//! files it leaves, and what `-f` means where.

use crate::common::{BIN, Stack, all_gone, number_after};
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const SLEEPER: &str = "[services.c]\nrun = \"echo c=$$; sleep 300\"\n";

/// `devstack ARGS` in `dir`: exit code, stdout, stderr.
fn cli_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Kills a detached devstack by pid when a test ends, passed or not.
struct Daemon(i32);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

/// `up -d` in `dir`; the detached devstack is killed when the guard drops.
fn up_detached(dir: &Path) -> Daemon {
    let (code, _, err) = cli_in(dir, &["up", "-d"]);
    let daemon = crate::common::find_number(&err, "(pid ").map(Daemon);
    assert_eq!(code, 0, "{err}");
    daemon.unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn control_commands_reach_the_stack_whose_config_was_deleted_or_broken() {
    // A stack in `child`, inside a folder with a devstack.toml of its own that isn't running.
    let parent = Stack::new("[services.p]\nrun = \"sleep 300\"\n");
    let dir = parent.path().join("child");
    std::fs::create_dir_all(dir.join("deeper")).unwrap();
    std::fs::write(dir.join("devstack.toml"), SLEEPER).unwrap();
    let mut child = Stack::at(&dir);
    child.start(&["up"]);
    child.wait_socket(20);
    child.wait_for("c=", 20);

    std::fs::remove_file(dir.join("devstack.toml")).unwrap();
    let (code, out, err) = cli_in(&dir, &["ps"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("c ")), "{out}");
    // Service names come from the running stack, not from a config.
    let (code, out, err) = cli_in(&dir, &["logs", "-n", "1", "c"]);
    assert_eq!((code, out.starts_with("c | ")), (0, true), "{out}{err}");
    // `-f PATH` names the folder, even when the file is gone.
    let (code, out, err) = cli_in(parent.path(), &["-f", "child/devstack.toml", "ps"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("c ")), "{out}");

    std::fs::write(dir.join("devstack.toml"), "[services.c\nrun = 1\n").unwrap();
    let (code, out, err) = cli_in(&dir, &["restart", "c"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("c: restarted"), "{out}");
    // From a folder below, with the config still broken, `down` stops it.
    let (code, _, err) = cli_in(&dir.join("deeper"), &["down"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stack stopped"), "{err}");
    assert!(child.wait_exit(30).success());
}

#[test]
fn a_stack_in_a_parent_folder_is_not_taken_for_the_one_here() {
    let mut parent = Stack::new("[services.p]\nrun = \"sleep 300\"\n");
    let child_dir = parent.path().join("child");
    let plain = parent.path().join("plain");
    std::fs::create_dir_all(&child_dir).unwrap();
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(child_dir.join("devstack.toml"), SLEEPER).unwrap();
    parent.start(&["up"]);
    parent.wait_socket(20);

    // `child` has a stack of its own, not running: that is the one meant there.
    let (code, _, err) = cli_in(&child_dir, &["ps"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("no stack is running in {}", child_dir.display())),
        "{err}"
    );
    let (code, _, err) = cli_in(&child_dir, &["down"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing is running in"), "{err}");
    // A folder without one belongs to the parent's stack.
    let (code, out, err) = cli_in(&plain, &["ps"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("p ")), "{out}");

    // Nested stacks running at once: each folder talks to its own.
    let mut child = Stack::at(&child_dir);
    child.start(&["up"]);
    child.wait_socket(20);
    let (_, out, _) = cli_in(&child_dir, &["ps"]);
    assert!(out.lines().any(|l| l.starts_with("c ")), "{out}");
    let (_, out, _) = cli_in(parent.path(), &["ps"]);
    assert!(out.lines().any(|l| l.starts_with("p ")), "{out}");
    assert_eq!(cli_in(&child_dir, &["down"]).0, 0);
    assert!(child.wait_exit(30).success());
    assert_eq!(cli_in(parent.path(), &["ps"]).0, 0, "the parent still runs");
    assert_eq!(cli_in(&plain, &["down"]).0, 0);
    assert!(parent.wait_exit(30).success());
}

#[test]
fn a_folder_too_deep_for_a_socket_address_still_works() {
    let top = Stack::new(SLEEPER);
    let deep = top.path().join("a".repeat(60)).join("b".repeat(60));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("devstack.toml"), SLEEPER).unwrap();
    let natural = deep.join(".devstack/devstack.sock");
    assert!(natural.as_os_str().len() > 108, "{}", natural.display());
    let stack = Stack::at(&deep);

    let daemon = up_detached(&deep);
    let (code, out, err) = cli_in(&deep, &["ps", "--json"]);
    assert_eq!(code, 0, "{err}");
    let services: serde_json::Value = serde_json::from_str(&out).unwrap();
    let old = services["services"][0]["pid"].as_i64().unwrap();
    let (code, out, err) = cli_in(&deep, &["restart", "c"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(number_after(&out, "(pid ") as i64, old);
    let (code, out, _) = cli_in(&deep, &["logs", "-n", "1"]);
    assert_eq!((code, out.starts_with("c | ")), (0, true), "{out}");
    // The socket is bound at a short path, private, that the record in `.devstack/` names.
    let bound = std::fs::read_link(&natural).unwrap();
    assert!(bound.as_os_str().len() < 100, "{}", bound.display());
    assert_eq!(mode(&bound), 0o600);
    assert_eq!(mode(bound.parent().unwrap()), 0o700);
    let (code, _, err) = cli_in(&deep, &["up", "-d"]);
    assert_eq!(code, 1, "a second stack is refused: {err}");

    let (code, _, err) = cli_in(&deep, &["down"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stack stopped"), "{err}");
    assert!(all_gone(&[daemon.0], 10));
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
    assert!(!bound.exists() && natural.symlink_metadata().is_err());
    let (code, _, err) = cli_in(&deep, &["ps"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn state_files_are_private_under_a_permissive_umask() {
    let stack = Stack::new(SLEEPER);
    let dir = stack.path();
    let up = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" up -d", BIN])
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&up.stderr);
    let _daemon = crate::common::find_number(&err, "(pid ").map(Daemon);
    assert!(up.status.success(), "{err}");
    stack.wait_socket(20);
    let state = dir.join(".devstack");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("logs")), 0o700);
    for file in [
        "lock",
        "pgroups",
        "devstack.out",
        "devstack.sock",
        "logs/c.log",
    ] {
        // The group record is written by a thread of its own, soon after the socket answers.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !state.join(file).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    assert_eq!(cli_in(dir, &["down"]).0, 0);

    // A `.devstack/` left open by an older run is made private.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let _daemon = up_detached(dir);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(cli_in(dir, &["down"]).0, 0);
}

#[test]
fn a_second_up_names_the_running_pid() {
    let stack = Stack::new(SLEEPER);
    let daemon = up_detached(stack.path());
    let (code, _, err) = cli_in(stack.path(), &["up", "-d"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("already running here (pid {})", daemon.0)),
        "{err}"
    );
    // Every way of starting a second one says the same way out.
    for args in [&["up", "--headless"][..], &["ci"]] {
        let (code, _, err) = cli_in(stack.path(), args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(&format!("(pid {})", daemon.0)), "{err}");
        assert!(err.contains("`devstack down`"), "{args:?}: {err}");
        assert!(!err.contains("kill "), "{args:?}: {err}");
    }
    assert_eq!(cli_in(stack.path(), &["down"]).0, 0);
}

#[test]
fn up_detached_with_wait_on_a_running_stack_waits_for_it() {
    let stack = Stack::new(SLEEPER);
    let daemon = up_detached(stack.path());
    // Twice, as a script run twice would: each waits for the stack that runs and succeeds.
    for _ in 0..2 {
        let (code, _, err) = cli_in(stack.path(), &["up", "-d", "--wait"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains(&format!("already running here (pid {})", daemon.0)),
            "{err}"
        );
        assert!(err.contains("every service is ready"), "{err}");
    }
    // A service it doesn't have is named.
    let (code, _, err) = cli_in(stack.path(), &["up", "-d", "--wait", "nope"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("unknown service `nope`"), "{err}");
    assert_eq!(cli_in(stack.path(), &["down"]).0, 0);
}

#[test]
fn a_failed_rebuild_shows_the_output_of_that_build() {
    let mut stack = Stack::new(
        r#"
        [services.app]
        build = "echo compiling; if test -f broken; then echo 'error[E0308]: mismatched types'; exit 1; fi"
        run = "echo app=$$; sleep 300"
        "#,
    );
    stack.start(&["up"]);
    stack.wait_socket(20);
    let pid = stack.wait_number("app=", 20);
    stack.touch("broken", true);
    let (code, _, err) = cli_in(stack.path(), &["rebuild", "app"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("build failed"), "{err}");
    assert!(
        err.contains("app | error[E0308]: mismatched types"),
        "the compiler's output is shown: {err}"
    );
    assert_eq!(
        err.matches("compiling").count(),
        1,
        "only the failed build's lines: {err}"
    );
    assert!(crate::common::alive(pid));
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
}

#[test]
fn logs_help_lists_f_once() {
    let (code, out, _) = cli_in(Path::new("."), &["logs", "--help"]);
    assert_eq!(code, 0);
    let f: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("-f"))
        .collect();
    assert_eq!(f.len(), 1, "{out}");
    assert!(f[0].contains("-f, --follow"), "{out}");
    assert!(out.contains("    --file <PATH>"), "{out}");
}

#[test]
fn f_means_follow_only_for_the_logs_command() {
    let mut stack = Stack::new("[services.logs]\nrun = \"echo logs=$$; sleep 300\"\n");
    // After `--`, arguments are the command's own.
    let (code, out, err) = cli_in(stack.path(), &["run", "--", "echo", "logs", "-f"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "logs -f\n");

    stack.start(&["up"]);
    stack.wait_socket(20);
    stack.wait_number("logs=", 20);
    // A service named `logs`, and `-f` naming the config after it.
    let (code, out, err) = cli_in(stack.path(), &["restart", "logs", "-f", "devstack.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("logs: restarted"), "{out}");
    // `logs --file PATH` and `-f PATH logs` name the config; from elsewhere, they find the stack.
    let config = stack.path().join("devstack.toml");
    let config = config.to_str().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    for args in [
        ["logs", "--file", config, "-n", "1"],
        ["-f", config, "logs", "-n", "1"],
    ] {
        let (code, out, err) = cli_in(elsewhere.path(), &args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.starts_with("logs | "), "{args:?}: {out}");
    }
    stack.signal(Signal::SIGINT);
    stack.wait_exit(30);
}

#[test]
fn a_command_with_two_letters_swapped_is_suggested() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = cli_in(dir.path(), &["rnu", "--", "true"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("a similar subcommand exists: 'run'"), "{err}");
}

#[test]
fn help_run_shows_the_shell_form_for_the_stacks_variables() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = cli_in(dir.path(), &["help", "run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("devstack run -- sh -c 'curl \"$WEB_URL/health\"'"),
        "{out}"
    );
    assert!(out.contains("without a shell"), "{out}");
}

#[test]
fn a_failed_wait_shows_only_the_lines_of_this_run() {
    let stack = Stack::new("[services.app]\nbuild = \"cat said; exit 3\"\nrun = \"sleep 300\"\n");
    for run in ["first-run-line", "second-run-line"] {
        std::fs::write(stack.path().join("said"), format!("{run}\n")).unwrap();
        let (code, _, err) = cli_in(stack.path(), &["up", "-d", "--wait", "--timeout", "30s"]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(&format!("app | {run}")), "{err}");
        assert!(
            run == "first-run-line" || !err.contains("first-run-line"),
            "an earlier run's line among this one's:\n{err}"
        );
        cli_in(stack.path(), &["down"]);
    }
}

#[test]
fn ci_quiet_prints_devstacks_lines_and_the_failure_only() {
    let stack = Stack::new(
        "[services.a]\nbuild = \"echo a-build-chatter\"\nrun = \"echo a-chatter; exec sleep 300\"\n[services.a.health]\nlog = \"a-chatter\"\n",
    );
    let (code, out, err) = cli_in(stack.path(), &["ci", "-q", "--timeout", "30s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("a | [devstack] spawned pid"), "{out}");
    assert!(
        !out.contains("a | a-chatter") && !out.contains("[build] a-build-chatter"),
        "{out}"
    );
    assert!(err.contains("ci: every service is ready"), "{err}");

    std::fs::write(
        stack.path().join("devstack.toml"),
        "[services.b]\nbuild = \"echo b-build-chatter; exit 4\"\nrun = \"sleep 300\"\n",
    )
    .unwrap();
    let (code, out, err) = cli_in(stack.path(), &["ci", "--quiet", "--timeout", "30s"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("[build] b-build-chatter"), "{out}");
    assert!(
        err.contains("b | b-build-chatter"),
        "the failure's lines: {err}"
    );
}

#[test]
fn flags_are_offered_only_on_the_commands_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let help = |cmd: &str| cli_in(dir.path(), &[cmd, "--help"]).1;
    for cmd in ["ps", "stop", "schema", "traffic", "init", "mcp"] {
        let text = help(cmd);
        assert!(!text.contains("--headless"), "{cmd}:\n{text}");
        assert!(!text.contains("--no-color"), "{cmd}:\n{text}");
        // What every command uses stays: the config file and the diagnostics.
        assert!(text.contains("--verbose"), "{cmd}:\n{text}");
    }
    assert!(help("up").contains("--headless") && help("up").contains("--no-color"));
    for cmd in ["logs", "ci", "run"] {
        assert!(help(cmd).contains("--no-color"), "{cmd}");
    }
    let (code, _, err) = cli_in(dir.path(), &["ps", "--headless"]);
    assert_eq!(code, 2, "{err}");
}
