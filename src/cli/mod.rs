//! The command line: parsing, finding the config, and one module per group of commands.

mod remote;
mod stack;

use clap::{Parser, Subcommand};
use devstack::config::{self, Config};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

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
        /// Run in the background; return once the stack answers on its control socket
        #[arg(short, long)]
        detach: bool,
        /// Keep running after every service has ended (used by --detach)
        #[arg(long, hide = true)]
        stay: bool,
    },
    /// Status of the running stack
    Ps {
        /// Machine-readable output (see the README for the fields)
        #[arg(long)]
        json: bool,
    },
    /// Start services of the running stack (and what they depend on); waits until they are ready
    Start {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Stop services of the running stack; waits until they have stopped
    Stop {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Restart services of the running stack; waits until the new process is ready
    Restart {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Rebuild and restart services of the running stack; waits for the result
    Rebuild {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// SIGKILL the process groups of services of the running stack
    Kill {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Print logs of the running stack, or from the log files when none runs
    Logs {
        /// Services (default: all)
        services: Vec<String>,
        /// Keep printing new lines (`-f` here means this, not --file)
        #[arg(long)]
        follow: bool,
        /// Lines to show from the end (merged across services)
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
    },
    /// Stop the running stack gracefully
    Down,
    /// Rebuild a service of the running stack when its files change (auto), or only by hand
    Watch {
        service: String,
        #[arg(value_parser = ["auto", "manual"])]
        mode: String,
    },
    /// Validate devstack.toml and print the resolved plan
    Check,
    /// Start headless; exit 0 once every service is ready, 1 as soon as one fails
    Ci {
        /// Services to bring up (default: every service with autostart)
        services: Vec<String>,
        /// Give up after this long
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Start the stack, wait until it is ready, run CMD, stop the stack; exit with CMD's status
    Run {
        /// Services to bring up (default: every service with autostart)
        services: Vec<String>,
        /// Give up waiting for readiness after this long
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
        /// The command, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 90s or 5m)"))
}

/// `logs -f` follows, as `tail -f` does, while everywhere else `-f` names the config file: clap
/// can't give one short flag two meanings, so `-f` after `logs` is read as `--follow`
/// (`--file` still names the file there).
fn args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(at) = args.iter().position(|a| a == "logs") {
        for arg in &mut args[at + 1..] {
            if arg == "-f" {
                *arg = "--follow".into();
            }
        }
    }
    args
}

pub fn main() -> ExitCode {
    let cli = Cli::parse_from(args());
    let cfg = match load(cli.file.as_deref()) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let color = !cli.no_color && std::env::var_os("NO_COLOR").is_none();
    let stdout_color = color && std::io::stdout().is_terminal();
    let command = cli.command.unwrap_or(Cmd::Up {
        services: Vec::new(),
        detach: false,
        stay: false,
    });
    match command {
        Cmd::Check => {
            print!("{}", config::describe(&cfg));
            ExitCode::SUCCESS
        }
        Cmd::Up {
            services,
            detach: true,
            ..
        } => remote::detach(&cfg, &services),
        Cmd::Up { services, stay, .. } => {
            let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
            if terminal && !cli.headless && !stay {
                stack::tui(cfg, &services, stdout_color)
            } else {
                stack::up(cfg, &services, stdout_color, stay)
            }
        }
        Cmd::Ps { json } => remote::ps(&cfg, json),
        Cmd::Start { services } => remote::act(&cfg, remote::Action::Start, &services),
        Cmd::Stop { services } => remote::act(&cfg, remote::Action::Stop, &services),
        Cmd::Restart { services } => remote::act(&cfg, remote::Action::Restart, &services),
        Cmd::Rebuild { services } => remote::act(&cfg, remote::Action::Rebuild, &services),
        Cmd::Kill { services } => remote::act(&cfg, remote::Action::Kill, &services),
        Cmd::Logs {
            services,
            follow,
            lines,
        } => remote::logs(&cfg, &services, lines, follow, stdout_color),
        Cmd::Down => remote::down(&cfg),
        Cmd::Watch { service, mode } => remote::watch(&cfg, &service, mode == "auto"),
        Cmd::Ci { services, timeout } => stack::ci(cfg, &services, timeout, stdout_color),
        Cmd::Run {
            services,
            timeout,
            command,
        } => {
            let stderr_color = color && std::io::stderr().is_terminal();
            stack::run(cfg, &services, timeout, &command, stderr_color)
        }
    }
}

fn load(file: Option<&Path>) -> Result<Config, ExitCode> {
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

/// devstack's own word on stderr; a closed stderr must not take the stack down with a panic.
fn note(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "devstack: {text}");
}
