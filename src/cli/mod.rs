//! The command line: parsing (`args.rs`), finding the config, and one module per group of
//! commands.

mod args;
mod attach;
mod complete;
mod debuglog;
mod examples;
mod fault;
mod init;
mod mcp;
mod mcp_stdio;
mod remote;
mod replay;
mod stack;
mod traffic;

use args::{Cli, Cmd};
use clap::{CommandFactory, Parser};
use devstack::config::{self, Config};
use devstack::ignored::Ignore;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub fn main() -> ExitCode {
    if let Some(failed) = devstack::process::nofile::trampoline() {
        return failed;
    }
    complete::answer(Cli::command);
    let cli = Cli::try_parse().unwrap_or_else(|e| args::suggest_subcommand(e).exit());
    let _log = debuglog::init(cli.verbose, cli.file.as_deref());
    let command = cli.command.unwrap_or(Cmd::Up {
        services: Vec::new(),
        detach: false,
        wait: false,
        timeout: Duration::ZERO,
        faults: Vec::new(),
        stay: false,
        headless: false,
        no_color: false,
    });
    let (headless, no_color) = match &command {
        Cmd::Up {
            headless, no_color, ..
        } => (*headless, *no_color),
        Cmd::Logs { no_color, .. } | Cmd::Ci { no_color, .. } | Cmd::Run { no_color, .. } => {
            (false, *no_color)
        }
        _ => (false, false),
    };
    let color = !(cli.no_color || no_color) && std::env::var_os("NO_COLOR").is_none();
    let flags = Flags {
        file: cli.file.as_deref(),
        headless: cli.headless || headless,
        color,
        stdout_color: color && std::io::stdout().is_terminal(),
    };
    run(command, &flags)
}

/// What the flags say for the command run: the global ones and its own.
struct Flags<'a> {
    /// The config file (`-f PATH`).
    file: Option<&'a Path>,
    /// Prefixed log lines instead of the dashboard.
    headless: bool,
    /// Colours, unless told not to.
    color: bool,
    /// Colours on stdout: wanted, and stdout is a terminal.
    stdout_color: bool,
}

fn run(command: Cmd, flags: &Flags) -> ExitCode {
    let Flags {
        file,
        color,
        stdout_color,
        ..
    } = *flags;
    match command {
        Cmd::Init { force, from } => init_config(file, force, from.as_deref()),
        Cmd::Completions { shell } => complete::script(&shell),
        Cmd::Man { command } => args::man(command.as_deref()),
        Cmd::Schema => schema(),
        Cmd::Check => check(file),
        Cmd::Up {
            services,
            detach: true,
            wait,
            timeout,
            faults,
            ..
        } => with_config(file, |cfg| {
            remote::detach(&cfg, &services, &faults, wait.then_some(timeout))
        }),
        Cmd::Up {
            services,
            stay,
            faults,
            ..
        } => up(&services, stay, &faults, flags),
        Cmd::Attach => with_stack(file, |s| attach::attach(s, file)),
        Cmd::Mcp => mcp::serve(file),
        Cmd::Ps { json } => with_stack(file, |s| remote::ps(s, json)),
        Cmd::Traffic {
            inside: Some(inside),
            json,
            ..
        } => with_stack(file, |s| traffic::inside(s, inside, json)),
        Cmd::Traffic {
            json,
            follow,
            errors,
            ..
        } => with_stack(file, |s| traffic::traffic(s, json, follow, errors)),
        Cmd::Fault { cmd } => with_stack(file, |s| fault::fault(s, cmd)),
        Cmd::Start { services } => act(file, remote::Action::Start, &services),
        Cmd::Stop { services } => act(file, remote::Action::Stop, &services),
        Cmd::Restart { all: true, .. } => with_stack(file, remote::restart_all),
        Cmd::Restart { services, .. } => act(file, remote::Action::Restart, &services),
        Cmd::Rebuild { services } => act(file, remote::Action::Rebuild, &services),
        Cmd::Kill { services } => act(file, remote::Action::Kill, &services),
        Cmd::Use { service, end } => {
            with_stack(file, |s| remote::use_end(s, &service, end == "remote"))
        }
        Cmd::Watch { service, mode } => {
            with_stack(file, |s| remote::watch(s, &service, mode == "auto"))
        }
        Cmd::Logs {
            services,
            follow,
            lines,
            ..
        } => logs(file, &services, lines, follow, stdout_color),
        Cmd::Down { volumes } => down(file, volumes),
        Cmd::Ci {
            services,
            timeout,
            quiet,
            ..
        } => {
            let output = stack::Output {
                color: stdout_color,
                quiet,
            };
            running_config(file, |cfg| stack::ci(cfg, &services, timeout, output))
        }
        Cmd::Run {
            services,
            timeout,
            quiet,
            command,
            faults,
            ..
        } => {
            let output = stack::Output {
                color: color && std::io::stderr().is_terminal(),
                quiet,
            };
            let job = stack::Job {
                command: &command,
                faults: &faults,
            };
            running_config(file, |cfg| stack::run(cfg, &services, timeout, job, output))
        }
    }
}

