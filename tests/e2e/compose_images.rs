//! `devstack init --from compose.yaml` with podman on the PATH, run end to end: a compose file
//! with postgres, redis and two built services becomes `image` services and processes, and the
//! stack starts, is probed inside the containers, carries Redis and Postgres traffic through the
//! proxy, and stops leaving no container. No registry is reachable, so `postgres:16` and
//! `redis:7` are built here (as `devstack-test/…`, never over a real image of that name): this machine's own PostgreSQL and Redis programs with the libraries
//! they load, on busybox (`containers::build_image`).

use crate::common::{BIN, Stack, free_port};
use crate::containers::{Cleanup, build_image, containers_of};
use crate::decode::{program, run};
use crate::lifecycle::run_within;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `postgres:16` and `redis:7`, made once per test run from this machine's programs.
fn server_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let pg = Path::new("/usr/lib/postgresql")
            .read_dir()
            .expect("PostgreSQL is installed (apt-get install -y postgresql, as .ci/run does)")
            .flatten()
            .map(|e| e.path())
            .next()
            .unwrap();
        let bin = pg.join("bin");
        let share = Path::new("/usr/share/postgresql").join(pg.file_name().unwrap());
        let pg_programs: Vec<PathBuf> = ["postgres", "initdb", "pg_isready"]
            .iter()
            .map(|p| bin.join(p))
            .collect();
        let extra = [pg.join("lib"), share, PathBuf::from("/usr/share/zoneinfo")];
        let extra: Vec<String> = extra.iter().map(|p| p.display().to_string()).collect();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        // As the official image: a data folder made on the first start, open to the host.
        let entry = r#"#!/bin/sh
set -e
export PATH=$(ls -d /usr/lib/postgresql/*/bin):$PATH TZ=UTC
D=/var/lib/postgresql/data
mkdir -p $D && chown postgres $D && chmod 700 $D
if [ ! -s $D/PG_VERSION ]; then
  su postgres -c "initdb -D $D -U postgres --auth=trust --locale=C -E UTF8 >/dev/null"
  echo "listen_addresses = '*'" >> $D/postgresql.conf
  echo "host all all 0.0.0.0/0 trust" >> $D/pg_hba.conf
  echo "database system initialised"
fi
exec su postgres -c "exec $* -D $D -k /tmp"
"#;
        build_image(
            "devstack-test/postgres:16",
            &pg_programs,
            &extra,
            &[("entry.sh", entry)],
            "[\"postgres\"]",
        );
        let redis: Vec<PathBuf> = ["redis-server", "redis-cli"]
            .iter()
            .map(|p| program(p, &[], "redis-server redis-tools"))
            .collect();
        let entry = "#!/bin/sh\nexec \"$@\"\n";
        build_image(
            "devstack-test/redis:7",
            &redis,
            &[],
            &[("entry.sh", entry)],
            "[\"redis-server\"]",
        );
    });
}

#[test]
fn a_compose_file_with_postgres_redis_and_two_built_services_runs_through_podman() {
    server_images();
    let (pg, redis, api, web) = (free_port(), free_port(), free_port(), free_port());
    let stack = Stack::new("");
    std::fs::remove_file(stack.path().join("devstack.toml")).unwrap();
    for dir in ["api", "web"] {
        std::fs::create_dir_all(stack.path().join(dir)).unwrap();
        std::fs::write(stack.path().join(dir).join("index.html"), dir).unwrap();
    }
    std::fs::write(
        stack.path().join("compose.yaml"),
        format!(
            r#"services:
  db:
    image: devstack-test/postgres:16
    command: ["postgres", "-p", "{pg}"]
    environment:
      POSTGRES_PASSWORD: secret
    ports: ["{pg}:{pg}"]
    volumes:
      - pgdata:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres -h 127.0.0.1 -p {pg}"]
      interval: 1s
  cache:
    image: devstack-test/redis:7
    command: ["redis-server", "--port", "{redis}", "--protected-mode", "no"]
    ports: ["{redis}:{redis}"]
    healthcheck:
      test: ["CMD", "redis-cli", "-p", "{redis}", "ping"]
      interval: 1s
  api:
    build: ./api
    command: python3 -m http.server --bind 127.0.0.1 {api}
    ports: ["{api}:{api}"]
    depends_on:
      db: {{ condition: service_healthy }}
      cache: {{ condition: service_healthy }}
  web:
    build: ./web
    command: python3 -m http.server --bind 127.0.0.1 {web}
    ports: ["{web}:{web}"]
    depends_on: [api]
volumes:
  pgdata:
"#
        ),
    )
    .unwrap();
    let init = Command::new(BIN)
        .args(["init", "--from", "compose.yaml"])
        .current_dir(stack.path())
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let toml = std::fs::read_to_string(stack.path().join("devstack.toml")).unwrap();
    assert!(
        toml.contains("image = \"devstack-test/postgres:16\""),
        "{toml}"
    );
    assert!(toml.contains("image = \"devstack-test/redis:7\""), "{toml}");
    assert!(toml.contains("exec = true"), "{toml}");
    let mut stack = stack;
    let mut cleanup = Cleanup::new(&stack, &[]);
    stack.start(&["up", "--headless"]);
    stack.wait_socket(30);
    let db = crate::lifecycle::service(&stack, "db");
    let volume = db["volumes"][0].as_str().unwrap().to_string();
    cleanup.volume(&volume);
    stack.wait_ready(120);
    assert_eq!(containers_of(stack.path()).len(), 2);
    // Through the proxy, to the containers: Redis and Postgres, decoded.
    let redis_cli = program("redis-cli", &[], "redis-tools");
    let pong = run(
        Command::new(redis_cli).args(["-p", &redis.to_string(), "set", "k", "v"]),
        true,
    );
    assert!(pong.contains("OK"), "{pong}");
    let psql = program("psql", &[], "postgresql-client");
    let one = run(
        Command::new(psql)
            .args(["-h", "127.0.0.1", "-p", &pg.to_string(), "-U", "postgres"])
            .args(["-tAc", "select 41 + 1"]),
        true,
    );
    assert_eq!(one.trim(), "42");
    // `web` has no probe: ready once started, serving once python has bound its port.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (status, body) = loop {
        let got = crate::common::http_get(web, "/index.html");
        if got.0 != 0 || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!((status, body.ends_with("web")), (200, true), "{body}");
    let traffic = run_within(&stack, &["traffic", "--json"], 30);
    let traffic = String::from_utf8_lossy(&traffic.stdout).into_owned();
    assert!(
        traffic.contains("\"cache\"") && traffic.contains("\"db\""),
        "{traffic}"
    );
    stack.signal(nix::sys::signal::Signal::SIGINT);
    stack.wait_exit(60);
    assert_eq!(containers_of(stack.path()), Vec::<String>::new());
    let down = run_within(&stack, &["down", "--volumes"], 60);
    assert!(down.status.success(), "{down:?}");
}
