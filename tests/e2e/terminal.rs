//! The dashboard's terminal going wrong under it: closed (an SSH drop, a closed window), or never
//! answering the cursor-position query (a dumb or broken terminal). devstack runs in a PTY the
//! test holds, as the leader of its own session with that PTY as its controlling terminal, so
//! closing the master side is exactly what closing a terminal window does (the kernel hangs up
//! the session: SIGHUP, then EIO on every read and write).

#![cfg(target_os = "linux")]

use crate::common::Stack;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A terminal the test holds the master side of. It answers the cursor-position query
/// (`ESC [ 6 n`) as a real terminal does, or, with `answer = false`, never does.
struct Pty {
    child: Child,
    screen: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Pty {
    fn spawn(dir: &std::path::Path, answer: bool) -> Pty {
        let (master, slave) = open_pty();
        let tty = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup"));
        let mut cmd = Command::new(crate::common::BIN);
        cmd.current_dir(dir)
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .stdin(tty(&slave))
            .stdout(tty(&slave))
            .stderr(tty(&slave));
        // SAFETY: setsid and ioctl are async-signal-safe; nothing else runs before exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start devstack");
        drop(slave);
        let mut master = File::from(master);
        nix::fcntl::fcntl(
            &master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .expect("non-blocking master");
        let screen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (out, done) = (screen.clone(), stop.clone());
        // The only holder of the master: when this thread ends, the terminal is closed.
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut scanned: usize = 0;
            while !done.load(Ordering::Relaxed) {
                match master.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        let mut screen = out.lock().unwrap();
                        screen.extend_from_slice(&buf[..n]);
                        let from = scanned.saturating_sub(3);
                        let queries = screen[from..].windows(4).filter(|w| w == b"\x1b[6n");
                        if answer {
                            for _ in queries {
                                let _ = master.write_all(b"\x1b[1;1R");
                            }
                        }
                        scanned = screen.len();
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // Nothing yet (EAGAIN), or no slave open any more (EIO): wait.
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Pty {
            child,
            screen,
            stop,
            reader: Some(reader),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What devstack wrote to the terminal, escape sequences and all.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    fn wait_screen(&self, secs: u64, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.screen().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "`{needle}` did not appear within {secs}s; the terminal shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Close the terminal, as closing its window does.
    fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "devstack did not exit within {secs}s"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.close();
    }
}

/// A new PTY of 120×40, both sides close-on-exec: no other process (tests run in parallel)
/// may inherit the master and keep the terminal open.
fn open_pty() -> (OwnedFd, OwnedFd) {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .expect("posix_openpt");
    nix::pty::grantpt(&master).expect("grantpt");
    nix::pty::unlockpt(&master).expect("unlockpt");
    let name = nix::pty::ptsname_r(&master).expect("ptsname");
    let slave: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(name)
        .expect("open the slave")
        .into();
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    let set = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(set, 0, "set the terminal size");
    (master.into(), slave)
}

/// The service's pid, once its log file shows it.
fn service_pid(stack: &Stack, service: &str, secs: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let lines = stack.log_lines(service).join("\n");
        if let Some(pid) = crate::common::find_number(&lines, "svc-pid=") {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{service} never started; its log:\n{lines}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const STUBBORN: &str = r#"
[services.stubborn]
run = "trap '' TERM; echo svc-pid=$$; while :; do sleep 0.1; done"
grace = "1s"
"#;

#[test]
fn closing_the_terminal_stops_the_stack_gracefully_and_kills_what_ignores_term() {
    let stack = Stack::new(STUBBORN);
    let mut term = Pty::spawn(stack.path(), true);
    term.wait_screen(30, "1/1 ready");
    let pid = service_pid(&stack, "stubborn", 10);

    term.close();
    let status = term.wait_exit(30);
    assert_eq!(
        status.code(),
        Some(0),
        "devstack did not exit cleanly: {status}"
    );
    assert!(
        crate::common::all_gone(&[pid], 5),
        "the service (pid {pid}) outlived devstack"
    );
    let log = stack.log_lines("stubborn").join("\n");
    assert!(
        log.contains("sent TERM") && log.contains("after the stop signal: sent KILL"),
        "no graceful stop then KILL in the service's log:\n{log}"
    );
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

#[test]
fn a_hangup_stops_the_dashboard_gracefully_however_many_arrive() {
    let stack = Stack::new(STUBBORN);
    let mut term = Pty::spawn(stack.path(), true);
    term.wait_screen(30, "1/1 ready");
    let pid = service_pid(&stack, "stubborn", 10);
    // A terminal emulator or sshd may send its own SIGHUP on top of the kernel's.
    for _ in 0..3 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(term.pid()),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = term.wait_exit(30);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        crate::common::all_gone(&[pid], 5),
        "pid {pid} outlived devstack"
    );
    let log = stack.log_lines("stubborn").join("\n");
    assert!(
        log.contains("after the stop signal: sent KILL"),
        "SIGKILLed before its grace, or never:\n{log}"
    );
}

#[test]
fn a_terminal_that_never_answers_falls_back_to_headless_output() {
    let stack = Stack::new(
        r#"
        [services.quiet]
        run = "echo svc-pid=$$; echo hello-from-quiet; while :; do sleep 0.1; done"
        "#,
    );
    let mut term = Pty::spawn(stack.path(), false);
    // (The spawn line shows the command, words and all: wait for the output itself.)
    term.wait_screen(30, "| hello-from-quiet");
    let screen = term.screen();
    assert!(
        screen.contains("headless"),
        "no word of the fallback:\n{screen}"
    );
    assert!(
        screen.contains("| hello-from-quiet"),
        "not headless output:\n{screen}"
    );
    let pid = service_pid(&stack, "quiet", 10);
    assert!(crate::common::alive(pid));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(term.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = term.wait_exit(30);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(stack.leftovers().is_empty(), "{:?}", stack.leftovers());
}

#[test]
fn closing_the_terminal_leaves_no_process_of_any_kind() {
    let stack = Stack::new(crate::common::ESCAPING);
    let mut term = Pty::spawn(stack.path(), true);
    let pids = crate::common::escaping_started(&stack);
    term.close();
    term.wait_exit(30);
    assert_eq!(
        crate::common::survivors(&pids),
        [],
        "{:?}",
        stack.leftovers()
    );
}
