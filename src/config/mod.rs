//! `devstack.toml`: finding it, parsing it with spans, validating and interpolating it into a `Config`.

pub mod diag;
pub mod import;
mod interp;
mod plan;
mod raw;
mod urls;

pub use diag::{ConfigErrors, Diagnostic};
pub use plan::describe;
pub use raw::{CommandLine, Condition, Protocol, Restart, schema};

use diag::did_you_mean;
use interp::interpolate;
use nix::sys::signal::Signal;
use raw::Spanned;
use raw::{Dur, EnvValue, RawFile, RawHealth, RawService};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
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
const RESERVED_NAMES: [&str; 2] = ["external", "unknown"];

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
    /// Every `<NAME>_URL` as the services see it (the user's value where they set one in
    /// `env_file` or `[env]`), but none set in devstack's own environment.
    pub urls: Vec<(String, String)>,
    /// Services in file order; `Dep::service` indexes into this.
    pub services: Vec<Service>,
    /// A start order that respects every dependency (file order among equals).
    pub order: Vec<usize>,
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
    pub health: Option<Health>,
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

    /// A service with a build but nothing to run: it is done once the build succeeds.
    pub fn is_task(&self) -> bool {
        self.run.is_none()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Dep {
    pub service: usize,
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
    Resolver {
        file,
        src,
        process_env,
        private_port,
        errors: Vec::new(),
    }
    .resolve(raw)
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

struct Resolver<'a> {
    file: &'a Path,
    src: &'a str,
    process_env: &'a dyn Fn(&str) -> Option<String>,
    private_port: &'a dyn Fn() -> Option<u16>,
    errors: Vec<Diagnostic>,
}

const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// A probe can't usefully run more often, or answer faster, than this.
const MIN_PROBE_TIME: Duration = Duration::from_millis(10);

impl Resolver<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) -> &mut Diagnostic {
        self.errors
            .push(Diagnostic::at(self.file, self.src, span, message));
        self.errors.last_mut().expect("just pushed")
    }

    /// Interpolate a spanned string, reporting an undefined variable at its own column.
    fn expand(
        &mut self,
        value: &Spanned<String>,
        lookup: &dyn Fn(&str) -> Result<String, String>,
    ) -> String {
        match interpolate(value.get_ref(), lookup) {
            Ok(s) => s,
            Err(e) => {
                let at = e.offset..e.offset + e.len;
                let span = diag::value_span(self.src, value.span(), value.get_ref(), at);
                self.error(span, e.message);
                value.get_ref().clone()
            }
        }
    }

    fn resolve(mut self, raw: RawFile) -> Result<Config, ConfigErrors> {
        let root = self
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        // The name is a label in the dashboard's header: nothing in it may drive the terminal.
        if let Some(n) = &raw.stack.name
            && diag::printable(n.get_ref()) != n.get_ref().as_str()
        {
            self.error(n.span(), "the stack's name has control characters")
                .help = Some("a name is a label: use printable characters".into());
        }
        let name = match &raw.stack.name {
            Some(n) => n.get_ref().clone(),
            None => root
                .file_name()
                .map(|n| diag::printable(&n.to_string_lossy()).into_owned())
                .unwrap_or_else(|| "stack".into()),
        };
        let stack_grace = raw.stack.grace.map_or(DEFAULT_GRACE, |d| d.0);
        let debounce = raw
            .stack
            .debounce
            .map_or(Duration::from_millis(200), |d| d.0);
        let scrollback = raw
            .stack
            .scrollback
            .as_ref()
            .map_or(10_000, |n| *n.get_ref());
        if let Some(n) = &raw.stack.scrollback
            && !(100..=10_000_000).contains(n.get_ref())
        {
            self.error(
                n.span(),
                "scrollback is lines kept per service: use 100 to 10000000",
            );
        }

        if raw.services.is_empty() {
            self.errors.push(
                Diagnostic::new(self.file, "no services: there is nothing to run").help(
                    "add a [services.NAME] table with `run = \"...\"` (a long-running process) or `build = \"...\"` (a one-shot task); see the README for an example",
                ),
            );
        }
        // Services in the order they are written.
        let mut raw_services: Vec<(Spanned<String>, RawService)> =
            raw.services.into_iter().collect();
        raw_services.sort_by_key(|(name, _)| name.span().start);
        let names: Vec<String> = raw_services
            .iter()
            .map(|(n, _)| n.get_ref().clone())
            .collect();
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let ports: Vec<Option<u16>> = raw_services
            .iter()
            .map(|(_, s)| s.port.as_ref().map(|p| p.get_ref().0))
            .collect();

        for (name, _) in &raw_services {
            let n = name.get_ref();
            if n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                self.error(
                    name.span(),
                    format!("invalid service name `{n}`: use letters, digits, `-` and `_`"),
                );
            } else if RESERVED_NAMES.contains(&n.as_str()) {
                self.error(
                    name.span(),
                    format!("`{n}` can't be a service's name: the traffic views use it for callers that are not services"),
                )
                .help = Some("rename the service".into());
            }
        }
        self.check_ports(&raw_services);

        let service_port = |name: &str| -> Option<Result<String, String>> {
            let rest = name.strip_prefix("services.")?;
            let Some((svc, field)) = rest.rsplit_once('.') else {
                return Some(Err(format!(
                    "`${{{name}}}`: write `${{services.NAME.port}}`"
                )));
            };
            Some(match (index.get(svc), field) {
                (Some(&i), "port") => ports[i]
                    .map(|p| p.to_string())
                    .ok_or_else(|| format!("service `{svc}` has no `port`")),
                (Some(_), other) => Err(format!(
                    "`${{services.{svc}.{other}}}`: only `port` can be read from a service"
                )),
                (None, _) => Err(unknown_service_message(svc, &names)),
            })
        };

        // The stack's environment: devstack's own, then env_file, then [env].
        let mut stack_env: Vec<(String, String)> = Vec::new();
        if let Some(env_file) = &raw.stack.env_file {
            let path = root.join(env_file.get_ref());
            match dotenvy::from_path_iter(&path) {
                Ok(iter) => {
                    for item in iter {
                        match item {
                            Ok(kv) => stack_env.push(kv),
                            Err(e) => {
                                self.error(
                                    env_file.span(),
                                    format!("cannot parse env_file {}: {e}", path.display()),
                                );
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    self.error(
                        env_file.span(),
                        format!("cannot read env_file {}: {e}", path.display()),
                    )
                    .help = Some("create the file, or remove `env_file`".into());
                }
            }
        }
        let lookup_in = |env: &[(String, String)], name: &str| -> Result<String, String> {
            if let Some(r) = service_port(name) {
                return r;
            }
            last_value(env, name)
                .map(str::to_string)
                .or_else(|| (self.process_env)(name))
                .ok_or_else(|| undefined_message(name))
        };
        for (key, value) in in_file_order(&raw.env) {
            let known = stack_env.clone();
            let v = self.expand(&value_string(value), &|n| lookup_in(&known, n));
            stack_env.push((key.get_ref().clone(), v));
        }

        let stack_id = root
            .canonicalize()
            .unwrap_or_else(|_| root.clone())
            .display()
            .to_string();
        let schemes: Vec<&'static str> = raw_services
            .iter()
            .map(|(name, raw)| {
                let protocol = raw.protocol.as_ref().map(|p| *p.get_ref());
                urls::scheme(
                    name.get_ref(),
                    raw.run.as_ref().map(|r| r.get_ref()),
                    protocol.unwrap_or_default(),
                )
            })
            .collect();
        // Derived, so what the user set under the same name wins: devstack's own environment
        // (which the services inherit) here, env_file and [env] by coming later in each list.
        let urls = urls::url_env(
            names
                .iter()
                .zip(&ports)
                .zip(&schemes)
                .map(|((n, p), s)| (n.as_str(), *p, *s)),
            |var| (self.process_env)(var).is_some(),
        );

        let mut services = Vec::with_capacity(raw_services.len());
        for (i, (name_span, raw)) in raw_services.iter().enumerate() {
            let name = name_span.get_ref().clone();
            // Derived URLs, the stack's environment, devstack's variables, then the service's own
            // env: later entries win, so the user's values win over the URLs.
            let mut env = urls.clone();
            env.extend(stack_env.iter().cloned());
            env.push((SERVICE_VAR.into(), name.clone()));
            env.push((STACK_VAR.into(), stack_id.clone()));
            let proxied = ports[i].is_some() && raw.proxy != Some(false);
            // Never a port another service declares (it is free now only because nothing
            // listens there yet).
            let private_port = if proxied {
                std::iter::repeat_with(|| (self.private_port)())
                    .take(16)
                    .find(|p| p.is_none_or(|p| !ports.contains(&Some(p))))
                    .flatten()
            } else {
                None
            };
            if let Some(p) = private_port.or(ports[i]) {
                env.push(("PORT".into(), p.to_string()));
            }
            for (key, value) in in_file_order(&raw.env) {
                let known = env.clone();
                let v = self.expand(&value_string(value), &|n| lookup_in(&known, n));
                env.push((key.get_ref().clone(), v));
            }
            let lookup = |n: &str| lookup_in(&env, n);

            let cwd = match &raw.cwd {
                Some(c) => {
                    let dir = root.join(self.expand(c, &lookup));
                    if !dir.is_dir() {
                        self.error(
                            c.span(),
                            format!("cwd `{}` is not a directory", dir.display()),
                        );
                    }
                    dir
                }
                None => root.clone(),
            };
            let build = raw.build.as_ref().map(|c| self.expand_command(c, &lookup));
            let run = raw.run.as_ref().map(|c| self.expand_command(c, &lookup));
            if build.is_none() && run.is_none() {
                self.error(name_span.span(), format!("service `{name}` has neither `run` nor `build`"))
                    .help = Some("add `run = \"...\"` (a long-running process) or `build = \"...\"` (a one-shot task)".into());
            }
            if let Some(protocol) = &raw.protocol
                && (ports[i].is_none() || raw.proxy == Some(false))
            {
                self.error(
                    protocol.span(),
                    "`protocol` says how the proxy reads the service's traffic, but this service is not proxied",
                )
                .help = Some("give the service a `port` (and leave `proxy` on), or remove `protocol`".into());
            }
            let health = raw
                .health
                .as_ref()
                .and_then(|h| self.health(h, ports[i], &lookup));
            services.push(Service {
                name,
                build,
                run,
                cwd,
                port: ports[i],
                proxy: raw.proxy.unwrap_or(true),
                protocol: raw
                    .protocol
                    .as_ref()
                    .map_or_else(Default::default, |p| *p.get_ref()),
                private_port,
                env,
                deps: Vec::new(),
                watch: raw.watch.iter().map(|w| w.get_ref().clone()).collect(),
                ignore: raw.ignore.iter().map(|w| w.get_ref().clone()).collect(),
                restart: raw.restart.unwrap_or_default(),
                autostart: raw.autostart.unwrap_or(true),
                stop_signal: raw.stop_signal.map_or(Signal::SIGTERM, |s| s.0),
                grace: raw.grace.map_or(stack_grace, |d| d.0),
                health,
            });
        }

        // Dependencies, after every service exists so conditions can look at their targets.
        let mut dep_spans: Vec<Vec<Range<usize>>> = vec![Vec::new(); services.len()];
        for (i, (name, raw)) in raw_services.iter().enumerate() {
            for dep in &raw.depends_on.0 {
                let target = dep.name.get_ref();
                let Some(&j) = index.get(target.as_str()) else {
                    self.error(dep.name.span(), unknown_service_message(target, &names));
                    continue;
                };
                if j == i {
                    self.error(
                        dep.name.span(),
                        format!("dependency cycle: {target} → {target}"),
                    );
                    continue;
                }
                let default = if services[j].is_task() {
                    Condition::Completed
                } else if services[j].health.is_some() {
                    Condition::Healthy
                } else {
                    Condition::Started
                };
                let condition = dep.condition.unwrap_or(default);
                if condition == Condition::Completed && !services[j].is_task() {
                    self.error(
                        dep.name.span(),
                        format!("`{target}` keeps running (it has `run`), so it never completes"),
                    )
                    .help = Some("wait for \"started\" or \"healthy\", or make it a one-shot task (only `build`)".into());
                }
                if condition == Condition::Healthy && services[j].health.is_none() {
                    self.error(
                        dep.name.span(),
                        format!("`{}` waits for `{target}` to be healthy, but `{target}` has no [services.{target}.health]", name.get_ref()),
                    )
                    .help = Some("add a health probe to it, or wait for \"started\"".into());
                }
                services[i].deps.push(Dep {
                    service: j,
                    condition,
                    restart: dep.restart,
                });
                dep_spans[i].push(dep.name.span());
            }
        }
        if let Some(cycle) = find_cycle(&services) {
            let path: Vec<&str> = cycle.iter().map(|&i| services[i].name.as_str()).collect();
            let (a, b) = (cycle[0], cycle[1]);
            let at = services[a]
                .deps
                .iter()
                .position(|d| d.service == b)
                .expect("edge of the cycle");
            self.error(
                dep_spans[a][at].clone(),
                format!("dependency cycle: {}", path.join(" → ")),
            );
        }

        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        let order = start_order(&services);
        Ok(Config {
            file: self.file.to_path_buf(),
            root,
            stack_id,
            urls: urls
                .into_iter()
                .map(|(k, v)| {
                    let v = last_value(&stack_env, &k).map_or(v, str::to_string);
                    (k, v)
                })
                .collect(),
            name,
            debounce,
            scrollback,
            services,
            order,
        })
    }

    fn check_ports(&mut self, services: &[(Spanned<String>, RawService)]) {
        let mut seen: BTreeMap<u16, &str> = BTreeMap::new();
        for (name, raw) in services {
            if let Some(port) = &raw.port {
                let p = port.get_ref().0;
                if let Some(first) = seen.get(&p) {
                    let msg = format!(
                        "port {p} is used by both `{first}` and `{}`",
                        name.get_ref()
                    );
                    self.error(port.span(), msg).help =
                        Some("give each service its own port".into());
                } else {
                    seen.insert(p, name.get_ref());
                }
            }
        }
    }

    fn expand_command(
        &mut self,
        cmd: &Spanned<CommandLine>,
        lookup: &dyn Fn(&str) -> Result<String, String>,
    ) -> CommandLine {
        // Offsets inside an array aren't tracked; the whole value is underlined there.
        match cmd.get_ref() {
            CommandLine::Shell(s) => {
                CommandLine::Shell(self.expand(&Spanned::new(cmd.span(), s.clone()), lookup))
            }
            CommandLine::Exec(argv) => CommandLine::Exec(
                argv.iter()
                    .map(|a| match interpolate(a, lookup) {
                        Ok(v) => v,
                        Err(e) => {
                            self.error(cmd.span(), e.message);
                            a.clone()
                        }
                    })
                    .collect(),
            ),
        }
    }

    fn health(
        &mut self,
        h: &Spanned<RawHealth>,
        port: Option<u16>,
        lookup: &dyn Fn(&str) -> Result<String, String>,
    ) -> Option<Health> {
        let raw = h.get_ref();
        let given = [
            raw.http.is_some(),
            raw.tcp.is_some(),
            raw.cmd.is_some(),
            raw.log.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            self.error(
                h.span(),
                "a health check needs exactly one of `http`, `tcp`, `cmd` or `log`",
            );
            return None;
        }
        let probe = if let Some(http) = &raw.http {
            let path = self.expand(http, lookup);
            if path.starts_with("https://") {
                self.error(
                    http.span(),
                    "https probes are not supported; probe the service's plain http port",
                );
            } else if !(path.starts_with('/') || path.starts_with("http://")) {
                self.error(
                    http.span(),
                    format!(
                        "`http = \"{path}\"`: write a path like \"/healthz\" or a full http:// URL"
                    ),
                );
            } else if path.starts_with('/') && port.is_none() {
                self.error(
                    http.span(),
                    "an http probe by path needs the service to have a `port`",
                );
            }
            Probe::Http(path)
        } else if let Some(tcp) = &raw.tcp {
            if !tcp.get_ref() {
                self.error(
                    tcp.span(),
                    "`tcp = false` checks nothing; remove [health] or set `tcp = true`",
                );
            } else if port.is_none() {
                self.error(tcp.span(), "a tcp probe needs the service to have a `port`");
            }
            Probe::Tcp
        } else if let Some(cmd) = &raw.cmd {
            Probe::Cmd(self.expand(cmd, lookup))
        } else {
            let log = raw.log.as_ref().expect("one probe is given");
            match regex::Regex::new(log.get_ref()) {
                Ok(re) => Probe::Log(re),
                Err(e) => {
                    self.error(log.span(), format!("invalid regex: {e}"));
                    return None;
                }
            }
        };
        let dur = |d: Option<Dur>, default: u64| d.map_or(Duration::from_millis(default), |d| d.0);
        for (value, what) in [(raw.interval, "interval"), (raw.timeout, "timeout")] {
            if value.is_some_and(|d| d.0 < MIN_PROBE_TIME) {
                self.error(
                    h.span(),
                    format!(
                        "health `{what}` must be at least {}ms",
                        MIN_PROBE_TIME.as_millis()
                    ),
                );
            }
        }
        Some(Health {
            probe,
            interval: dur(raw.interval, 1000),
            timeout: dur(raw.timeout, 1000),
            retries: raw.retries.unwrap_or(3).max(1),
            // Until its first success a service is only starting; failures count after this.
            start_period: dur(raw.start_period, 30_000),
        })
    }
}

impl Config {
    /// `<NAME>_URL` for every service with a port, as the services see it.
    pub fn url_env(&self) -> Vec<(String, String)> {
        self.urls.clone()
    }
}

/// The last value of `name` in an ordered list of variables.
fn last_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A table's entries in the order they are written (a later one may use an earlier one).
fn in_file_order<K, V>(table: &BTreeMap<Spanned<K>, V>) -> Vec<(&Spanned<K>, &V)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

fn value_string(v: &Spanned<EnvValue>) -> Spanned<String> {
    Spanned::new(v.span(), v.get_ref().0.clone())
}

fn undefined_message(name: &str) -> String {
    format!(
        "undefined variable `{name}`: set it in the environment, `env_file` or [env]; write `$${{` for a literal `${{`, or `${name}` without braces to let the shell expand it"
    )
}

fn unknown_service_message(name: &str, names: &[String]) -> String {
    let hint = match did_you_mean(name, names.iter().map(String::as_str)) {
        Some(best) => format!("did you mean `{best}`? "),
        None => String::new(),
    };
    format!(
        "unknown service `{name}`; {hint}services are: {}",
        names.join(", ")
    )
}

/// A dependency cycle as a closed path of indices (first == last), if there is one.
fn find_cycle(services: &[Service]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: usize,
        services: &[Service],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::Active;
        path.push(i);
        for dep in &services[i].deps {
            match marks[dep.service] {
                Mark::Active => {
                    let from = path
                        .iter()
                        .position(|&p| p == dep.service)
                        .expect("on the path");
                    let mut cycle = path[from..].to_vec();
                    cycle.push(dep.service);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(dep.service, services, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; services.len()];
    (0..services.len()).find_map(|i| {
        if marks[i] == Mark::New {
            visit(i, services, &mut marks, &mut Vec::new())
        } else {
            None
        }
    })
}

/// Kahn's algorithm, taking the earliest-written ready service each step.
fn start_order(services: &[Service]) -> Vec<usize> {
    let mut placed = vec![false; services.len()];
    let mut order = Vec::with_capacity(services.len());
    while order.len() < services.len() {
        let next = (0..services.len())
            .find(|&i| !placed[i] && services[i].deps.iter().all(|d| placed[d.service]))
            .expect("no cycles after validation");
        placed[next] = true;
        order.push(next);
    }
    order
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
        let (db, api) = (&cfg.services[0], &cfg.services[1]);
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
        let api = &cfg.services[1];
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
        assert_eq!(cfg.services[1].deps[0].condition, Condition::Completed);
        assert!(cfg.services[0].is_task());
    }

    #[test]
    fn env_file_then_env_table_then_service_env_win_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "A=from-file\nB=from-file\n").unwrap();
        let src = "[stack]\nenv_file = \".env\"\n[env]\nB = \"table ${A}\"\n[services.s]\nrun = \"x\"\nenv = { C = \"${B}!\" }\n";
        let cfg = parse(&dir.path().join("devstack.toml"), src, &|_| None).unwrap();
        let get = |k: &str| cfg.services[0].env_var(k);
        assert_eq!(get("A"), Some("from-file"));
        assert_eq!(get("B"), Some("table from-file"));
        assert_eq!(get("C"), Some("table from-file!"));
    }

    #[test]
    fn env_entries_resolve_in_the_order_they_are_written() {
        let cfg = parse_str("[env]\nZ = \"1\"\nA = \"${Z}2\"\n[services.s]\nrun = \"x\"\nenv = { ZZ = \"3\", AA = \"${ZZ}4\" }\n").unwrap();
        let get = |k: &str| cfg.services[0].env_var(k);
        assert_eq!((get("A"), get("AA")), (Some("12"), Some("34")));
    }

    #[test]
    fn undefined_variable_points_at_the_reference() {
        let err = parse_str("[services.a]\nrun = \"echo ${NOPE}\"\n").unwrap_err();
        let loc = err.0[0].location.as_ref().unwrap();
        assert_eq!((loc.line, loc.col), (2, 13));
    }
}
