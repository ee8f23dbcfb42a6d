//! The container engine run by devstack itself, not as a service: what a killed run left (its
//! containers, found by the stack's label) removed at the next `up`, and the stack's named
//! volumes removed by `down --volumes`. The command lines a service runs are `config::container`'s.
//! And podman's container monitors (`conmon`), which come back to devstack as subreaper: told
//! apart (the keeper leaves them alone), and their containers' CPU and memory counted as their
//! services'.

use crate::config::container::LABEL;

/// The containers of the stack `stack_id` that `engine` still has (a killed run's), removed; what
/// was removed, said. Bounded: an engine that hangs is given up on.
pub fn remove_leftovers(engine: &str, stack_id: &str) -> Vec<String> {
    let filter = format!("label={LABEL}={stack_id}");
    let listed = run_bounded(
        engine,
        &["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
    );
    let names: Vec<String> = listed
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    match run_argv(&crate::config::container::removal(engine, &names)) {
        Some(_) => names
            .iter()
            .map(|n| format!("removed leftover container {n}"))
            .collect(),
        None => vec![format!(
            "could not remove leftover containers {} ({engine} rm failed)",
            names.join(", ")
        )],
    }
}

/// Remove the named volumes `names` (`down --volumes`): what was removed, or why not.
pub fn remove_volumes(engine: &str, names: &[String]) -> Result<(), String> {
    let mut args = vec!["volume", "rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    let out = std::process::Command::new(engine)
        .args(&args)
        .output()
        .map_err(|e| format!("cannot run {engine}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    // A volume never made (the service never ran) is not an error.
    if err.contains("no such volume") || err.contains("No such volume") {
        return Ok(());
    }
    Err(err.trim().to_string())
}

/// How long an engine command devstack waits on may take.
const ENGINE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Run `engine args`, its output if it succeeded within `ENGINE_WAIT` (else it is killed).
fn run_bounded(engine: &str, args: &[&str]) -> Option<String> {
    use std::io::Read;
    let mut child = std::process::Command::new(engine)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let deadline = std::time::Instant::now() + ENGINE_WAIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = reader.join().ok()?.ok()?;
    status.filter(|s| s.success()).map(|_| out)
}

/// `run_bounded` of a whole command line (its program first).
fn run_argv(argv: &[String]) -> Option<String> {
    let (engine, args) = argv.split_first()?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_bounded(engine, &args)
}

/// Run `argv` (a container's removal, after its engine process ended), waiting at most
/// `ENGINE_WAIT`; a failure is logged, never fatal.
pub fn run_after(argv: &[String]) {
    if run_argv(argv).is_none() {
        tracing::warn!(command = %argv.join(" "), "the container could not be removed");
    }
}

/// The container a `conmon` watches, by its command line's `-n NAME`.
#[cfg(target_os = "linux")]
pub(super) fn monitored(proc: &procfs::process::Process) -> Option<String> {
    let args = proc.cmdline().ok()?;
    let at = args.iter().position(|a| a == "-n" || a == "--name")?;
    args.get(at + 1).cloned()
}

/// Each container's processes (the monitor's tree) added to the usage of its service's run
/// leader (the engine process that runs it).
#[cfg(target_os = "linux")]
pub(super) fn add_usage(
    tree: &mut super::tree::Tree,
    services: &[super::orphans::Kept],
    leaders: &[(i32, String)],
    monitors: &[(i32, String)],
    usage: &mut std::collections::HashMap<i32, super::usage::Usage>,
) {
    for (monitor, name) in monitors {
        let Some(service) = services.iter().find(|s| s.containers.contains(name)) else {
            continue;
        };
        // The newest leader of the service: its run process (a build ran before it).
        let leader = leaders
            .iter()
            .filter(|(_, s)| *s == service.name)
            .map(|(pid, _)| *pid)
            .max();
        let Some(total) = leader.and_then(|l| usage.get_mut(&l)) else {
            continue;
        };
        let Some(first) = tree.stat(*monitor) else {
            continue;
        };
        let mut stack = vec![first];
        while let Some(stat) = stack.pop() {
            total.add(&stat);
            for child in tree.children_of(stat.pid, stat.threads) {
                if let Some(stat) = tree.stat(child).filter(|s| s.state != 'Z') {
                    stack.push(stat);
                }
            }
        }
    }
}

/// Podman's container monitor (`conmon`): it leaves the session of the `podman run` that
/// started it and comes back to devstack, but it is the container's, not an escaped process
/// of the service. Killing it would leave the container running and its engine process
/// waiting; the container is removed through the engine instead (`SpawnRequest::after`).
#[cfg(target_os = "linux")]
pub(super) fn monitor(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_ascii_end() == b"conmon")
}
