//! `devstack attach` (and plain `devstack` where a stack already runs): the dashboard on a stack
//! running elsewhere, through its control socket (`ui::source::Remote`).

use super::note;
use super::remote::Running;
use devstack::config;
use devstack::ui::app::App;
use devstack::ui::source::{Remote, Stack};
use devstack::ui::{End, Wake};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Lines kept per service when the stack's config can't be read (its default).
const SCROLLBACK: usize = 10_000;

pub fn attach(stack: Running, file: Option<&Path>) -> ExitCode {
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        note(
            "error: the dashboard needs a terminal; `devstack ps` and `devstack logs -f` work without one",
        );
        return ExitCode::from(2);
    }
    if let Err(e) = devstack::ui::probe() {
        note(&format!(
            "error: this terminal can't show the dashboard ({e})"
        ));
        return ExitCode::FAILURE;
    }
    // The name and scrollback come from the config when it still reads (the stack runs without
    // it: it may have been edited into an error since).
    let folder = stack.folder().to_path_buf();
    let config_file = file.map_or_else(|| folder.join(config::FILE_NAME), Path::to_path_buf);
    let (name, scrollback) = match config::load(&config_file) {
        Ok(cfg) => (cfg.name, cfg.scrollback),
        Err(_) => (
            folder
                .file_name()
                .map_or("stack".into(), |n| n.to_string_lossy().into_owned()),
            SCROLLBACK,
        ),
    };
    let pid = stack
        .pid()
        .map_or(String::new(), |pid| format!(" (pid {pid})"));
    let wake = Arc::new(Wake::default());
    let remote = match Remote::connect(&stack.socket(), scrollback, wake.clone()) {
        Ok(r) => r,
        Err(e) => {
            note(&format!("error: {e}"));
            return ExitCode::FAILURE;
        }
    };
    drop(stack);
    let names = remote.names.clone();
    let stack = Stack::Remote(remote);
    let mut app = App::new(name, names, stack.logs());
    app.attached = stack.attached();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ended = runtime.block_on(async {
        tokio::select! {
            ended = devstack::ui::run(stack, app, wake) => ended,
            // SIGTERM or SIGHUP: leave (the terminal is put back); the stack runs on.
            () = terminated() => Ok(End::Detached),
        }
    });
    match ended {
        Ok(End::Detached) => {
            note(&format!(
                "detached; the stack keeps running{pid}: `devstack attach` comes back, `devstack down` stops it"
            ));
            ExitCode::SUCCESS
        }
        Ok(End::Quit) => {
            note("the stack stopped");
            ExitCode::SUCCESS
        }
        Ok(End::TerminalLost(_)) => ExitCode::SUCCESS,
        Err(e) => {
            note(&format!("the dashboard failed: {e}"));
            ExitCode::FAILURE
        }
    }
}

async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}
