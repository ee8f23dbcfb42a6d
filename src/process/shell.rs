//! A `run` string goes through `sh -c`. dash (Debian's and Ubuntu's `/bin/sh`) does not replace
//! itself with the single command of `sh -c CMD`, so the shell would stay the session's leader
//! and the first to die of a stop signal; its death hangs up the terminal for the rest of the
//! session (the kernel sends SIGHUP to its foreground group), killing a program in the middle
//! of its cleanup. So a simple command is given an `exec` (the service's program leads its
//! session), and any other script a trap that lets the shell outlive the stop signal until its
//! commands have ended, then die of it as it would have.

use nix::sys::signal::Signal;

/// What `sh -c` runs for the `run` string `script` of a service stopped with `stop`.
pub fn script(script: &str, stop: Signal) -> String {
    let execed = exec_simple(script);
    if execed != script || matches!(stop, Signal::SIGKILL | Signal::SIGSTOP) {
        return execed;
    }
    // The trap runs once the foreground command has ended; `wait` waits for the background
    // ones (`server & wait`), which had the signal too. On the same line, so the shell's error
    // messages keep the script's line numbers. A trap of the script's own replaces this one.
    let sig = stop.as_str().trim_start_matches("SIG");
    format!("trap 'trap - {sig}; wait; kill -{sig} $$' {sig}; {script}")
}

/// Words that are not programs: shell keywords and builtins (`exec cd` fails; `echo` and
/// `printf` built in differ from `/bin/echo`).
const NOT_PROGRAMS: &[&str] = &[
    "!", "{", "}", "[[", "case", "do", "done", "elif", "else", "esac", "fi", "for", "function",
    "if", "in", "select", "then", "time", "until", "while", ".", ":", "[", "alias", "bg", "break",
    "builtin", "cd", "command", "continue", "declare", "echo", "eval", "exec", "exit", "export",
    "false", "fc", "fg", "getopts", "hash", "jobs", "kill", "let", "local", "printf", "pwd",
    "read", "readonly", "return", "set", "shift", "source", "test", "times", "trap", "true",
    "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
];

/// `script` with `exec` before its program when it is one simple command (no list, pipe,
/// redirection, subshell, substitution or quoting among leading assignments); else unchanged.
fn exec_simple(script: &str) -> String {
    let trimmed = script.trim_start();
    if trimmed.is_empty()
        || script.chars().any(|c| {
            matches!(
                c,
                ';' | '&' | '|' | '<' | '>' | '(' | ')' | '`' | '\n' | '\r'
            )
        })
    {
        return script.to_string();
    }
    // Leading `NAME=value` assignments stay before `exec` (they reach the program's
    // environment as before); one with quotes or escapes may hold spaces, so is left alone.
    let mut rest = trimmed;
    let mut prefix_len = script.len() - trimmed.len();
    loop {
        let word_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..word_len];
        if is_assignment(word) {
            if word.contains(['\'', '"', '\\']) {
                return script.to_string();
            }
            let next = rest[word_len..].trim_start();
            prefix_len += rest.len() - next.len();
            rest = next;
            if rest.is_empty() {
                return script.to_string(); // assignments only
            }
            continue;
        }
        if NOT_PROGRAMS.contains(&word) || word.starts_with('#') {
            return script.to_string();
        }
        break;
    }
    format!("{}exec {}", &script[..prefix_len], &script[prefix_len..])
}

/// `NAME=…` with a valid shell name.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        name.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_outlives_the_stop_signal_until_its_command_ends() {
        assert_eq!(
            script("cd api && npm start", Signal::SIGINT),
            "trap 'trap - INT; wait; kill -INT $$' INT; cd api && npm start"
        );
        assert_eq!(script("serve", Signal::SIGTERM), "exec serve");
        assert_eq!(script("a; b", Signal::SIGKILL), "a; b");
    }

    #[test]
    fn a_simple_command_is_execed() {
        for (given, want) in [
            (
                "redis-server --port $PORT",
                "exec redis-server --port $PORT",
            ),
            ("  python3 app.py 'a b'", "  exec python3 app.py 'a b'"),
            (
                "RUST_LOG=debug A=1 ./serve",
                "RUST_LOG=debug A=1 exec ./serve",
            ),
            (
                "postgres -D \"$PGDATA\" # db",
                "exec postgres -D \"$PGDATA\" # db",
            ),
        ] {
            assert_eq!(exec_simple(given), want);
        }
    }

    #[test]
    fn anything_else_is_left_to_the_shell() {
        for same in [
            "cd api && npm start",
            "a; b",
            "a | b",
            "serve > out.log",
            "echo hi",
            "exec serve",
            "trap 'x' TERM",
            "while :; do sleep 1; done",
            "A=\"x y\" serve",
            "A=1",
            "x $(y)",
            "a\nb",
            "",
            "# nothing",
        ] {
            assert_eq!(exec_simple(same), same);
        }
    }
}
