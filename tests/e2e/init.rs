//! `devstack init`: a starter config that runs as it is, `.gitignore`, and what a folder without
//! a config says.

use crate::common::{BIN, free_port};
use std::process::Command;

fn devstack(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn init_writes_a_starter_that_runs_and_ignores_the_state_folder_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join(".gitignore"), "target").unwrap();

    // Without a config, devstack says what to do.
    let (code, text) = devstack(dir, &["ps"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("`devstack init` writes a starter one"),
        "{text}"
    );

    let (code, text) = devstack(dir, &["init"]);
    assert_eq!(code, 0, "{text}");
    let starter = std::fs::read_to_string(dir.join("devstack.toml")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
        "target\n.devstack/\n"
    );

    // Not replaced without --force; .gitignore not touched twice.
    std::fs::write(dir.join("devstack.toml"), "# mine\n").unwrap();
    let (code, text) = devstack(dir, &["init"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--force"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.join("devstack.toml")).unwrap(),
        "# mine\n"
    );
    let (code, text) = devstack(dir, &["init", "--force"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
        "target\n.devstack/\n"
    );

    // It passes `check`, and runs: `ci` brings it up healthy (on a free port here).
    let (code, text) = devstack(dir, &["check"]);
    assert_eq!(code, 0, "{text}");
    let port = free_port();
    std::fs::write(
        dir.join("devstack.toml"),
        starter.replace("port = 8000", &format!("port = {port}")),
    )
    .unwrap();
    let (code, text) = devstack(dir, &["ci", "--timeout", "60s"]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn init_refuses_to_write_through_a_linked_config_or_gitignore_even_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = outside.path().join("precious");
    std::fs::write(&target, "keep me\n").unwrap();

    for name in ["devstack.toml", ".gitignore"] {
        let link = dir.join(name);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for args in [&["init"][..], &["init", "--force"][..]] {
            let (code, text) = devstack(dir, args);
            assert_eq!(code, 2, "{args:?}: {text}");
            assert!(
                text.contains(&format!("{name} is a symbolic link")),
                "{args:?}: {text}"
            );
            assert!(text.contains("precious"), "the target is named: {text}");
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
        }
        std::fs::remove_file(&link).unwrap();
    }
    // A dangling link is not followed either (it would create the file where it points).
    let missing = outside.path().join("missing");
    std::os::unix::fs::symlink(&missing, dir.join("devstack.toml")).unwrap();
    let (code, text) = devstack(dir, &["init", "--force"]);
    assert_eq!(code, 2, "{text}");
    assert!(!missing.exists());
    assert!(!dir.join(".gitignore").exists(), "nothing written");
}
