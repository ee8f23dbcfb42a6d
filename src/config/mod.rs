//! `devstack.toml`: finding and reading it, and the resolved `Config` the rest of devstack reads.
//!
//! The text is parsed into the file's raw types with their spans (`raw.rs`, whence also the JSON
//! Schema of `devstack schema`), then checked, interpolated (`interp.rs`) and resolved
//! (`resolve/`) into a `Config`; every problem is a `Diagnostic` with its file, line and column
//! (`diag.rs`). `urls.rs` derives each service's `<NAME>_URL`, `plan.rs` prints the plan,
//! `scenarios.rs` holds the fault scenarios (`[faults.NAME]`), and `import/` writes a
//! `devstack.toml` from other formats.

pub mod capture;
pub mod container;
pub mod diag;
mod ids;
pub mod import;
mod interp;
mod plan;
pub mod protos;
mod raw;
pub mod remote;
mod resolve;
pub mod scenarios;
mod urls;

pub use diag::{ConfigErrors, Diagnostic};
pub use ids::{ServiceId, Services};
pub use plan::describe;
pub use raw::{CommandLine, Condition, Protocol, Restart, Rollout, schema};

use diag::did_you_mean;
use nix::sys::signal::Signal;
use raw::RawFile;
use resolve::Resolver;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FILE_NAME: &str = "devstack.toml";
/// The variable every service's processes carry, naming the service (devstack tells whose an
/// escaped process or a port's holder is by it).
pub const SERVICE_VAR: &str = "DEVSTACK_SERVICE";
/// The variable every service's processes carry, naming the stack (`Config::stack_id`): the
/// next run finds by it what a killed run left behind, even what it never got to record.
pub const STACK_VAR: &str = "DEVSTACK_STACK";
/// What the traffic views call callers that are not services (`traffic::Caller`).
pub(crate) const RESERVED_NAMES: [&str; 3] = ["external", "unknown", "replay"];

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    /// The folder holding `devstack.toml`; relative paths and `.devstack/` live here.
    pub root: PathBuf,
    /// What every service's processes carry in `STACK_VAR`: `root`, canonical.
    pub stack_id: String,
    pub name: String,
    pub debounce: Duration,
    /// Log lines kept in memory per service (`[stack] scrollback`).
    pub scrollback: usize,
    /// How much the proxy's store of exchanges holds (`[stack.capture]`).
    pub capture: capture::Bounds,
    /// Every `<NAME>_URL` as the services see it (the user's value where they set one in
    /// `env_file` or `[env]`), but none set in devstack's own environment.
    pub urls: Vec<(String, String)>,
    /// Services in file order, each read by its `ServiceId` (as `Dep::service` names one).
    pub services: Services<Service>,
    /// A start order that respects every dependency (file order among equals).
    pub order: Vec<ServiceId>,
    /// The fault scenarios (`[faults.NAME]`), set only when asked for by name.
    pub faults: scenarios::Scenarios,
    /// The container engine, when a service runs an image (and one was found).
    pub container_engine: Option<String>,
}

impl Config {
    /// The service called `name`.
    pub fn id_of(&self, name: &str) -> Option<ServiceId> {
        self.services.find(|s| s.name == name)
    }

    /// Each service's name.
    pub fn names(&self) -> Services<String> {
        self.services.map(|s| s.name.clone())
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub build: Option<CommandLine>,
    pub run: Option<CommandLine>,
    pub cwd: PathBuf,
    /// The public port: where everyone reaches the service (through the proxy, when `proxy`).
    pub port: Option<u16>,
    /// devstack listens on `port` and forwards to `private_port`.
    pub proxy: bool,
    /// How the proxy reads this service's traffic.
    pub protocol: Protocol,
    /// The port the service's process listens on when proxied, picked when the config is
    /// loaded to run (`load_to_run`) and given to it in `PORT`; None otherwise.
    pub private_port: Option<u16>,
    /// Variables added to the inherited environment, later entries winning.
    pub env: Vec<(String, String)>,
    pub deps: Vec<Dep>,
    pub watch: Vec<String>,
    pub ignore: Vec<String>,
    pub restart: Restart,
    pub autostart: bool,
    pub stop_signal: Signal,
    pub grace: Duration,
    /// How a rebuild or restart replaces its process, as the file says (or by default); run
    /// blue-green when it has a `twin` (a second private port was picked: `blue_green`).
    pub rollout: Rollout,
    /// How long an old process drains after a blue-green switch, at most.
    pub drain: Duration,
    /// A blue-green service's second way to start (`Slot::B`): its own private port, with
    /// the `PORT`, commands and probe that say it.
    pub twin: Option<Box<Twin>>,
    pub health: Option<Health>,
    /// What the proxy keeps of its exchanges (`capture`, with `[stack.capture]`'s defaults).
    pub capture: capture::Capture,
    /// The schemas its gRPC messages are shown with (`proto`, with `[stack.capture]`'s).
    pub protos: Option<prost_reflect::DescriptorPool>,
    /// Run from an image (`image`): its `run` and `build` are the engine's (`container.rs`).
    pub container: Option<container::Container>,
    /// Served elsewhere (`url`): the proxy forwards to it when the service is remote (always,
    /// without a `run`; after `devstack use NAME remote` with one).
    pub remote: Option<remote::Remote>,
}

impl Service {
    /// The value a variable has in the service's environment additions (the last one wins).
    pub fn env_var(&self, name: &str) -> Option<&str> {
        last_value(&self.env, name)
    }

