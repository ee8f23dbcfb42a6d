//! The command line: parsing, finding the config, and one module per group of commands.

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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match load(cli.file.as_deref()) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let color = !cli.no_color && std::env::var_os("NO_COLOR").is_none();
    let stdout_color = color && std::io::stdout().is_terminal();
    match cli.command.unwrap_or(Cmd::Up {
        services: Vec::new(),
    }) {
        Cmd::Check => {
            print!("{}", config::describe(&cfg));
            ExitCode::SUCCESS
        }
        Cmd::Up { services } => stack::up(cfg, &services, stdout_color),
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
