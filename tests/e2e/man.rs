//! `devstack man`: the manual page, generated from the same clap definitions as `--help`,
//! through the real binary.

use crate::common::BIN;
use std::io::Write;
use std::process::{Command, Stdio};

fn devstack(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The commands `devstack --help` lists.
fn commands() -> Vec<String> {
    let (_, help, _) = devstack(&["--help"]);
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn the_man_page_is_roff_naming_every_command_and_renders() {
    let (code, page, err) = devstack(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(page.contains(".TH devstack 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    let commands = commands();
    assert!(commands.len() > 15, "{commands:?}");
    for name in &commands {
        let escaped = name.replace('-', "\\-");
        assert!(
            page.contains(&format!("devstack\\-{escaped}(1)")),
            "`{name}` is not in the page"
        );
    }
    // Hidden from help and completion, and so from its own page.
    assert!(!commands.contains(&"man".to_string()));
    assert!(page.contains("\\-\\-headless"), "global flags: {page}");

    // Where groff is installed, the page renders without a warning.
    let Ok(mut groff) = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return;
    };
    groff
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = groff.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("devstack-up(1)") && text.contains("Start the stack, or the named services"),
        "{text}"
    );
}

#[test]
fn each_command_has_a_page_and_an_unknown_one_is_named() {
    let (code, page, err) = devstack(&["man", "up"]);
    assert_eq!(code, 0, "{err}");
    assert!(page.contains(".TH devstack-up 1"), "{page}");
    assert!(
        page.contains("\\-\\-detach") && page.contains("\\-\\-file"),
        "{page}"
    );
    let (code, page, err) = devstack(&["man", "nosuch"]);
    assert_eq!(code, 2);
    assert_eq!(page, "");
    assert!(
        err.contains("no command `nosuch`") && err.contains("logs"),
        "{err}"
    );
}
