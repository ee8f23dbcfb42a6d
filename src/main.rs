use clap::{Parser, Subcommand};
use devstack::config::{self, Config};
use devstack::engine::{self, Command, Engine, Options};
use devstack::headless::Printer;
use devstack::logs::LogHub;
use devstack::statedir::StateDir;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Run a whole stack of local services: build, supervise, restart on change, show logs and traffic.
#[derive(Parser)]
#[command(name = "devstack", version, about)]
struct Cli {
    /// The config file (default: devstack.toml here or in the nearest parent folder)
    #[arg(short, long, global = true, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Prefixed log lines instead of the dashboard
    #[arg(long, global = true)]
    headless: bool,
    /// No colours (also: the NO_COLOR variable)
    #[arg(long, global = true)]
    no_color: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the stack, or the named services and everything they depend on
    Up {
        /// Services to start (default: every service with autostart)
        services: Vec<String>,
    },
    /// Validate devstack.toml and print the resolved plan
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match load(cli.file.as_deref()) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    match cli.command.unwrap_or(Cmd::Up {
        services: Vec::new(),
    }) {
        Cmd::Check => {
            print!("{}", config::describe(&cfg));
            ExitCode::SUCCESS
        }
        Cmd::Up { services } => {
            let color = !cli.no_color
                && std::env::var_os("NO_COLOR").is_none()
                && std::io::stdout().is_terminal();
            up(cfg, &services, color)
        }
    }
}

fn load(file: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    let path = match file {
        Some(f) => f.to_path_buf(),
        None => {
            let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            match config::find(&here) {
                Some(p) => p,
                None => {
                    eprintln!(
                        "error: no {} in {} or any parent folder\n  = help: create one, or point to it with -f PATH",
                        config::FILE_NAME,
                        here.display()
                    );
                    return Err(ExitCode::from(2));
                }
            }
        }
    };
    config::load(&path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn resolve_names(cfg: &Config, names: &[String]) -> Result<Vec<usize>, String> {
    names
        .iter()
        .map(|n| {
            cfg.services
                .iter()
                .position(|s| &s.name == n)
                .ok_or_else(|| {
                    let all: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
                    format!("unknown service `{n}`; services are: {}", all.join(", "))
                })
        })
        .collect()
}

fn up(cfg: Config, services: &[String], color: bool) -> ExitCode {
    let only = match resolve_names(&cfg, services) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = Arc::new(cfg);
    let names: Vec<String> = cfg.services.iter().map(|s| s.name.clone()).collect();
    let state = StateDir::new(&cfg.root);
    let _lock = match state.lock() {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let logs = Arc::new(LogHub::new(
        &state.logs(),
        &names,
        Some(Arc::new(Printer::new(&names, color))),
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let (engine, handle) = Engine::new(
            cfg.clone(),
            logs,
            Options {
                only,
                exit_when_settled: true,
            },
        );
        for said in engine.reap_leftovers() {
            note(&said);
        }
        tokio::spawn(shutdown_on_signals(handle));
        let outcome = engine.run().await;
        if outcome.failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            for (name, status) in &outcome.failures {
                note(&format!("{name} {status}"));
            }
            ExitCode::FAILURE
        }
    })
}

/// The first Ctrl-C, SIGTERM or SIGHUP stops the stack gracefully; the next kills it.
async fn shutdown_on_signals(handle: engine::Handle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let mut first = true;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        if first {
            note("stopping the stack (again to kill everything at once)");
            handle.send(Command::Shutdown);
            first = false;
        } else {
            note("killing every service");
            handle.send(Command::ForceShutdown);
        }
    }
}

/// devstack's own word on stderr; a closed stderr must not take the stack down with a panic.
fn note(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "devstack: {text}");
}
