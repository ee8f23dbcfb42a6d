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
            pulls: raw.build.is_none(),
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

#[cfg(test)]
mod tests {
    use crate::config::{Probe, Rollout, Slot, parse_with};
    use std::path::Path;

    #[test]
    fn an_image_service_runs_its_container_on_its_private_port_and_pulls_as_its_build() {
        let next = std::cell::Cell::new(41000);
        let pick = || {
            next.set(next.get() + 1);
            Some(next.get())
        };
        let cfg = parse_with(
            Path::new("/src/shop/devstack.toml"),
            r#"
            [env]
            RUST_LOG = "debug"
            [services.db]
            image = "postgres:16"
            run = "postgres -c 'fsync=off'"
            port = 5432
            volumes = ["pgdata:/var/lib/postgresql/data"]
            env = { POSTGRES_PASSWORD = "${SECRET}" }
            [services.db.health]
            cmd = "pg_isready -U postgres"
            exec = true
            [services.web]
            image = "nginx"
            port = 8080
            rollout = "blue-green"
            "#,
            &|n| match n {
                "SECRET" => Some("pw".into()),
                "PATH" => Some("/nonexistent".into()),
                _ => None,
            },
            &pick,
        )
        .unwrap();
        let db = &cfg.services[cfg.id_of("db").unwrap()];
        let c = db.container.as_ref().unwrap();
        // No engine on that PATH: the build says so, and the run names podman.
        assert_eq!(c.engine, None);
        assert!(
            db.build
                .as_ref()
                .unwrap()
                .to_string()
                .contains("neither podman nor docker")
        );
        let run = db.run.as_ref().unwrap().to_string();
        assert!(run.contains("-p 127.0.0.1:41001:5432"), "{run}");
        assert!(run.ends_with("postgres:16 postgres -c fsync=off"), "{run}");
        // Only its own env goes in, interpolated.
        assert_eq!(c.env, [("POSTGRES_PASSWORD".to_string(), "pw".to_string())]);
        assert_eq!(c.named_volumes, ["shop_pgdata"]);
        assert_eq!(c.name, "devstack-shop-db");
        let Some(Probe::Cmd(probe)) = db.health.as_ref().map(|h| &h.probe) else {
            panic!("a cmd probe")
        };
        assert_eq!(
            probe,
            "podman exec devstack-shop-db sh -c 'pg_isready -U postgres'"
        );
        // An image restarts unless it says otherwise; its twin is a second container.
        assert_eq!(db.rollout, Rollout::Restart);
        let web = &cfg.services[cfg.id_of("web").unwrap()];
        let b = web.slot(Slot::B).run.unwrap().to_string();
        assert!(b.contains("--name devstack-shop-web-b"), "{b}");
        assert!(b.contains("-p 127.0.0.1:41003:8080"), "{b}");
        assert!(cfg.container_engine.is_none());
    }
}
