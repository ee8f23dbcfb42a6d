//! An `image` service: its container (`config::container::Container`) made from the table,
//! and a `cmd` probe with `exec = true` run inside it. `volumes` or `exec` without an image are
//! errors at their place.

use super::Resolver;
use super::service::Shared;
use crate::config::container::{self, Container};
use crate::config::raw::RawService;
use crate::config::{CommandLine, Health, Probe, Slot};

impl Resolver<'_> {
    /// The container of the service `name`, if it runs an `image`; `run` (interpolated) is the
    /// command inside it, `env` the service's resolved environment.
    pub(super) fn container(
        &mut self,
        name: &str,
        raw: &RawService,
        run: Option<&CommandLine>,
        env: &[(String, String)],
        stack: &Shared,
    ) -> Option<Container> {
        let Some(image) = &raw.image else {
            if let Some(v) = raw.volumes.first() {
                self.error(
                    v.span(),
                    "`volumes` are a container's: this service has no `image`",
                )
                .help = Some("add `image = \"...\"`, or remove `volumes`".into());
            }
            return None;
        };
        if image.get_ref().trim().is_empty() {
            self.error(image.span(), "the image is empty");
        }
        let mut volumes = Vec::new();
        let mut named = Vec::new();
        for v in &raw.volumes {
            match container::volume(v.get_ref(), stack.stack_name, stack.root) {
                Ok((arg, full)) => {
                    volumes.push(arg);
                    named.extend(full);
                }
                Err(e) => drop(self.error(v.span(), e)),
            }
        }
        let args = match run {
            None => Vec::new(),
            Some(CommandLine::Exec(argv)) => argv.clone(),
            Some(CommandLine::Shell(s)) => shlex::split(s).unwrap_or_else(|| {
                let span = raw.run.as_ref().map(|r| r.span()).unwrap_or(image.span());
                self.error(span, "the command has an unclosed quote");
                Vec::new()
            }),
        };
        // The container sees what the service's own `env` says, as compose's `environment`.
        let env = raw
            .env
            .keys()
            .map(|k| k.get_ref())
            .filter_map(|k| Some((k.clone(), crate::config::last_value(env, k)?.to_string())))
            .collect();
        Some(Container {
            engine: stack.engine.map(String::from),
            image: image.get_ref().trim().to_string(),
            name: format!(
                "devstack-{}-{}",
                container::sanitize(stack.stack_name),
                container::sanitize(name)
            ),
            service: name.to_string(),
            stack_id: stack.stack_id.to_string(),
            port: raw.port.as_ref().map(|p| p.get_ref().0),
            volumes,
            named_volumes: named,
            env,
            args,
        })
    }

    /// A probe with `exec = true`: its `cmd` run inside the container of `slot`.
    pub(super) fn inside(
        &mut self,
        mut health: Health,
        raw: &RawService,
        container: Option<&Container>,
        slot: Slot,
    ) -> Health {
        let exec = raw.health.as_ref().and_then(|h| h.get_ref().exec.clone());
        let Some(exec) = exec.filter(|e| *e.get_ref()) else {
            return health;
        };
        match (&mut health.probe, container) {
            (Probe::Cmd(cmd), Some(c)) => *cmd = c.exec(slot, cmd),
            (_, None) => {
                self.error(exec.span(), "`exec` runs the probe inside the service's container: this service has no `image`")
                    .help = Some("remove `exec`; the `cmd` runs on this machine".into());
            }
            (_, Some(_)) => {
                self.error(
                    exec.span(),
                    "`exec` runs a `cmd` probe inside the container: this probe is not a `cmd`",
                );
            }
        }
        health
    }
}
