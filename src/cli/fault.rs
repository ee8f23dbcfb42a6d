//! `devstack fault add|ls|rm|clear|apply`: the faults set on the running stack's edges, through
//! the control socket's `fault_add`, `faults`, `fault_rm`, `fault_clear` and `fault_apply` (the
//! stack reads a fault's words, so every client gets the same errors; `apply` sets a scenario of
//! its `devstack.toml`; `scenarios` and `set_on` serve `run`/`up --faults`, in `stack.rs`). The
//! lines each prints are the MCP tools' answers too (`mcp/mod.rs`).

use super::remote::{Running, out, table_lines};
use super::{complete, examples};
use clap::Subcommand;
use clap_complete::ArgValueCandidates;
use devstack::config::Config;
use devstack::control::client::{Client, Error};
use devstack::control::wire;
use devstack::logs::LogHub;
use devstack::traffic::fault::Fault;
use std::process::ExitCode;

/// What `ls` says when no fault is set.
pub const NO_FAULTS: &str = "no fault is set";

/// `devstack fault …`.
#[derive(Debug, Subcommand)]
pub enum FaultCmd {
    /// Set a fault: on an edge (`'orders->users'`, quoted for the shell), a service (`users`:
    /// every caller) or `'external->users'`; an effect, then triggers. It acts until it is
    /// removed, its `first` or `for` runs out, or the stack stops
    #[command(after_help = examples::FAULT_ADD)]
    Add {
        /// `caller->callee`, `SERVICE` (every caller) or `external->SERVICE`
        #[arg(add = ArgValueCandidates::new(complete::services))]
        edge: String,
        /// `latency=200ms` (with `jitter=50ms`), `error=503` (with `body=TEXT`), `reset`,
        /// `timeout`, `bandwidth=100KB` (per second), `cut` (new connections reset) or
        /// `slow_close=2s`
        effect: String,
        /// When it acts (all must hold): `rate=0.3`, `first=3`, `for=30s`, `method=GET`,
        /// `path=/api`
        triggers: Vec<String>,
    },
    /// The faults set: number, words, how many requests each touched, and whether it ended
    #[command(after_help = examples::FAULT_LS)]
    Ls {
        /// Print them as JSON (`{"faults":[...]}`, each as the socket's `faults` answer has it)
        #[arg(long)]
        json: bool,
    },
    /// Remove a fault by its number (as `fault ls` shows it)
    #[command(after_help = examples::FAULT_RM)]
    Rm {
        /// The fault's number
        id: u64,
    },
    /// Remove every fault
    #[command(after_help = examples::FAULT_CLEAR)]
    Clear,
    /// Set every fault of a scenario declared in devstack.toml (`[faults.NAME]`); they act
    /// until removed (`fault rm`, `fault clear`) or the stack stops
    #[command(after_help = examples::FAULT_APPLY)]
    Apply {
        /// The scenario's name
        #[arg(add = ArgValueCandidates::new(complete::scenarios))]
        name: String,
    },
}

pub fn fault(mut stack: Running, cmd: FaultCmd) -> ExitCode {
    let said = stack.ask(|c| match cmd {
        FaultCmd::Add {
            edge,
            effect,
            triggers,
        } => {
            let words: Vec<String> = [edge, effect].into_iter().chain(triggers).collect();
            // Quoted as a shell would, so a `body=` with spaces stays one word.
            let line = shlex::try_join(words.iter().map(String::as_str)).unwrap_or_default();
            add(c, &line).map(|line| vec![line])
        }
        FaultCmd::Ls { json: true } => c.faults().map(|faults| vec![json(&faults)]),
        FaultCmd::Ls { json: false } => list(c),
        FaultCmd::Rm { id } => remove(c, id).map(|line| vec![line]),
        FaultCmd::Clear => clear(c).map(|line| vec![line]),
        FaultCmd::Apply { name } => apply(c, &name),
    });
    match said {
        Ok(lines) => {
            lines.iter().for_each(|line| out(line));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Set the fault `words` say: `fault 1: orders->users latency=200ms`.
pub fn add(client: &mut Client, words: &str) -> Result<String, Error> {
    client.fault_add(words).map(|set| said(&set))
}

/// Set every fault of the scenario `name`: a line for each, as `add` says it.
pub fn apply(client: &mut Client, name: &str) -> Result<Vec<String>, Error> {
    let set = client.fault_apply(name)?;
    Ok(set.iter().map(said).collect())
}

/// A fault as set: `fault 1: orders->users latency=200ms`.
fn said(set: &wire::Fault) -> String {
    format!("fault {}: {}", set.id, set.text)
}

/// The faults set, as a table (ID, FAULT, TOUCHED), or that none is.
pub fn list(client: &mut Client) -> Result<Vec<String>, Error> {
    let faults = client.faults()?;
    if faults.is_empty() {
        return Ok(vec![NO_FAULTS.to_string()]);
    }
    let mut rows = vec![["ID", "FAULT", "TOUCHED"].map(String::from)];
    for f in &faults {
        let touched = match f.spent {
            true => format!("{} (spent)", f.touched),
            false => f.touched.to_string(),
        };
        rows.push([f.id.to_string(), f.text.clone(), touched]);
    }
    Ok(table_lines(&rows))
}

/// Remove fault `id`.
pub fn remove(client: &mut Client, id: u64) -> Result<String, Error> {
    client.fault_rm(id)?;
    Ok(format!("fault {id} removed"))
}

/// Remove every fault: how many were.
pub fn clear(client: &mut Client) -> Result<String, Error> {
    match client.fault_clear()? {
        0 => Ok(format!("{NO_FAULTS}: nothing removed")),
        n => Ok(format!("{} removed", devstack::format::plural(n, "fault"))),
    }
}

fn json(faults: &[wire::Fault]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({ "faults": faults })).expect("JSON")
}

/// Set `faults` on the stack's proxy, each said in its callee's log as `devstack fault add`
/// says it (`[devstack] fault 1: users latency=2s`): the headless lines and the dashboard show it.
pub fn set_on(stats: &devstack::traffic::Stats, faults: &[Fault], cfg: &Config, logs: &LogHub) {
    for fault in faults {
        let id = stats.faults().add(fault.clone());
        if let Some(callee) = cfg.id_of(&fault.scope.callee) {
            logs.system(callee, format!("fault {id}: {fault}"));
        }
    }
}

/// The faults of the scenarios named (`--faults NAME`), or the error of an unknown name.
pub fn scenarios(cfg: &Config, names: &[String]) -> Result<Vec<Fault>, ExitCode> {
    cfg.faults.all(names).map_err(|e| {
        super::to_stderr(&format!("error: {e}"));
        ExitCode::from(2)
    })
}
