//! The command line as clap reads it: `Cli` and its commands (`Cmd`), each `--help` ending with
//! its `Examples:` (`examples.rs`; the tests here fail for a command without, or for an example
//! that doesn't parse); a suggestion for a mistyped command; and `devstack man`, rendered from
//! the same definitions (clap_mangen).

use super::{complete, examples, note};
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::ArgValueCandidates;
use devstack::config;
use devstack::ignored::Ignore;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Run a whole stack of local services: build, supervise, restart on change, show logs and traffic.
#[derive(Parser)]
#[command(name = "devstack", version, about, after_help = examples::DEVSTACK)]
pub(super) struct Cli {
    /// The config file (default: devstack.toml here or in the nearest parent folder)
    #[arg(short, long, global = true, value_name = "PATH")]
    pub(super) file: Option<PathBuf>,
    // `--headless` and `--no-color` are given to the commands they change (here for plain
    // `devstack`, which is `up`), not offered on every one.
    /// Prefixed log lines instead of the dashboard
    #[arg(long)]
    pub(super) headless: bool,
    /// No colours (also: the NO_COLOR variable)
    #[arg(long)]
    pub(super) no_color: bool,
    /// devstack's own diagnostics into .devstack/devstack.log (-vv: more; or DEVSTACK_LOG=FILTER)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(super) verbose: u8,
    #[command(subcommand)]
    pub(super) command: Option<Cmd>,
}