    /// The port the service's own process listens on (its private port when proxied): what is
    /// checked free before it starts and what its probes reach.
    pub fn listen_port(&self) -> Option<u16> {
        self.private_port.or(self.port)
    }

    /// Proxied: devstack listens on `port` and forwards to `private_port`.
    pub fn proxied(&self) -> bool {
        self.private_port.is_some()
    }

    /// A service with a build but nothing to run (here or elsewhere): it is done once the
    /// build succeeds.
    pub fn is_task(&self) -> bool {
        self.run.is_none() && self.remote.is_none()
    }

    /// Why `devstack use` can't serve it by its remote end (`remote`) or by its local process,
    /// if it can't: it lacks that end.
    pub fn cannot_use(&self, remote: bool) -> Option<&'static str> {
        match remote {
            true if self.remote.is_none() => Some("has no `url`: there is no remote end to use"),
            false if self.run.is_none() => {
                Some("has no `run`: it is served only by its remote end")
            }
            _ => None,
        }
    }

    /// Served only elsewhere: a `url` and nothing to run here.
    pub fn remote_only(&self) -> bool {
        self.run.is_none() && self.remote.is_some()
    }

    /// Whether a rebuild or restart starts the new process beside the old one.
    pub fn blue_green(&self) -> bool {
        self.twin.is_some()
    }

    /// How a run process in `slot` starts: its port (checked free, probed, in `PORT`), its
    /// environment, command and probe. A service without a twin has only `Slot::A`.
    pub fn slot(&self, slot: Slot) -> SlotSpec<'_> {
        match (slot, &self.twin) {
            (Slot::B, Some(t)) => SlotSpec {
                port: Some(t.private_port),
                env: &t.env,
                run: t.run.as_ref(),
                health: t.health.as_ref(),
            },
            _ => SlotSpec {
                port: self.listen_port(),
                env: &self.env,
                run: self.run.as_ref(),
                health: self.health.as_ref(),
            },
        }
    }
}

/// Which of a blue-green service's two ways to start (`Service::slot`) a run process used: the
/// next one uses the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Slot {
    #[default]
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

/// A blue-green service's second private port, and what says it.
#[derive(Debug, Clone)]
pub struct Twin {
    pub private_port: u16,
    pub env: Vec<(String, String)>,
    pub run: Option<CommandLine>,
    pub health: Option<Health>,
}

/// What a run process in one slot is started with.
pub struct SlotSpec<'a> {
    pub port: Option<u16>,
    pub env: &'a [(String, String)],
    pub run: Option<&'a CommandLine>,
    pub health: Option<&'a Health>,
}

#[derive(Debug, Clone, Copy)]
pub struct Dep {
    pub service: ServiceId,
    pub condition: Condition,
    /// Restart the dependent when this dependency is rebuilt.
    pub restart: bool,
}

#[derive(Debug, Clone)]
pub struct Health {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

#[derive(Debug, Clone)]
pub enum Probe {
    Http(String),
    Tcp,
    Cmd(String),
    Log(regex::Regex),
}

/// Find `devstack.toml` in `start` or the nearest parent.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|candidate| candidate.is_file())
}

/// Read, parse and validate a config file.
pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
    let (file, src) = read(file)?;
    parse(&file, &src, &|name| std::env::var(name).ok())
}

/// `load`, for running the stack: every proxied service gets a private port from
/// `private_port` (`routes::PrivatePorts`), which its `PORT` (and `${PORT}` in its commands)
/// says; its public `port` is where devstack listens.
pub fn load_to_run(
    file: &Path,
    private_port: &dyn Fn() -> Option<u16>,
) -> Result<Config, ConfigErrors> {
    let (file, src) = read(file)?;
    parse_with(&file, &src, &|name| std::env::var(name).ok(), private_port)
}

