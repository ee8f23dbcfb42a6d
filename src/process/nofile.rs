//! devstack's limit of open files, and its services'.
//!
//! A desktop's soft `RLIMIT_NOFILE` is 1024 while its hard limit is far higher; the proxy holds
//! two descriptors per connection, so a running stack raises its soft limit to the hard one
//! (as systemd, Go and the JVM do). The processes it starts get the soft limit devstack was given
//! back (programs that `select()` or size tables by the limit expect the usual default): a
//! service's process is started through devstack itself (`TRAMPOLINE`), which sets the limit and
//! then executes the service's program in its place (portable-pty gives no hook between fork and
//! exec); commands devstack starts with `std::process::Command` restore it before their exec.

use crate::ignored::Ignore;
use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};

/// The first argument that makes devstack set its soft limit and execute the rest in its place.
pub const TRAMPOLINE: &str = "__devstack-exec-with-nofile";

/// At most this many: a soft limit in the billions makes closing every descriptor (as some
/// programs do at start) take seconds.
const CEILING: u64 = 1 << 20;

/// The soft limit devstack was given, once it raised its own (0: not raised).
static GIVEN: AtomicU64 = AtomicU64::new(0);

/// Raise the soft limit to the hard one (at most `CEILING`); returns the limit now.
pub fn raise() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    // macOS refuses more than `kern.maxfilesperproc` whatever the hard limit says: then its
    // usual `OPEN_MAX`.
    for target in [hard.min(CEILING), hard.min(10_240)] {
        if target > soft && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
            GIVEN
                .compare_exchange(0, soft, Ordering::SeqCst, Ordering::SeqCst)
                .or_say("an earlier raise recorded the limit devstack was given");
            return target;
        }
    }
    soft
}

/// The soft limit devstack was given, if it raised its own since.
pub fn given() -> Option<u64> {
    match GIVEN.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// Restore the given soft limit; for `pre_exec` (async-signal-safe: one system call).
pub fn restore() -> std::io::Result<()> {
    if let Some(soft) = given() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls on a local struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = soft as libc::rlim_t;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
    Ok(())
}

/// `program args…` as a service's process is started: through devstack, which restores the
/// given soft limit and executes the program, when the limit was raised and the program can be
/// found (else as it is, so that a missing program fails to start as it always did).
pub fn wrap(program: OsString, path: Option<&std::ffi::OsStr>) -> (OsString, Vec<OsString>) {
    match given() {
        // `/proc/self/exe`: devstack's own binary, even if it was replaced since (Linux only;
        // elsewhere the limit stays raised for the service).
        Some(soft) if cfg!(target_os = "linux") && findable(&program, path) => (
            "/proc/self/exe".into(),
            vec![TRAMPOLINE.into(), soft.to_string().into(), program],
        ),
        _ => (program, Vec::new()),
    }
}

fn findable(program: &std::ffi::OsStr, path: Option<&std::ffi::OsStr>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let program = std::path::Path::new(program);
    if program.components().count() > 1 || program.is_absolute() {
        return runnable(program);
    }
    let path = path
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    std::env::split_paths(&path).any(|dir| runnable(&dir.join(program)))
}

/// When devstack was started as the trampoline (`TRAMPOLINE SOFT PROGRAM ARGS…`): set the soft
/// limit and execute the program; returns only if it could not be executed.
pub fn trampoline() -> Option<std::process::ExitCode> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os().skip(1);
    if args.next()? != TRAMPOLINE {
        return None;
    }
    let soft: Option<u64> = args.next().and_then(|s| s.to_str()?.parse().ok());
    let program = args.next()?;
    if let Some(soft) = soft {
        GIVEN.store(soft, Ordering::SeqCst);
        restore().or_say("the program runs with devstack's raised limit");
    }
    let error = std::process::Command::new(&program).args(args).exec();
    eprintln!(
        "devstack: can't run `{}`: {error}",
        program.to_string_lossy()
    );
    Some(std::process::ExitCode::from(127))
}
