//! Putting text on the user's clipboard: OSC 52 through the terminal (works over ssh and in
//! tmux), and the desktop's own tool when one is installed (wl-copy, xclip, pbcopy).

use crate::ignored::Ignore;
use std::io::Write;
use std::process::{Command, Stdio};

pub fn copy(text: &str) {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let mut out = std::io::stdout();
    const GONE: &str = "the terminal may be gone; the desktop's tool is tried all the same";
    write!(out, "\x1b]52;c;{encoded}\x07").or_say(GONE);
    out.flush().or_say(GONE);
    for (tool, args) in [
        ("wl-copy", &[][..]),
        ("xclip", &["-selection", "clipboard"][..]),
        ("pbcopy", &[][..]),
    ] {
        let mut command = Command::new(tool);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // With the soft limit of open files devstack was given, as everything it starts.
        // SAFETY: `restore` makes one system call.
        let child = unsafe {
            std::os::unix::process::CommandExt::pre_exec(
                &mut command,
                crate::process::nofile::restore,
            )
        }
        .spawn();
        if let Ok(mut child) = child {
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(text.as_bytes())
                    .or_say("the tool left without taking the text: nothing was copied");
            }
            // Reaped on a thread: xclip stays until another program takes the clipboard.
            std::thread::spawn(move || child.wait());
            return;
        }
    }
}
