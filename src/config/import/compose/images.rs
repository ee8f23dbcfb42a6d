//! Images of well-known servers (postgres, redis …): the command that runs one on this machine
//! stands in for the container. It runs when its program is installed here; otherwise the
//! service is written commented out, to uncomment once it is.

use super::super::{Context, Health, Svc, command_line};

/// Images of well-known servers: the name, the command that runs one locally (`{port}`: its
/// port), its usual port, a health check, and what to do first.
pub(super) struct Known {
    names: &'static [&'static str],
    run: &'static str,
    pub(super) port: u16,
    health: Option<&'static str>,
    first: Option<&'static str>,
    /// The folder `first` makes: it runs while that does not exist.
    data: Option<&'static str>,
}

const KNOWN: &[Known] = &[
    Known {
        names: &["postgres", "postgis", "timescaledb", "pgvector"],
        run: "postgres -D .data/postgres -p {port} -k /tmp",
        port: 5432,
        health: Some("pg_isready -h 127.0.0.1 -p {port}"),
        first: Some("initdb -D .data/postgres"),
        data: Some(".data/postgres"),
    },
    Known {
        names: &["redis", "redis-stack-server", "valkey", "keydb"],
        run: "redis-server --port {port}",
        port: 6379,
        health: Some("redis-cli -p {port} ping"),
        first: None,
        data: None,
    },
    Known {
        names: &["mysql", "mariadb", "percona"],
        run: "mysqld --datadir=.data/mysql --port={port}",
        port: 3306,
        health: Some("mysqladmin ping -h 127.0.0.1 -P {port}"),
        first: Some("mysqld --initialize-insecure --datadir=.data/mysql"),
        data: Some(".data/mysql"),
    },
    Known {
        names: &["mongo", "mongodb"],
        run: "mongod --dbpath .data/mongo --port {port}",
        port: 27017,
        health: None,
        first: Some("mkdir -p .data/mongo"),
        data: Some(".data/mongo"),
    },
    Known {
        names: &["rabbitmq"],
        run: "rabbitmq-server",
        port: 5672,
        health: Some("rabbitmq-diagnostics -q ping"),
        first: None,
        data: None,
    },
    Known {
        names: &["memcached"],
        run: "memcached -p {port}",
        port: 11211,
        health: None,
        first: None,
        data: None,
    },
    Known {
        names: &["nginx"],
        run: "nginx -p . -c nginx.conf -g 'daemon off;'",
        port: 80,
        health: None,
        first: None,
        data: None,
    },
    Known {
        names: &["elasticsearch", "opensearch"],
        run: "elasticsearch",
        port: 9200,
        health: None,
        first: None,
        data: None,
    },
    Known {
        names: &["minio"],
        run: "minio server .data/minio --address 127.0.0.1:{port}",
        port: 9000,
        health: None,
        first: None,
        data: None,
    },
    Known {
        names: &["mailpit", "mailhog"],
        run: "mailpit",
        port: 8025,
        health: None,
        first: None,
        data: None,
    },
];

/// `docker.io/library/postgres:16-alpine` → `postgres`.
fn image_base(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last)
}

/// The first word of each command a well-known image becomes: what must be installed.
fn program(command: &str) -> &str {
    command.split_whitespace().next().unwrap_or(command)
}

pub(in crate::config::import) fn programs() -> Vec<&'static str> {
    let mut all: Vec<&str> = KNOWN
        .iter()
        .flat_map(|k| [Some(k.run), k.first, k.health].into_iter().flatten())
        .map(program)
        .chain(crate::config::container::ENGINES)
        .collect();
    all.sort();
    all.dedup();
    all
}

impl Known {
    /// Its check run inside its own container, on `port` (the container's): its client is there.
    pub(super) fn inside_check(&self, port: u16) -> Option<String> {
        self.health.map(|h| h.replace("{port}", &port.to_string()))
    }
}

/// The well-known server an image is, if any.
pub(super) fn known(image: &str) -> Option<&'static Known> {
    let base = image_base(image);
    KNOWN.iter().find(|k| k.names.contains(&base))
}

/// Whether what the image's stand-in runs (`redis-server`, and what it runs first) is on the PATH.
pub(super) fn installed(k: &Known, cx: &Context) -> bool {
    [Some(k.run), k.first]
        .into_iter()
        .flatten()
        .all(|c| cx.installed.contains(program(c)))
}

/// A service of a well-known image, run by its stand-in (`native`: installed here; otherwise
/// commented out) on `container_port` (its usual port if none): what the compose command was
/// (`words`) is only said.
pub(super) fn run_locally(
    svc: &mut Svc,
    k: &Known,
    image: &str,
    container_port: Option<(u16, Option<u16>)>,
    native: bool,
    words: &[String],
    cx: &Context,
) {
    let port = container_port.map_or(k.port, |(t, _)| t);
    if native {
        svc.note(format!(
            "image {image} runs in a container; here `{}`, installed on this machine, runs in its place",
            program(k.run)
        ));
    } else {
        svc.commented = true;
        svc.warn(format!(
            "image {image} runs in a container; devstack runs processes: the block below, commented out, runs it on this machine (uncomment it once `{}` is installed)",
            program(k.run)
        ));
    }
    match (k.first, native) {
        (Some(first), false) => svc.note(format!("first, once: {first}")),
        (Some(first), true) => svc.note(format!(
            "`{first}` runs first, while {} does not exist",
            k.data.unwrap_or("its data folder")
        )),
        (None, _) => {}
    }
    if !words.is_empty() {
        svc.note(format!("its compose command was: {}", command_line(words)));
    }
    let run = k.run.replace("{port}", &port.to_string());
    svc.run = Some(match (k.first, k.data, native) {
        (Some(first), Some(data), true) => format!("test -d {data} || {first} && exec {run}"),
        _ => run,
    });
    svc.port = Some(port);
    svc.proxy = Some(false);
    svc.health = health(k, port, native, cx);
}

/// The image's health check on `port`.
fn health(k: &Known, port: u16, native: bool, cx: &Context) -> Option<Health> {
    match k.health {
        // Running here without its client (`redis-cli`): a connection tells it is up.
        Some(h) if native && !cx.installed.contains(program(h)) => Some(Health {
            kind: "tcp",
            value: "true".into(),
            ..Health::default()
        }),
        Some(h) => Some(Health {
            kind: "cmd",
            value: h.replace("{port}", &port.to_string()),
            ..Health::default()
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        assert_eq!(
            image_base("docker.io/library/postgres:16-alpine"),
            "postgres"
        );
        assert_eq!(image_base("bitnami/redis@sha256:abc"), "redis");
    }
}
