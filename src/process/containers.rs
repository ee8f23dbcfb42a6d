//! The container engine run by devstack itself, not as a service: what a killed run left (its
//! containers, found by the stack's label) removed at the next `up`, and the stack's named
//! volumes removed by `down --volumes`. The command lines a service runs are `config::container`'s.

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
    let mut args = vec!["rm", "-f"];
    if engine.ends_with("podman") {
        args.extend(["-t", "0"]);
    }
    args.extend(names.iter().map(String::as_str));
    match run_bounded(engine, &args) {
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
pub fn run_bounded(engine: &str, args: &[&str]) -> Option<String> {
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

/// Run `argv` (a container's removal, after its engine process ended), waiting at most
/// `ENGINE_WAIT`; a failure is logged, never fatal.
pub fn run_after(argv: &[String]) {
    let Some((engine, args)) = argv.split_first() else {
        return;
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if run_bounded(engine, &args).is_none() {
        tracing::warn!(command = %argv.join(" "), "the container could not be removed");
    }
}
