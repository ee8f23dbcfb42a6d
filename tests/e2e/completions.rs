//! `devstack completions SHELL`: the scripts are valid for their shell, and completing a service
//! argument in a folder with a devstack.toml offers that stack's services, through a real shell.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_devstack");

const CONFIG: &str = r#"
[services.web]
run = "serve"
[services.db-main]
run = "db"
[services.migrate]
build = "true"
"#;

fn script(shell: &str) -> String {
    let out = Command::new(BIN)
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("DEVSTACK_COMPLETE"), "{text}");
    text
}

fn installed(shell: &str) -> bool {
    Command::new(shell)
        .args(["-c", "exit 0"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn lines(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

#[test]
fn every_shell_gets_a_script_its_shell_accepts() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let text = script(shell);
        let file = dir.path().join(format!("devstack.{shell}"));
        std::fs::write(&file, &text).unwrap();
        if !installed(shell) {
            eprintln!("{shell} is not installed: its script is not checked");
            continue;
        }
        let out = Command::new(shell).arg("-n").arg(&file).output().unwrap();
        assert!(out.status.success(), "{shell} -n: {out:?}\n{text}");
    }
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `devstack restart <TAB>` in bash, with the script sourced as a user's .bashrc would.
fn bash_complete(dir: &Path, words: &[&str]) -> Vec<String> {
    let file = dir.join("complete.bash");
    std::fs::write(&file, script("bash")).unwrap();
    let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        r#"source {file}
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_TYPE=9
_clap_complete_devstack devstack "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        file = file.display(),
        words = words.join(" ")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.stderr.is_empty(), "{out:?}");
    lines(&out)
}

#[test]
fn bash_completes_the_services_of_the_stack_here() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("devstack.toml"), CONFIG).unwrap();
    let names = bash_complete(dir.path(), &["devstack", "restart", ""]);
    for name in ["web", "db-main", "migrate"] {
        assert!(names.contains(&name.to_string()), "{names:?}");
    }
    assert_eq!(
        bash_complete(dir.path(), &["devstack", "logs", "w"]),
        ["web"]
    );
    // From a subfolder: the nearest devstack.toml up.
    let sub = dir.path().join("src");
    std::fs::create_dir(&sub).unwrap();
    assert_eq!(bash_complete(&sub, &["devstack", "kill", "d"]), ["db-main"]);
    // Subcommands complete too.
    let commands = bash_complete(dir.path(), &["devstack", "re"]);
    assert!(commands.contains(&"restart".to_string()), "{commands:?}");
    assert!(commands.contains(&"rebuild".to_string()), "{commands:?}");
}

#[test]
fn the_services_of_the_file_named_with_f_are_completed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("other")).unwrap();
    std::fs::write(dir.path().join("other/stack.toml"), CONFIG).unwrap();
    // Here, a config with other services: the one named on the line wins.
    std::fs::write(
        dir.path().join("devstack.toml"),
        "[services.local]\nrun = \"x\"\n",
    )
    .unwrap();
    for words in [
        &["devstack", "-f", "other/stack.toml", "restart", ""][..],
        &["devstack", "restart", "--file=other/stack.toml", ""],
        &["devstack", "logs", "--file", "other/stack.toml", "-f", ""],
    ] {
        let names = bash_complete(dir.path(), words);
        assert!(names.contains(&"web".to_string()), "{words:?}: {names:?}");
        assert!(
            !names.contains(&"local".to_string()),
            "{words:?}: {names:?}"
        );
    }
    let names = bash_complete(dir.path(), &["devstack", "logs", "-f", ""]);
    assert!(names.contains(&"local".to_string()), "{names:?}");
}

#[test]
fn every_service_command_completes_services_even_from_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    // Not TOML (an unclosed string): the headers still name the services, and nothing is said.
    std::fs::write(
        dir.path().join("devstack.toml"),
        "[services.web]\nrun = \"serve\n[services.api]\n",
    )
    .unwrap();
    for command in [
        "up", "start", "stop", "restart", "rebuild", "kill", "logs", "watch",
    ] {
        let out = Command::new(BIN)
            .args(["--", "devstack", command, ""])
            .env("DEVSTACK_COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", "2")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.stderr.is_empty(), "{command}: {out:?}");
        let names = lines(&out);
        assert!(names.contains(&"web".to_string()), "{command}: {names:?}");
        assert!(names.contains(&"api".to_string()), "{command}: {names:?}");
    }
    // No config at all: no names, no error.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--", "devstack", "stop", ""])
        .env("DEVSTACK_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .current_dir(empty.path())
        .output()
        .unwrap();
    assert!(out.stderr.is_empty(), "{out:?}");
    assert!(!lines(&out).contains(&"web".to_string()));
}

#[test]
fn fish_completes_the_services_of_the_stack_here() {
    if !installed("fish") {
        eprintln!("fish is not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("devstack.toml"), CONFIG).unwrap();
    let file = dir.path().join("complete.fish");
    std::fs::write(&file, script("fish")).unwrap();
    let program = format!(
        "source {}; complete --do-complete 'devstack restart '",
        file.display()
    );
    let out = Command::new("fish")
        .args(["--no-config", "-c", &program])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let names = lines(&out);
    for name in ["web", "db-main", "migrate"] {
        assert!(names.contains(&name.to_string()), "{names:?} {out:?}");
    }
}
