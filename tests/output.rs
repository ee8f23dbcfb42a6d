//! What services print, through the real binary: floods, garbage, endless lines, escape sequences.

mod common;

use common::Stack;

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
        let cmd = format!("{} up --headless {extra}", common::BIN);
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