fn read(file: &Path) -> Result<(PathBuf, String), ConfigErrors> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let src = std::fs::read_to_string(&file).map_err(|e| {
        ConfigErrors(vec![Diagnostic::new(
            &file,
            format!("cannot read {}: {e}", file.display()),
        )])
    })?;
    Ok((file, src))
}

/// Parse and validate config text; `process_env` answers variables of devstack's own environment.
pub fn parse(
    file: &Path,
    src: &str,
    process_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    parse_with(file, src, process_env, &|| None)
}

/// `parse`, where `private_port` picks each proxied service's private port (None: the service
/// is told its public port, as when nothing runs it).
pub fn parse_with(
    file: &Path,
    src: &str,
    process_env: &dyn Fn(&str) -> Option<String>,
    private_port: &dyn Fn() -> Option<u16>,
) -> Result<Config, ConfigErrors> {
    let raw: RawFile =
        toml::from_str(src).map_err(|e| ConfigErrors(vec![syntax_error(file, src, &e)]))?;
    Resolver::new(file, src, process_env, private_port).resolve(raw)
}

fn syntax_error(file: &Path, src: &str, e: &toml::de::Error) -> Diagnostic {
    let message = e.message().trim().to_string();
    let mut diag = match e.span() {
        Some(span) => Diagnostic::at(file, src, span, message.clone()),
        None => Diagnostic::new(file, message.clone()),
    };
    // serde says: unknown field `bulid`, expected one of `build`, `run`, ...
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let names: Vec<&str> = rest.split('`').step_by(2).collect();
        if let Some((unknown, candidates)) = names.split_first() {
            diag.message = format!("unknown key `{unknown}`");
            diag.help = Some(match did_you_mean(unknown, candidates.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("valid keys here: {}", candidates.join(", ")),
            });
        }
    }
    diag
}

impl Config {
    /// `<NAME>_URL` for every service with a port, as the services see it.
    pub fn url_env(&self) -> Vec<(String, String)> {
        self.urls.clone()
    }
}

