//! Shell completion (clap_complete's dynamic completion): `devstack completions SHELL` prints a
//! script that asks devstack itself, through `DEVSTACK_COMPLETE`, what to complete; service names
//! come from the devstack.toml the line names (`-f`), or else of the current folder (or the nearest
//! parent).

use clap_complete::CompletionCandidate;
use clap_complete::env::Shells;
use devstack::config;
use std::io::Write;
use std::process::ExitCode;

/// The variable the scripts set when they ask devstack for completions.
pub const VAR: &str = "DEVSTACK_COMPLETE";

/// The shells `completions` writes a script for.
pub const SHELLS: [&str; 3] = ["bash", "zsh", "fish"];

/// Answer a completion request and exit, when the shell's script made this run one.
pub fn answer(command: fn() -> clap::Command) {
    clap_complete::CompleteEnv::with_factory(command)
        .var(VAR)
        .complete();
}

/// Print the script that registers devstack's completion in `shell`.
pub fn script(shell: &str) -> ExitCode {
    let shells = Shells::builtins();
    let completer = shells
        .completer(shell)
        .expect("clap only lets a known shell through");
    // The script calls this binary as it was called here: by name (found on PATH), or by its
    // absolute path.
    let arg0 = std::env::args_os().next().unwrap_or_default();
    let mut me = std::path::PathBuf::from(arg0);
    if me.components().count() > 1 {
        me = std::path::absolute(&me).unwrap_or(me);
    }
    let mut out = Vec::new();
    let written =
        completer.write_registration(VAR, "devstack", "devstack", &me.to_string_lossy(), &mut out);
    match written.and_then(|()| std::io::stdout().lock().write_all(&out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The service names of the devstack.toml the command line names (`-f PATH`), or else of the one
/// here, read leniently: a file the parser would refuse still gives the names it has, and
/// nothing is ever printed about it.
pub fn services() -> Vec<CompletionCandidate> {
    names_in("services")
}

/// The fault scenarios' names (`[faults.NAME]`), read as `services` reads the services'.
pub fn scenarios() -> Vec<CompletionCandidate> {
    names_in("faults")
}

/// The names of the tables under `[TABLE.…]` of the config the command line names, or here's.
fn names_in(table: &str) -> Vec<CompletionCandidate> {
    // The words being completed follow `--` in this run's arguments.
    let words: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    let file = match file_in(&words) {
        Some(f) => Some(f),
        None => std::env::current_dir().ok().and_then(|d| config::find(&d)),
    };
    let Some(file) = file else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Vec::new();
    };
    table_names(&text, table)
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// The config file a command line being completed names: `-f PATH`, `-fPATH`, `--file PATH` or
/// `--file=PATH` (after `logs` and `traffic`, `-f` is their --follow). A leading `~/` is the
/// home folder, as the shell would have expanded it on running the command.
fn file_in(words: &[String]) -> Option<std::path::PathBuf> {
    let mut follow_f = false;
    let mut found = None;
    let mut words = words.iter().skip(1);
    while let Some(w) = words.next() {
        let path = match w.as_str() {
            "logs" | "traffic" => {
                follow_f = true;
                continue;
            }
            "--file" => words.next().cloned(),
            "-f" if !follow_f => words.next().cloned(),
            _ => w
                .strip_prefix("--file=")
                .or_else(|| w.strip_prefix("-f").filter(|p| !follow_f && !p.is_empty()))
                .map(str::to_string),
        };
        if let Some(p) = path.filter(|p| !p.is_empty()) {
            found = Some(p);
        }
    }
    let found = found?;
    Some(match found.strip_prefix("~/") {
        Some(rest) => std::env::home_dir()?.join(rest),
        None => found.into(),
    })
}

/// The keys of `[services]`; when the file isn't TOML, the names of its `[services.NAME]` headers.
fn table_names(text: &str, table: &str) -> Vec<String> {
    if let Ok(parsed) = text.parse::<toml::Table>() {
        return match parsed.get(table) {
            Some(toml::Value::Table(names)) => names.keys().cloned().collect(),
            _ => Vec::new(),
        };
    }
    let prefix = format!("{table}.");
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix('[')?.trim_start();
            let name = rest.strip_prefix(prefix.as_str())?;
            let end = name.find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))?;
            (end > 0).then(|| name[..end].to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::{file_in, table_names};

    fn service_names(text: &str) -> Vec<String> {
        table_names(text, "services")
    }

    #[test]
    fn the_file_named_on_the_line() {
        let words = |s: &str| -> Vec<String> { s.split(' ').map(String::from).collect() };
        let file = |s: &str| file_in(&words(s)).map(|p| p.display().to_string());
        assert_eq!(file("devstack -f a.toml stop ").as_deref(), Some("a.toml"));
        assert_eq!(
            file("devstack stop --file=b.toml ").as_deref(),
            Some("b.toml")
        );
        assert_eq!(
            file("devstack --file c.toml up w").as_deref(),
            Some("c.toml")
        );
        assert_eq!(file("devstack -fd.toml up w").as_deref(), Some("d.toml"));
        assert_eq!(file("devstack logs -f ").as_deref(), None);
        assert_eq!(
            file("devstack logs --file e.toml -f ").as_deref(),
            Some("e.toml")
        );
        assert_eq!(file("devstack restart ").as_deref(), None);
    }

    #[test]
    fn names_from_a_valid_and_a_broken_file() {
        let valid = "[services.web]\nrun = \"x\"\n[services.db]\nrun = \"y\"\n[services.db.health]\ntcp = true\n";
        assert_eq!(service_names(valid), ["db", "web"]);
        let broken = "[services.web]\nrun = \"x\n[services.db.health]\n[ services.api ]\n";
        assert_eq!(service_names(broken), ["api", "db", "web"]);
        assert!(service_names("[stack]\nname = \"x\"").is_empty());
        let scenarios =
            "[services.web]\nrun = \"x\"\n[faults.slow-web]\nfaults = [\"web reset\"]\n";
        assert_eq!(table_names(scenarios, "faults"), ["slow-web"]);
        assert_eq!(
            table_names(&scenarios.replace("reset\"", "reset"), "faults"),
            ["slow-web"]
        );
    }
}
