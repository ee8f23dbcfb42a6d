//! What services print, through the real binary: floods, garbage, endless lines, escape sequences.

use crate::common::Stack;

#[test]
fn a_flood_of_a_million_lines_reaches_the_log_file_complete() {
    let mut stack = Stack::new(
        r#"
        [services.spew]
        run = "seq 1 1000000"
        restart = "no"
        "#,
    );
    stack.start_quiet(&["up", "--headless"]);
    assert!(stack.wait_exit(120).success(), "{}", stack.output());
    let lines: Vec<String> = stack
        .log_lines("spew")
        .into_iter()
        .filter(|l| !l.starts_with("[devstack]"))
        .collect();
    assert_eq!(lines.len(), 1_000_000);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line, &(i + 1).to_string(), "line {i} of the log");
    }
}

#[test]
fn binary_garbage_neither_hangs_nor_crashes_devstack() {
    let mut stack = Stack::new(
        r#"
        [services.garbage]
        run = "head -c 3000000 /dev/urandom; echo; echo garbage-done"
        restart = "no"
        "#,
    );
    stack.start(&["up", "--headless"]);
    assert!(stack.wait_exit(60).success());
    let out = stack.output();
    assert!(out.contains("garbage | garbage-done"));
    // Whatever the bytes were, only printable text and line ends came out.
    assert!(
        !out.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "control characters leaked"
    );
}

#[test]
fn a_100_mb_line_is_cut_into_marked_pieces() {
    let mut stack = Stack::new(
        r#"
        [services.long]
        run = "head -c 100000000 /dev/zero | tr '\\0' a; echo; echo long-done"
        restart = "no"
        "#,
    );
    stack.start_quiet(&["up", "--headless"]);
    assert!(stack.wait_exit(120).success(), "{}", stack.output());
    let lines = stack.log_lines("long");
    let pieces: Vec<&String> = lines.iter().filter(|l| l.starts_with('a')).collect();
    let total: usize = pieces.iter().map(|l| l.trim_end_matches(" ⏎").len()).sum();
    assert_eq!(total, 100_000_000);
    assert!(pieces.iter().all(|l| l.len() <= 64 * 1024 + " ⏎".len()));
    assert_eq!(
        pieces.iter().filter(|l| l.ends_with(" ⏎")).count(),
        pieces.len() - 1
    );
    assert!(lines.iter().any(|l| l == "long-done"));
}

#[test]
fn escape_sequences_other_than_colour_never_reach_devstack_output() {
    let mut stack = Stack::new(
        r#"
        [services.sneaky]
        run = "printf '\\033]52;c;c2VjcmV0\\007\\033]0;pwned title\\007\\033[2J\\033[H\\033[?1049h\\033[32mgreen\\033[0m visible\\n'"
        restart = "no"
        "#,
    );
    stack.start(&["up", "--headless"]);
    assert!(stack.wait_exit(30).success());
    let out = stack.output();
    assert!(out.contains("sneaky | green visible"), "{out:?}");
    // The `[devstack] spawned` line quotes the command (escaped); the service's own lines must not
    // carry any of it.
    assert!(
        !out.contains('\x1b'),
        "an escape sequence reached the output: {out:?}"
    );
    let printed: Vec<&str> = out.lines().filter(|l| !l.contains("[devstack]")).collect();
    assert_eq!(printed, ["sneaky | green visible"], "{out:?}");
    let log = stack.log_lines("sneaky").join("\n");
    assert!(
        log.contains("green visible") && !log.contains('\x1b'),
        "{log:?}"
    );
}

