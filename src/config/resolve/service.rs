//! One `[services.NAME]`: its environment (the stack's, devstack's variables, `PORT`, its own
//! `env`), its private port when proxied, its folder, commands and settings.

use super::Resolver;
use super::env::Scope;
use crate::config::container::Container;
use crate::config::raw::Rollout;
use crate::config::raw::{RawService, Spanned};
use crate::config::{
    CommandLine, SERVICE_VAR, STACK_VAR, Service, ServiceId, Services, Slot, Twin,
};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Servers that cannot run twice on one machine as a stack runs them (a data directory or
/// files they lock or own, a cluster identity): a service running one restarts rather than
/// rolls out blue-green unless it says otherwise.
const SINGLE: &[&str] = &[
    "postgres",
    "postmaster",
    "pg_ctl",
    "mysqld",
    "mariadbd",
    "mongod",
    "redis-server",
    "valkey-server",
    "keydb-server",
    "rabbitmq-server",
    "elasticsearch",
    "opensearch",
    "etcd",
    "kafka-server-start.sh",
    "zookeeper-server-start.sh",
    "minio",
    "cockroach",
];

/// Whether `run` runs one of the `SINGLE` servers (any word of it, by its file name).
fn runs_alone(run: &CommandLine) -> bool {
    let words: Vec<&str> = match run {
        CommandLine::Shell(s) => s.split_whitespace().collect(),
        CommandLine::Exec(args) => args.iter().map(String::as_str).collect(),
    };
    words
        .iter()
        .map(|w| w.rsplit('/').next().unwrap_or(w))
        .any(|w| SINGLE.contains(&w))
}

/// How long an old process drains after a blue-green switch, unless the service says.
const DRAIN: Duration = Duration::from_secs(30);

/// What every service reads of the stack.
pub(super) struct Shared<'a> {
    pub root: &'a Path,
    pub stack_id: &'a str,
    pub stack_name: &'a str,
    /// The container engine `image` services run through, if one was found.
    pub engine: Option<&'a str>,
    /// The services' `grace` unless they set their own.
    pub grace: Duration,
    /// The services' capture defaults (`[stack.capture]`).
    pub capture: &'a crate::config::capture::RawStackCapture,
    /// `[stack.capture] proto`, read.
    pub protos: super::protos::Protos,
    /// The derived URLs, then the stack's environment: later entries win, so the user's values
    /// win over the URLs.
    pub env: Vec<(String, String)>,
    pub scope: Scope<'a>,
}