/// `schema`: the JSON Schema of `devstack.toml` on stdout.
fn schema() -> ExitCode {
    let schema = serde_json::to_string_pretty(&config::schema()).expect("a schema is JSON");
    remote::out(&schema);
    ExitCode::SUCCESS
}

/// `check`: the resolved plan on stdout (a config with errors exits 2, saying them).
fn check(file: Option<&Path>) -> ExitCode {
    with_config(file, |cfg| {
        use std::io::Write;
        write!(std::io::stdout().lock(), "{}", config::describe(&cfg))
            .or_say("`check | head` closes the pipe early: not worth a panic");
        ExitCode::SUCCESS
    })
}

/// `init`: the starter config (or the translation of `from`) written at `-f PATH`, or here.
fn init_config(file: Option<&Path>, force: bool, from: Option<&Path>) -> ExitCode {
    let target = match file {
        Some(f) => std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf()),
        None => std::env::current_dir()
            .unwrap_or_default()
            .join(config::FILE_NAME),
    };
    init::init(&target, force, from)
}

/// `up` in this process: the dashboard on a terminal (on the stack already running here, when
/// one does and no service is named), otherwise prefixed lines.
fn up(services: &[String], stay: bool, faults: &[String], flags: &Flags) -> ExitCode {
    let file = flags.file;
    let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let dashboard = terminal && !flags.headless && !stay;
    // Plain `devstack` where a stack already runs: the dashboard on that stack.
    if dashboard && services.is_empty() && faults.is_empty() {
        match remote::find(file) {
            Err(code) => return code,
            Ok(Some(running)) => return attach::attach(running, file),
            Ok(None) => {}
        }
    }
    running_config(file, |cfg| {
        if dashboard {
            stack::tui(cfg, services, flags.stdout_color, faults)
        } else {
            stack::up(cfg, services, flags.stdout_color, stay, faults)
        }
    })
}

/// `logs`: from the running stack, or from the log files when none runs.
fn logs(
    file: Option<&Path>,
    services: &[String],
    lines: usize,
    follow: bool,
    color: bool,
) -> ExitCode {
    match remote::find(file) {
        Err(code) => code,
        Ok(Some(stack)) => remote::logs(stack, services, lines, follow, color),
        Ok(None) => with_config(file, |cfg| {
            remote::logs_from_files(&cfg, services, lines, follow, color)
        }),
    }
}

/// `start`, `stop`, `restart`, `rebuild` or `kill` on services of the running stack.
fn act(file: Option<&Path>, action: remote::Action, services: &[String]) -> ExitCode {
    with_stack(file, |s| remote::act(s, action, services))
}

/// `down`: the running stack stopped; nothing running is said, and is not an error.
fn down(file: Option<&Path>, volumes: bool) -> ExitCode {
    let code = match remote::find(file) {
        Err(code) => return code,
        Ok(Some(stack)) => remote::down(stack),
        Ok(None) => with_config(file, |cfg| {
            note(&format!("nothing is running in {}", cfg.root.display()));
            // What a devstack killed with SIGKILL left running goes now.
            if let Some(engine) = &cfg.container_engine {
                for said in devstack::process::containers::remove_leftovers(engine, &cfg.stack_id) {
                    note(&said);
                }
            }
            ExitCode::SUCCESS
        }),
    };
    if !volumes || code != ExitCode::SUCCESS {
        return code;
    }
    with_config(file, remove_volumes)
}