#[derive(Subcommand)]
pub(super) enum Cmd {
    /// Start the stack, or the named services and everything they depend on
    #[command(after_help = examples::UP)]
    Up {
        /// Services to start (default: every service with autostart)
        #[arg(add = ArgValueCandidates::new(complete::services))]
        services: Vec<String>,
        /// Run in the background; return once the stack answers on its control socket
        #[arg(short, long)]
        detach: bool,
        /// With -d: return once every service is ready (exit 1 naming a failure, as `ci`)
        #[arg(long, requires = "detach")]
        wait: bool,
        /// With --wait: give up after this long (the stack keeps running)
        #[arg(long, default_value = "5m", value_parser = parse_duration, requires = "wait")]
        timeout: Duration,
        /// Set the faults of this scenario of devstack.toml (`[faults.NAME]`) once the stack is
        /// ready (may repeat); they end with the stack
        #[arg(long = "faults", value_name = "NAME", add = ArgValueCandidates::new(complete::scenarios))]
        faults: Vec<String>,
        /// Keep running after every service has ended (used by --detach)
        #[arg(long, hide = true)]
        stay: bool,
        /// Prefixed log lines instead of the dashboard
        #[arg(long)]
        headless: bool,
        /// No colours (also: the NO_COLOR variable)
        #[arg(long)]
        no_color: bool,
    },
    /// Open the dashboard on the stack running here (started with `up -d`, or in another
    /// terminal); `q` then detaches or stops it
    #[command(after_help = examples::ATTACH)]
    Attach,
    /// Status of the running stack
    #[command(after_help = examples::PS)]
    Ps {
        /// Machine-readable output (see the README for the fields)
        #[arg(long)]
        json: bool,
    },
    /// Start services of the running stack (and what they depend on); waits until they are ready
    #[command(after_help = examples::START)]
    Start {
        #[arg(required = true, add = ArgValueCandidates::new(complete::services))]
        services: Vec<String>,
    },
    /// Stop services of the running stack; waits until they have stopped
    #[command(after_help = examples::STOP)]
    Stop {
        #[arg(required = true, add = ArgValueCandidates::new(complete::services))]
        services: Vec<String>,
    },
    /// Restart services of the running stack; waits until the new process is ready
    #[command(after_help = examples::RESTART)]
    Restart {
        #[arg(required_unless_present = "all", add = ArgValueCandidates::new(complete::services))]
        services: Vec<String>,
        /// Every service, in dependency order (one-shot tasks are not run again), as `R` does
        #[arg(long, conflicts_with = "services")]
        all: bool,
    },
    /// Rebuild and restart services of the running stack; waits for the result
    #[command(after_help = examples::REBUILD)]
    Rebuild {
        #[arg(required = true, add = ArgValueCandidates::new(complete::services))]
        services: Vec<String>,
    },
    /// SIGKILL the process groups of services of the running stack
    #[command(after_help = examples::KILL)]
    Kill {
        #[arg(required = true, add = ArgValueCandidates::new(complete::services))]
        services: Vec<String>,
    },
    /// Print logs of the running stack, or from the log files when none runs
    #[command(after_help = examples::LOGS)]
    Logs {
        /// Services (default: all)
        #[arg(add = ArgValueCandidates::new(complete::services))]
        services: Vec<String>,
        /// Keep printing new lines, as `tail -f` does
        #[arg(short, long)]
        follow: bool,
        // An argument with the global one's id keeps clap from giving `logs` the global `-f`,
        // which it then has for --follow; clap still fills `Cli::file` from this one.
        /// The config file (`-f` means --follow here)
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Lines to show from the end (merged across services)
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
        /// No colours (also: the NO_COLOR variable)
        #[arg(long)]
        no_color: bool,
    },
    /// Who calls whom in the running stack: requests, rates, errors and latency per edge
    #[command(after_help = examples::TRAFFIC)]
    Traffic {
        #[command(subcommand)]
        inside: Option<Inside>,
        /// Print the table (or, with -f, each request) as JSON
        #[arg(long, global = true)]
        json: bool,
        /// Print each request as it ends, after the last few
        #[arg(short, long)]
        follow: bool,
        /// With -f: only the requests that failed (5xx, gRPC errors, resets, refusals)
        #[arg(long, requires = "follow")]
        errors: bool,
        /// The config file (`-f` means --follow here)
        #[arg(long, value_name = "PATH", global = true)]
        file: Option<PathBuf>,
    },
    /// Faults on the edges of the running stack, to see what a service does when another is
    /// slow, fails or is gone: a delay, an error answered by the proxy, a reset, a hold without
    /// answer, on `caller->callee`, on every caller of a service, or from outside. Faults set
    /// here live in the stack's memory only: they end with it
    #[command(after_help = examples::FAULT)]
    Fault {
        #[command(subcommand)]
        cmd: super::fault::FaultCmd,
    },
    /// Write a commented starter devstack.toml here (or translate a Procfile or compose file with
    /// --from), and add .devstack/ to .gitignore
    #[command(after_help = examples::INIT)]
    Init {
        /// Replace an existing devstack.toml
        #[arg(long)]
        force: bool,
        /// Translate a Procfile, docker-compose.yml/compose.yaml or process-compose.yaml instead
        /// (what can't be translated: comments, and warnings on stderr)
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Stop the running stack gracefully
    #[command(after_help = examples::DOWN)]
    Down {
        /// Also remove the named volumes of the stack's image services (their data)
        #[arg(long)]
        volumes: bool,
    },
    /// Rebuild a service of the running stack when its files change (auto), or only by hand
    #[command(after_help = examples::WATCH)]
    Watch {
        #[arg(add = ArgValueCandidates::new(complete::services))]
        service: String,
        #[arg(value_parser = ["auto", "manual"])]
        mode: String,
    },
    /// Serve a service that has both a `run` and a `url` by its local process or its remote end
    /// (the proxy switches; its callers keep their NAME_URL)
    #[command(name = "use", after_help = examples::USE)]
    Use {
        #[arg(add = ArgValueCandidates::new(complete::services))]
        service: String,
        #[arg(value_parser = ["local", "remote"])]
        end: String,
    },
    /// Serve the Model Context Protocol on stdio, for coding agents: tools to see and drive
    /// the stack running here (ps, logs, start/stop/restart/rebuild, wait_ready, traffic,
    /// faults)
    #[command(after_help = examples::MCP)]
    Mcp,
    /// Validate devstack.toml and print the resolved plan
    #[command(after_help = examples::CHECK)]
    Check,
    /// Print the JSON Schema of devstack.toml, for completion and checks in editors
    #[command(after_help = examples::SCHEMA)]
    Schema,
    /// Print the shell script that completes devstack's commands and the services of the stack here
    #[command(after_help = examples::COMPLETIONS)]
    Completions {
        #[arg(value_parser = complete::SHELLS)]
        shell: String,
    },
    /// Start headless; exit 0 once every service is ready, 1 as soon as one fails
    #[command(after_help = examples::CI)]
    Ci {
        /// Services to bring up (default: every service with autostart)
        #[arg(add = ArgValueCandidates::new(complete::services))]
        services: Vec<String>,
        /// Give up after this long
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
        /// Print only devstack's own lines and, for a failure, the service's last lines
        #[arg(short, long)]
        quiet: bool,
        /// No colours (also: the NO_COLOR variable)
        #[arg(long)]
        no_color: bool,
    },
    /// Print devstack's manual page (roff, generated from this help), or one command's
    #[command(hide = true, after_help = examples::MAN)]
    Man {
        /// The command whose page to print (default: devstack's, which lists every command)
        command: Option<String>,
    },
    /// Start the stack, wait until it is ready, run CMD, stop the stack; exit with CMD's status
    #[command(after_help = examples::RUN)]
    Run {
        /// Services to bring up (default: every service with autostart)
        #[arg(add = ArgValueCandidates::new(complete::services))]
        services: Vec<String>,
        /// Give up waiting for readiness after this long
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
        /// Print only devstack's own lines and, for a failure, the service's last lines (CMD's
        /// output is its own)
        #[arg(short, long)]
        quiet: bool,
        /// No colours (also: the NO_COLOR variable)
        #[arg(long)]
        no_color: bool,
        /// Set the faults of this scenario of devstack.toml (`[faults.NAME]`) once the stack is
        /// ready, before CMD starts (may repeat); they end with the stack
        #[arg(long = "faults", value_name = "NAME", add = ArgValueCandidates::new(complete::scenarios))]
        faults: Vec<String>,
        /// The command, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
}

/// clap's own suggestion misses a swapped pair of letters in a short command (`rnu`): the
/// config's typo finder is asked when clap has none.
pub(super) fn suggest_subcommand(mut e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand || e.get(ContextKind::SuggestedSubcommand).is_some()
    {
        return e;
    }
    let Some(ContextValue::String(typed)) = e.get(ContextKind::InvalidSubcommand) else {
        return e;
    };
    let cmd = Cli::command();
    let names = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name());
    if let Some(name) = config::diag::did_you_mean(typed, names) {
        let name = name.to_string();
        e.insert(
            ContextKind::SuggestedSubcommand,
            ContextValue::Strings(vec![name]),
        );
    }
    e
}

/// `devstack man [COMMAND]`: the manual page of devstack, or of one of its commands (as
/// `devstack-up(1)`), rendered by clap_mangen from the same definitions as `--help`.
pub(super) fn man(command: Option<&str>) -> ExitCode {
    let mut cli = Cli::command();
    // Global flags reach each command's page.
    cli.build();
    let page = match command {
        None => cli,
        Some(name) => match cli.find_subcommand(name).filter(|c| !c.is_hide_set()) {
            Some(sub) => sub.clone().version(env!("CARGO_PKG_VERSION")),
            None => {
                let names: Vec<&str> = cli
                    .get_subcommands()
                    .filter(|c| !c.is_hide_set() && c.get_name() != "help")
                    .map(|c| c.get_name())
                    .collect();
                note(&format!(
                    "no command `{name}`; commands are: {}",
                    names.join(", ")
                ));
                return ExitCode::from(2);
            }
        },
    };
    let mut roff = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page).render(&mut roff) {
        note(&format!("cannot render the manual page: {e}"));
        return ExitCode::FAILURE;
    }
    use std::io::Write;
    std::io::stdout()
        .lock()
        .write_all(&roff)
        .or_say("`man | head` closes the pipe early: not worth a panic");
    ExitCode::SUCCESS
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 90s or 5m)"))
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    /// Every command's `--help` ends with examples; a command added without them fails here.
    #[test]
    fn every_command_has_examples() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let has = command
                .get_after_help()
                .is_some_and(|h| h.to_string().starts_with("Examples:\n  "));
            if !has {
                missing.push(path.to_string());
            }
            for sub in command.get_subcommands() {
                // clap's own `help` subcommand has no examples to give.
                if sub.get_name() != "help" {
                    check(sub, &format!("{path} {}", sub.get_name()), missing);
                }
            }
        }
        let mut command = Cli::command();
        command.build();
        let mut missing = Vec::new();
        check(&command, "devstack", &mut missing);
        assert!(
            missing.is_empty(),
            "no Examples: block in --help of {missing:?}"
        );
    }

    /// Each example that starts with `devstack` parses (up to a pipe, `&&`, a redirection or a comment), so
    /// examples follow renamed commands and flags.
    #[test]
    fn the_examples_parse() {
        fn examples(command: &clap::Command, out: &mut Vec<String>) {
            if let Some(help) = command.get_after_help() {
                out.extend(help.to_string().lines().map(str::to_string));
            }
            command.get_subcommands().for_each(|s| examples(s, out));
        }
        let mut lines = Vec::new();
        examples(&Cli::command(), &mut lines);
        let mut parsed = 0;
        for line in &lines {
            let Some(command) = line.trim().strip_prefix("devstack ") else {
                continue;
            };
            let args = std::iter::once("devstack".to_string()).chain(shell_words(command));
            if let Err(e) = Cli::try_parse_from(args)
                && e.kind() != clap::error::ErrorKind::DisplayHelp
            {
                panic!("`{line}` does not parse: {e}");
            }
            parsed += 1;
        }
        assert!(parsed > 30, "{parsed}");
    }

    /// The words of a shell line up to its first `#`, `|`, `&`, `>` or `<` outside quotes
    /// (`'orders->users'` is one word), without their quotes.
    fn shell_words(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quote) = (Vec::new(), None::<String>, None);
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.get_or_insert_default().push(c),
                (None, '\'' | '"') => {
                    quote = Some(c);
                    word.get_or_insert_default();
                }
                (None, '#' | '|' | '&' | '>' | '<') => break,
                (None, c) if c.is_whitespace() => words.extend(word.take()),
                (None, c) => word.get_or_insert_default().push(c),
            }
        }
        words.extend(word);
        words
    }

    #[test]
    fn an_example_s_quoted_edge_is_one_word() {
        assert_eq!(
            shell_words("fault add 'orders->users' latency=1s | jq"),
            ["fault", "add", "orders->users", "latency=1s"]
        );
        assert_eq!(shell_words("logs -n 5 # x"), ["logs", "-n", "5"]);
    }
}