/// The last value of `name` in an ordered list of variables.
pub(crate) fn last_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(src: &str) -> Result<Config, ConfigErrors> {
        parse(Path::new("/tmp/devstack.toml"), src, &|n| {
            (n == "HOME").then(|| "/home/me".into())
        })
    }

    #[test]
    fn start_order_follows_dependencies_then_file_order() {
        let cfg = parse_str(
            r#"
            [services.web]
            run = "w"
            depends_on = ["api"]
            [services.api]
            run = "a"
            depends_on = { db = "started" }
            [services.db]
            run = "d"
            "#,
        )
        .unwrap();
        let names: Vec<&str> = cfg
            .order
            .iter()
            .map(|&i| cfg.services[i].name.as_str())
            .collect();
        assert_eq!(names, ["db", "api", "web"]);
    }

    #[test]
    fn a_proxied_service_rolls_out_blue_green_with_a_twin_unless_it_runs_a_server_that_runs_alone()
    {
        let next = std::cell::Cell::new(40000);
        let pick = || {
            next.set(next.get() + 1);
            Some(next.get())
        };
        let cfg = parse_with(
            Path::new("/tmp/devstack.toml"),
            r#"
            [services.api]
            run = "api --port ${PORT}"
            port = 8080
            [services.cache]
            run = "exec /usr/bin/redis-server --port $PORT"
            port = 6379
            [services.db]
            run = "postgres -p $PORT"
            port = 5432
            rollout = "blue-green"
            drain = "5s"
            [services.fixed]
            run = "f"
            port = 9000
            proxy = false
            "#,
            &|_| None,
            &pick,
        )
        .unwrap();
        let svc = |n: &str| &cfg.services[cfg.id_of(n).unwrap()];
        let api = svc("api");
        assert_eq!(
            (api.rollout, api.drain),
            (Rollout::BlueGreen, Duration::from_secs(30))
        );
        let (a, b) = (api.slot(Slot::A), api.slot(Slot::B));
        assert_eq!((a.port, b.port), (Some(40001), Some(40002)));
        assert_eq!(a.run.unwrap().to_string(), "api --port 40001");
        assert_eq!(b.run.unwrap().to_string(), "api --port 40002");
        assert_eq!(last_value(b.env, "PORT"), Some("40002"));
        // A server known to hold its files alone restarts, unless the file says otherwise.
        assert_eq!(svc("cache").rollout, Rollout::Restart);
        assert!(!svc("cache").blue_green());
        assert!(svc("db").blue_green() && svc("db").drain == Duration::from_secs(5));
        assert!(!svc("fixed").blue_green());
        // Without private ports (`devstack check`), what the file says, and no twin.
        let plain = parse_str("[services.api]\nrun = \"a\"\nport = 8080\n").unwrap();
        let api = &plain.services[plain.id_of("api").unwrap()];
        assert_eq!((api.rollout, api.blue_green()), (Rollout::BlueGreen, false));
    }

    #[test]
    fn a_proxied_service_is_told_its_private_port_never_another_service_s() {
        // The picker offers the port `db` declares first: it is skipped.
        let offers = std::cell::RefCell::new(vec![9001, 5432]);
        let pick = || offers.borrow_mut().pop();
        let cfg = parse_with(
            Path::new("/tmp/devstack.toml"),
            r#"
            [services.db]
            run = "x"
            port = 5432
            proxy = false
            [services.api]
            run = "serve --port ${PORT}"
            port = 8080
            "#,
            &|_| None,
            &pick,
        )
        .unwrap();
        let (db, api) = (&cfg.services[ServiceId(0)], &cfg.services[ServiceId(1)]);
        assert_eq!((db.private_port, db.env_var("PORT")), (None, Some("5432")));
        assert_eq!(api.private_port, Some(9001));
        assert_eq!(api.listen_port(), Some(9001));
        assert_eq!(api.port, Some(8080));
        assert_eq!(api.env_var("PORT"), Some("9001"));
        assert_eq!(
            api.run,
            Some(CommandLine::Shell("serve --port 9001".into()))
        );
        // Callers are sent to the public port.
        assert_eq!(api.env_var("API_URL"), Some("http://127.0.0.1:8080"));
    }

    #[test]
    fn injects_port_service_name_and_urls() {
        let cfg = parse_str(
            r#"
            [services.user-db]
            run = "x"
            port = 5432
            [services.api]
            run = "y --db ${services.user-db.port} --home ${HOME}"
            port = 8080
            env = { DB = "pg://localhost:${services.user-db.port}" }
            "#,
        )
        .unwrap();
        let api = &cfg.services[ServiceId(1)];
        let get = |k: &str| api.env_var(k);
        assert_eq!(get("PORT"), Some("8080"));
        assert_eq!(get("DEVSTACK_SERVICE"), Some("api"));
        assert_eq!(get("USER_DB_URL"), Some("http://127.0.0.1:5432"));
        assert_eq!(get("DB"), Some("pg://localhost:5432"));
        assert_eq!(
            api.run,
            Some(CommandLine::Shell("y --db 5432 --home /home/me".into()))
        );
    }

    #[test]
    fn a_task_dependency_defaults_to_completed() {
        let cfg = parse_str("[services.migrate]\nbuild = \"m\"\n[services.api]\nrun = \"a\"\ndepends_on = [\"migrate\"]\n").unwrap();
        assert_eq!(
            cfg.services[ServiceId(1)].deps[0].condition,
            Condition::Completed
        );
        assert!(cfg.services[ServiceId(0)].is_task());
    }

    #[test]
    fn env_file_then_env_table_then_service_env_win_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "A=from-file\nB=from-file\n").unwrap();
        let src = "[stack]\nenv_file = \".env\"\n[env]\nB = \"table ${A}\"\n[services.s]\nrun = \"x\"\nenv = { C = \"${B}!\" }\n";
        let cfg = parse(&dir.path().join("devstack.toml"), src, &|_| None).unwrap();
        let get = |k: &str| cfg.services[ServiceId(0)].env_var(k);
        assert_eq!(get("A"), Some("from-file"));
        assert_eq!(get("B"), Some("table from-file"));
        assert_eq!(get("C"), Some("table from-file!"));
    }

    #[test]
    fn env_entries_resolve_in_the_order_they_are_written() {
        let cfg = parse_str("[env]\nZ = \"1\"\nA = \"${Z}2\"\n[services.s]\nrun = \"x\"\nenv = { ZZ = \"3\", AA = \"${ZZ}4\" }\n").unwrap();
        let get = |k: &str| cfg.services[ServiceId(0)].env_var(k);
        assert_eq!((get("A"), get("AA")), (Some("12"), Some("34")));
    }

    #[test]
    fn undefined_variable_points_at_the_reference() {
        let err = parse_str("[services.a]\nrun = \"echo ${NOPE}\"\n").unwrap_err();
        let loc = err.0[0].location.as_ref().unwrap();
        assert_eq!((loc.line, loc.col), (2, 13));
    }
}