#[test]
fn colour_is_kept_on_a_terminal_and_stripped_with_no_color() {
    let stack = Stack::new(
        r#"
        [services.c]
        run = "printf '\\033[31mred\\033[0m plain\\n'"
        restart = "no"
        "#,
    );
    // `script` gives devstack a terminal for its stdout.
    let on_terminal = |extra: &str| {
        let cmd = format!("{} up --headless {extra}", crate::common::BIN);
        let out = std::process::Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .current_dir(stack.path())
            .env_remove("NO_COLOR")
            .output()
            .expect("run script(1)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_terminal("");
    assert!(
        coloured.contains("\x1b[31mred\x1b[0m plain"),
        "{coloured:?}"
    );
    let plain = on_terminal("--no-color");
    assert!(
        plain.contains("c | red plain") && !plain.contains('\x1b'),
        "{plain:?}"
    );
}

#[test]
fn crlf_and_invalid_utf8_are_cleaned_up() {
    let mut stack = Stack::new(
        r#"
        [services.w]
        run = "printf 'dos line\\r\\nbad \\377 byte\\nprogress 10%%\\rprogress 100%%\\n'"
        restart = "no"
        "#,
    );
    stack.start(&["up"]);
    assert!(stack.wait_exit(30).success());
    let out = stack.output();
    assert!(out.contains("w | dos line\n"), "{out:?}");
    assert!(out.contains("w | bad \u{fffd} byte\n"), "{out:?}");
    assert!(out.contains("w | progress 100%\n"), "{out:?}");
}

#[test]
fn a_last_line_without_a_newline_is_not_lost() {
    let mut stack = Stack::new(
        r#"
        [services.w]
        run = "printf 'first\\nno newline at the end'"
        restart = "no"
        "#,
    );
    stack.start(&["up"]);
    assert!(stack.wait_exit(30).success());
    let out = stack.output();
    let at = out.find("w | no newline at the end\n").expect(&out);
    assert!(
        at < out.find("exited with code 0").unwrap(),
        "the line comes before the exit: {out}"
    );
}

/// A small tmpfs mounted on a folder for the length of a test: a disk that really fills.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// None (and why, printed) when this test can't mount one: it needs root.
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let done = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match done {
            Ok(out) if out.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs (run the tests as root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: devstack may still have its files open if the test failed.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn ps_log_lost(stack: &Stack) -> serde_json::Value {
    let out = stack.command(&["ps", "--json"]).output().unwrap();
    let ps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    ps["services"][0]["log_lost"].clone()
}

/// Poll `ps --json` until its `log_lost` passes `ok`.
fn wait_log_lost(stack: &Stack, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let lost = ps_log_lost(stack);
        if ok(&lost) {
            return lost;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ps never showed it: {lost}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_full_disk_is_said_once_shown_in_ps_and_recovered_from() {
    let mut stack = Stack::new(
        r#"
        [services.talk]
        run = "i=0; while :; do i=$((i+1)); echo \"line $i ................................................................................................\"; sleep 0.005; done"
        "#,
    );
    let dir = stack.path().join(".devstack/logs");
    let Some(_disk) = Tmpfs::mount(&dir, "256k") else {
        return;
    };
    stack.start(&["up", "--headless"]);
    stack.wait_for("line 5 ", 20);
    assert_eq!(ps_log_lost(&stack), serde_json::Value::Null);
    // Fill what is left of the disk.
    let fill = dir.join("fill");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&fill).unwrap();
        while f.write_all(&[b'x'; 4096]).is_ok() {}
    }
    let full = "No space left on device; lines are kept in memory only until space returns";
    stack.wait_for(full, 20);
    let lost = wait_log_lost(&stack, |l| l["lines"].as_u64() > Some(0));
    assert_eq!(lost["error"], "No space left on device", "{lost}");
    assert!(
        lost["file"].as_str().unwrap().ends_with("talk.log"),
        "{lost}"
    );
    let text = stack.command(&["ps"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("talk: log file ") && text.contains(": No space left on device; "),
        "{text}"
    );
    // Tried again every second meanwhile, and said only once.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        stack.output().matches(full).count(),
        1,
        "{}",
        stack.output()
    );

    std::fs::remove_file(&fill).unwrap();
    let out = stack.wait_for(" lines were lost\n", 20);
    let lost_lines = crate::common::number_after(&out, "log file writable again; ");
    assert!(lost_lines > 0);
    let lost = wait_log_lost(&stack, |l| l["error"].is_null());
    assert_eq!(lost["lines"], lost_lines, "{lost}");

    // Every line reached the buffer; the file misses exactly the lost ones, and takes lines again.
    let numbers = |text: &str| -> Vec<i32> {
        text.lines()
            .filter_map(|l| l.split("line ").nth(1)?.split(' ').next()?.parse().ok())
            .collect()
    };
    let logs = stack
        .command(&["logs", "-n", "100000", "talk"])
        .output()
        .unwrap();
    let shown = numbers(&String::from_utf8_lossy(&logs.stdout));
    assert_eq!(
        shown,
        (1..=shown.len() as i32).collect::<Vec<_>>(),
        "a line is missing"
    );
    let filed = numbers(&stack.log_lines("talk").join("\n"));
    let newest = *filed.last().unwrap();
    assert!(
        newest > shown[shown.len() / 2],
        "the file takes lines again"
    );
    assert_eq!(
        filed.len() as i32 + lost_lines,
        newest,
        "only the lost lines are missing"
    );
    stack.signal(nix::sys::signal::Signal::SIGINT);
    stack.wait_exit(30);
}