/// `down --volumes`, once the stack has stopped: the named volumes of its image services.
fn remove_volumes(cfg: Config) -> ExitCode {
    let mut names: Vec<String> = (cfg.services.values())
        .filter_map(|s| s.container.as_ref())
        .flat_map(|c| c.named_volumes.iter().cloned())
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        note("no named volumes to remove");
        return ExitCode::SUCCESS;
    }
    let Some(engine) = &cfg.container_engine else {
        note(
            "error: no container engine (podman or docker) on the PATH to remove the volumes with",
        );
        return ExitCode::FAILURE;
    };
    match devstack::process::containers::remove_volumes(engine, &names) {
        Ok(()) => {
            note(&format!("removed volumes: {}", names.join(", ")));
            ExitCode::SUCCESS
        }
        Err(e) => {
            note(&format!(
                "error: {engine} could not remove the volumes: {e}"
            ));
            ExitCode::FAILURE
        }
    }
}

/// Run a command that needs the config; a bad or missing one exits 2.
fn with_config(file: Option<&Path>, command: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    match load(file, &config::load) {
        Ok(cfg) => command(cfg),
        Err(code) => code,
    }
}

/// `with_config` for a command that runs the stack in this process: proxied services get their
/// private ports (`config::load_to_run`).
fn running_config(file: Option<&Path>, command: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    // Each picked port is held until all are picked, so that no two services share one.
    let ports = devstack::routes::PrivatePorts::default();
    let loaded = load(file, &|path| config::load_to_run(path, &|| ports.pick()));
    drop(ports);
    match loaded {
        Ok(cfg) => command(cfg),
        Err(code) => code,
    }
}

/// Run a command against the running stack, found without its config (which may have been
/// broken or deleted while it runs); when none runs, the config says where none runs.
fn with_stack(file: Option<&Path>, command: impl FnOnce(remote::Running) -> ExitCode) -> ExitCode {
    match remote::find(file) {
        Err(code) => code,
        Ok(Some(stack)) => command(stack),
        Ok(None) => with_config(file, |cfg| remote::not_running(&cfg)),
    }
}

fn load(
    file: Option<&Path>,
    load: &dyn Fn(&Path) -> Result<Config, config::diag::ConfigErrors>,
) -> Result<Config, ExitCode> {
    let path = match file {
        Some(f) => f.to_path_buf(),
        None => {
            let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            match config::find(&here) {
                Some(p) => p,
                None => {
                    to_stderr(&format!(
                        "error: no {} in {} or any parent folder\n  = help: `devstack init` writes a starter one here; or point to one with -f PATH",
                        config::FILE_NAME,
                        config::diag::printable(&here.display().to_string())
                    ));
                    if let Some(other) = config::import::find_importable(&here) {
                        to_stderr(&format!(
                            "  = help: `devstack init --from {other}` translates the {other} here"
                        ));
                    }
                    return Err(ExitCode::from(2));
                }
            }
        }
    };
    match load(&path) {
        Ok(cfg) => {
            tracing::info!(file = %path.display(), services = cfg.services.len(), "config loaded");
            Ok(cfg)
        }
        Err(e) => {
            tracing::info!(file = %path.display(), errors = e.0.len(), "config refused");
            to_stderr(&e.to_string());
            Err(ExitCode::from(2))
        }
    }
}

/// A service's last log lines, on stderr, under a note saying whose they are.
fn show_lines(service: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    note(&format!(
        "last {} of `{service}`:",
        devstack::format::plural(lines.len(), "line")
    ));
    service_lines(service, lines);
}

/// A service's lines on stderr, each as `  SERVICE | LINE`.
fn service_lines(service: &str, lines: &[String]) {
    for line in lines {
        to_stderr(&format!("  {service} | {line}"));
    }
}

/// devstack's own word on stderr.
fn note(text: &str) {
    to_stderr(&format!("devstack: {text}"));
}

/// A line on stderr; a closed stderr must not take the stack down with a panic.
fn to_stderr(line: &str) {
    use std::io::Write;
    writeln!(std::io::stderr(), "{line}").or_say("stderr is closed: nowhere to say it");
}