impl Resolver<'_> {
    /// The service `id` of the table; its dependencies come later (`deps.rs`).
    pub(super) fn service(
        &mut self,
        id: ServiceId,
        name_span: &Spanned<String>,
        raw: &RawService,
        stack: &Shared,
    ) -> Service {
        let name = name_span.get_ref().clone();
        let port = stack.scope.table.ports[id];
        let proxied = stack.scope.table.proxied(id);
        let private_port = if proxied {
            self.pick_private_port(&stack.scope.table.ports)
        } else {
            None
        };
        let env = self.service_env(&name, raw, private_port.or(port), stack);
        let lookup = |n: &str| stack.scope.lookup(&env, n);
        let cwd = self.cwd(raw.cwd.as_ref(), stack.root, &lookup);
        let mut build = raw.build.as_ref().map(|c| self.expand_command(c, &lookup));
        let mut run = raw.run.as_ref().map(|c| self.expand_command(c, &lookup));
        let container = self.container(&name, raw, run.as_ref(), &env, stack);
        if let Some(c) = &container {
            run = Some(c.run(Slot::A, private_port.or(port)));
            build = build.or_else(|| Some(c.pull()));
        }
        let remote = self.remote(raw);
        if build.is_none() && run.is_none() && raw.url.is_none() {
            self.error(name_span.span(), format!("service `{name}` has neither `run` nor `build`"))
                .help = Some("add `run = \"...\"` (a long-running process) or `build = \"...\"` (a one-shot task)".into());
        }
        if let Some(protocol) = &raw.protocol
            && (port.is_none() || raw.proxy == Some(false))
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
            .and_then(|h| self.health(h, port, &lookup))
            .map(|h| self.inside(h, raw, container.as_ref(), Slot::A))
            .or_else(|| {
                let only_remote = remote.is_some() && run.is_none();
                only_remote.then(super::remote::default_remote_health)
            });
        let rollout = self.rollout(raw, proxied && run.is_some(), run.as_ref());
        let twin = match rollout {
            Rollout::BlueGreen => self.twin(&name, raw, container.as_ref(), stack),
            Rollout::Restart => None,
        };
        Service {
            name,
            build,
            run,
            cwd,
            port,
            proxy: raw.proxy.unwrap_or(true),
            protocol: super::remote::protocol(raw),
            private_port,
            env,
            deps: Vec::new(),
            watch: raw.watch.iter().map(|w| w.get_ref().clone()).collect(),
            ignore: raw.ignore.iter().map(|w| w.get_ref().clone()).collect(),
            restart: raw.restart.unwrap_or_default(),
            autostart: raw.autostart.unwrap_or(true),
            stop_signal: raw.stop_signal.map_or(Signal::SIGTERM, |s| s.0),
            grace: raw.grace.map_or(stack.grace, |d| d.0),
            rollout,
            drain: raw.drain.map_or(DRAIN, |d| d.0),
            twin,
            health,
            capture: stack.capture.of(raw.capture.as_ref()),
            protos: self.service_protos(&stack.protos, raw.capture.as_ref(), stack.root),
            container,
            remote,
        }
    }

    /// How a rebuild or restart replaces its process: blue-green by default where it can be
    /// (`can`: proxied, with a `run`) unless `run` is a server known to hold its data
    /// directory or files alone (`SINGLE`); asked for where it can't, an error.
    fn rollout(&mut self, raw: &RawService, can: bool, run: Option<&CommandLine>) -> Rollout {
        match &raw.rollout {
            Some(r) if *r.get_ref() == Rollout::BlueGreen && !can => {
                self.error(
                    r.span(),
                    "a blue-green rollout switches the proxy to the new process, but this service is not proxied (or has no `run`)",
                )
                .help = Some("give the service a `port` (and leave `proxy` on), or say `rollout = \"restart\"`".into());
                Rollout::Restart
            }
            Some(r) => *r.get_ref(),
            // An image is most often a database's or a broker's: two on one volume corrupt it.
            None if can && raw.image.is_none() && !run.is_some_and(runs_alone) => {
                Rollout::BlueGreen
            }
            None => Rollout::Restart,
        }
    }

    /// A blue-green service's second private port, with its `PORT` and what it says (commands
    /// and probe read again with it). Problems in them were said for the first already.
    fn twin(
        &mut self,
        name: &str,
        raw: &RawService,
        container: Option<&Container>,
        stack: &Shared,
    ) -> Option<Box<Twin>> {
        let private_port = self.pick_private_port(&stack.scope.table.ports)?;
        let said = self.errors.len();
        let env = self.service_env(name, raw, Some(private_port), stack);
        let lookup = |n: &str| stack.scope.lookup(&env, n);
        let run = match container {
            Some(c) => Some(c.run(Slot::B, Some(private_port))),
            None => raw.run.as_ref().map(|c| self.expand_command(c, &lookup)),
        };
        let port = stack.scope.table.ports[stack.scope.table.id(name)?];
        let health = (raw.health.as_ref())
            .and_then(|h| self.health(h, port, &lookup))
            .map(|h| self.inside(h, raw, container, Slot::B));
        self.errors.truncate(said);
        Some(Box::new(Twin {
            private_port,
            env,
            run,
            health,
        }))
    }

    /// A proxied service's private port: never a port another service declares (it is free now
    /// only because nothing listens there yet).
    fn pick_private_port(&self, ports: &Services<Option<u16>>) -> Option<u16> {
        std::iter::repeat_with(|| (self.private_port)())
            .take(16)
            .find(|p| p.is_none_or(|p| !ports.values().any(|q| *q == Some(p))))
            .flatten()
    }

    /// The service's environment: the stack's, devstack's variables, its `PORT` (`port`: the
    /// private one when proxied), then its own `env`: later entries win.
    fn service_env(
        &mut self,
        name: &str,
        raw: &RawService,
        port: Option<u16>,
        stack: &Shared,
    ) -> Vec<(String, String)> {
        let mut env = stack.env.clone();
        env.push((SERVICE_VAR.into(), name.to_string()));
        env.push((STACK_VAR.into(), stack.stack_id.to_string()));
        if let Some(p) = port {
            env.push(("PORT".into(), p.to_string()));
        }
        self.extend_env(&mut env, &raw.env, &stack.scope);
        env
    }

    fn cwd(
        &mut self,
        cwd: Option<&Spanned<String>>,
        root: &Path,
        lookup: &dyn Fn(&str) -> Result<String, String>,
    ) -> PathBuf {
        let Some(c) = cwd else {
            return root.to_path_buf();
        };
        let dir = root.join(self.expand(c, lookup));
        if !dir.is_dir() {
            self.error(
                c.span(),
                format!("cwd `{}` is not a directory", dir.display()),
            );
        }
        dir
    }
}