/// `devstack traffic show|curl|export`: inside the requests the proxy kept.
#[derive(Debug, Subcommand)]
pub enum Inside {
    /// One request the proxy kept (its #ID in `traffic -f` and the dashboard's tail): heads,
    /// bodies (the first 64 KiB of each; secrets redacted), timings
    #[command(after_help = examples::TRAFFIC_SHOW)]
    Show {
        /// The request's number
        id: u64,
    },
    /// A curl command line that sends the request again (a redacted field is left as a shell
    /// variable to set: "Authorization: $AUTHORIZATION")
    #[command(after_help = examples::TRAFFIC_CURL)]
    Curl {
        /// The request's number
        id: u64,
    },
    /// Send a kept request again through the proxy, as its caller would (recorded as
    /// `replay → SERVICE`), and show the answer beside the original's
    #[command(after_help = examples::TRAFFIC_REPLAY)]
    Replay {
        /// The request's number
        id: u64,
        /// Edit the request in $EDITOR first (a field left `…redacted…` keeps its value)
        #[arg(long)]
        edit: bool,
    },
    /// The kept requests as a HAR 1.2 file (browsers' developer tools and HAR viewers open it)
    #[command(after_help = examples::TRAFFIC_EXPORT)]
    Export {
        /// The file to write (`-` for standard output)
        #[arg(long, value_name = "FILE")]
        har: PathBuf,
        /// Only these services' requests (every service's when none is named)
        services: Vec<String>,
    },
}
