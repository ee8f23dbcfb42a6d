//! `<NAME>_URL`: how every service reaches another with a port, and which scheme it says.
//!
//! The scheme is what a client of that service expects: `http` for an HTTP service; for a
//! well-known server recognised by the service's name or its program (`redis-server` →
//! `redis://`, `postgres` → `postgres://` …) that server's own scheme; `tcp` for any other
//! `protocol = "tcp"` service. These are derived values: whatever the user set under the same
//! name wins (`resolve::env::as_seen`).

use super::{CommandLine, Protocol};

/// Servers recognised by a word in the service's name or program, and the scheme their clients
/// take. The first match wins.
const KNOWN: [(&str, &str); 9] = [
    ("redis", "redis"),
    ("valkey", "redis"),
    ("postgres", "postgres"),
    ("mysql", "mysql"),
    ("mariadb", "mysql"),
    ("mongo", "mongodb"),
    ("rabbitmq", "amqp"),
    ("memcached", "memcached"),
    ("nats", "nats"),
];

/// Words before a shell command's program that are not the program.
const WRAPPERS: [&str; 4] = ["exec", "env", "nice", "nohup"];

/// The scheme of a service's URL, from its `protocol`, its name and what it runs.
pub(super) fn scheme(name: &str, run: Option<&CommandLine>, protocol: Protocol) -> &'static str {
    if protocol == Protocol::Http {
        return "http";
    }
    let program = run.and_then(|cmd| match cmd {
        // The program: past variable assignments and wrappers (`A=1 exec redis-server`).
        CommandLine::Shell(s) => s
            .split_whitespace()
            .find(|w| !w.contains('=') && !WRAPPERS.contains(w)),
        CommandLine::Exec(argv) => argv.first().map(String::as_str),
    });
    let program = program.map(|p| p.rsplit('/').next().unwrap_or(p));
    let known = [Some(name), program]
        .into_iter()
        .flatten()
        .find_map(|word| {
            let word = word.to_ascii_lowercase();
            KNOWN
                .iter()
                .find(|(server, _)| word.contains(server))
                .map(|(_, scheme)| *scheme)
        });
    match (known, protocol) {
        (Some(scheme), _) => scheme,
        (None, Protocol::Tcp) => "tcp",
        (None, _) => "http",
    }
}

/// `SOME-svc` → `SOME_SVC_URL`
fn url_var(service: &str) -> String {
    format!("{}_URL", service.to_ascii_uppercase().replace('-', "_"))
}

/// `<NAME>_URL=<scheme>://127.0.0.1:<port>` for every service with a port, but none that
/// `user_set` says the user set already.
pub(super) fn url_env<'a>(
    services: impl Iterator<Item = (&'a str, Option<u16>, &'static str)>,
    user_set: impl Fn(&str) -> bool,
) -> Vec<(String, String)> {
    services
        .filter_map(|(name, port, scheme)| {
            let var = url_var(name);
            (!user_set(&var)).then_some((var, format!("{scheme}://127.0.0.1:{}", port?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceId;

    fn shell(s: &str) -> Option<CommandLine> {
        Some(CommandLine::Shell(s.into()))
    }

    #[test]
    fn the_scheme_says_what_the_service_speaks() {
        let exec = Some(CommandLine::Exec(vec![
            "/usr/bin/postgres".into(),
            "-p".into(),
        ]));
        let cases = [
            ("web", shell("node server.js"), Protocol::Auto, "http"),
            ("web", shell("node server.js"), Protocol::Tcp, "tcp"),
            (
                "cache",
                shell("redis-server --port $PORT"),
                Protocol::Auto,
                "redis",
            ),
            ("redis", shell("x"), Protocol::Tcp, "redis"),
            ("db", exec, Protocol::Auto, "postgres"),
            (
                "db",
                shell("A=1 exec mysqld --port $PORT"),
                Protocol::Tcp,
                "mysql",
            ),
            (
                "api",
                shell("node api.js --redis $REDIS_URL"),
                Protocol::Auto,
                "http",
            ),
            // What the user said about the protocol wins over a guess from the name.
            ("redis-ui", shell("redis-commander"), Protocol::Http, "http"),
            ("queue", None, Protocol::Tcp, "tcp"),
        ];
        for (name, run, protocol, want) in cases {
            assert_eq!(scheme(name, run.as_ref(), protocol), want, "{name} {run:?}");
        }
    }

    #[test]
    fn a_variable_the_user_set_is_left_alone() {
        let urls = url_env(
            [
                ("database", Some(5432), "postgres"),
                ("redis", Some(6379), "redis"),
                ("w", None, "http"),
            ]
            .into_iter(),
            |v| v == "DATABASE_URL",
        );
        assert_eq!(
            urls,
            [("REDIS_URL".into(), "redis://127.0.0.1:6379".into())]
        );
    }

    #[test]
    fn what_the_user_set_wins_over_a_derived_url() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "DATABASE_URL=postgres://u@h/app\n").unwrap();
        let src = "[stack]\nenv_file = \".env\"\n[env]\nCACHE_URL = \"redis://x\"\n\
                   [services.database]\nrun = \"x\"\nport = 5432\n\
                   [services.cache]\nrun = \"redis-server\"\nport = 6379\n\
                   [services.redis]\nrun = \"x\"\nport = 6380\n\
                   [services.mine]\nrun = \"x\"\nport = 7000\n\
                   [services.raw]\nrun = \"x\"\nport = 7001\nprotocol = \"tcp\"\n\
                   [services.api]\nrun = \"y\"\nport = 8080\nenv = { REDIS_URL = \"redis://r\" }\n";
        let process = |k: &str| (k == "MINE_URL").then(|| "from-the-shell".to_string());
        let cfg = super::super::parse(&dir.path().join("devstack.toml"), src, &process).unwrap();
        let get = |k: &str| cfg.services[ServiceId(5)].env_var(k);
        assert_eq!(get("DATABASE_URL"), Some("postgres://u@h/app"));
        assert_eq!(get("CACHE_URL"), Some("redis://x"));
        assert_eq!(get("REDIS_URL"), Some("redis://r"));
        // Inherited from devstack's environment: not set over it.
        assert_eq!(get("MINE_URL"), None);
        assert_eq!(get("RAW_URL"), Some("tcp://127.0.0.1:7001"));
        assert_eq!(get("API_URL"), Some("http://127.0.0.1:8080"));
        // Another service sees the derived one, with the scheme its server takes.
        assert_eq!(
            cfg.services[ServiceId(0)].env_var("REDIS_URL"),
            Some("redis://127.0.0.1:6380")
        );
        // `devstack run`'s command gets the same values.
        let urls: std::collections::HashMap<_, _> = cfg.url_env().into_iter().collect();
        assert_eq!(urls["DATABASE_URL"], "postgres://u@h/app");
        assert_eq!(urls["REDIS_URL"], "redis://127.0.0.1:6380");
        assert!(!urls.contains_key("MINE_URL"));
    }
}
