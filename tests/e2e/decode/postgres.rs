//! A real PostgreSQL through the tee: `psql` (simple queries, COPY, errors, SSL refused and
//! accepted), `pgbench -M prepared`, and the extended protocol written here (prepared
//! statements reused by name, errors inside a batch). The server runs from `initdb` in the
//! test's temporary folder, as `nobody` when the tests run as root (PostgreSQL refuses root).

use super::{Seen, Server, Tee, program, run};
use crate::common::free_port;
use bytes::BytesMut;
use devstack::traffic::decode::{Protocol, State};
use postgres_protocol::message::frontend;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the server's programs are: Debian keeps them in /usr/lib/postgresql/VERSION/bin,
/// off the PATH (the newest version is taken).
pub(super) fn bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort_by_key(|d| {
        let version = d.parent().and_then(|v| v.file_name()).unwrap_or_default();
        version.to_string_lossy().parse::<u32>().unwrap_or(0)
    });
    dirs.reverse();
    let initdb = program("initdb", &dirs, "postgresql");
    let initdb = initdb.canonicalize().unwrap_or(initdb);
    initdb.parent().unwrap().to_path_buf()
}

/// `command` run as `nobody` when this process is root.
fn as_owner(command: &mut Command) -> &mut Command {
    if let Some((uid, gid)) = owner() {
        command.uid(uid).gid(gid);
    }
    command
}

pub(super) fn owner() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap();
    let nobody = nobody.expect("a user `nobody` to run PostgreSQL as (it refuses root)");
    Some((nobody.uid.as_raw(), nobody.gid.as_raw()))
}

fn chown(path: &Path) {
    if let Some((uid, gid)) = owner() {
        let (uid, gid) = (
            nix::unistd::Uid::from_raw(uid),
            nix::unistd::Gid::from_raw(gid),
        );
        nix::unistd::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

/// A PostgreSQL server of the test's own; `ssl`: with a self-signed certificate.
struct Pg {
    server: Server,
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pg {
    fn start(ssl: bool) -> Pg {
        let bin = bindir();
        let dir = tempfile::tempdir().unwrap();
        let data = initdb(&bin, dir.path());
        let port = free_port();
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("postgres.log")).unwrap());
        if ssl {
            certificate(dir.path());
            for (setting, file) in [
                ("ssl_cert_file", "server.crt"),
                ("ssl_key_file", "server.key"),
            ] {
                let path = dir.path().join(file);
                postgres
                    .arg("-c")
                    .arg(format!("{setting}={}", path.display()));
            }
            postgres.args(["-c", "ssl=on"]);
        }
        let server = Server::new(as_owner(&mut postgres).spawn().unwrap(), port);
        let pg = Pg {
            server,
            bin,
            _dir: dir,
        };
        pg.wait_ready();
        pg
    }

    /// Until the server answers a query (it listens before it has started up).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .psql(self.server.port)
            .args(["-c", "SELECT 1"])
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "PostgreSQL never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A client program of the server's (`psql`, `pgbench`) connecting to `port`.
    fn client(&self, program: &str, port: u16) -> Command {
        client(Command::new(self.bin.join(program)), port)
    }

    fn psql(&self, port: u16) -> Command {
        let mut command = self.client("psql", port);
        command.args(["-X", "-q", "-A", "-t"]);
        command
    }
}

/// A new cluster in `dir` (user `postgres`, `trust` authentication): its data folder.
pub(super) fn initdb(bin: &Path, dir: &Path) -> PathBuf {
    chown(dir);
    let data = dir.join("data");
    run(
        as_owner(&mut Command::new(bin.join("initdb")))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .current_dir(dir),
        true,
    );
    data
}

/// A self-signed certificate and its key in `dir`, owned by the server's user.
fn certificate(dir: &Path) {
    let openssl = program("openssl", &[], "openssl");
    run(
        Command::new(openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.crt",
            ])
            .current_dir(dir),
        true,
    );
    for file in ["server.key", "server.crt"] {
        chown(&dir.join(file));
    }
}

/// Runs `command` whatever its status: its output.
fn output(command: &mut Command) -> String {
    let out = command.output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const STARTUP: &str = "startup user=postgres database=postgres → ready";

fn decoded(conn: &Seen) {
    assert_eq!(conn.protocol, Some(Protocol::Postgres));
    assert_eq!(conn.state, Some(State::Decoding), "{conn:#?}");
}

#[test]
fn postgres_simple_queries_copy_and_errors() {
    let pg = Pg::start(false);
    let tee = Tee::new(pg.server.port);
    let psql = |args: &[&str]| output(pg.psql(tee.port).args(args).stdin(Stdio::null()));
    psql(&[
        "-c",
        "CREATE TABLE t (id int PRIMARY KEY, name text)",
        "-c",
        "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
        "-c",
        "SELECT *\n  FROM t WHERE id = 1",
        "-c",
        "SELECT * FROM nope",
        "-c",
        "SELECT pg_sleep(0.3)",
    ]);
    let mut copy = pg.psql(tee.port);
    copy.args(["-c", "COPY t FROM STDIN", "-c", "COPY t TO STDOUT"]);
    let mut child = copy
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"3\tc\n4\td\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4\td"),
        "{out:?}"
    );
    let refused = output(
        pg.psql(tee.port)
            .env("PGDATABASE", "nope")
            .args(["-c", "SELECT 1"]),
    );
    assert!(refused.contains("does not exist"), "{refused}");
    let conns = tee.connections();
    assert_eq!(conns.len(), 3);
    conns.iter().for_each(decoded);
    assert_eq!(
        conns[0].lines(),
        [
            STARTUP,
            "CREATE TABLE t (id int PRIMARY KEY, name text) → CREATE TABLE",
            "INSERT INTO t VALUES (1, 'a'), (2, 'b') → INSERT 0 2",
            "SELECT * FROM t WHERE id = 1 → 1 row",
            "SELECT * FROM nope → error [SQLSTATE 42P01: relation \"nope\" does not exist]",
            "SELECT pg_sleep(0.3) → 1 row",
        ]
    );
    let e = &conns[0].exchanges;
    assert_eq!(e[2].group, "INSERT INTO t VALUES (?, ?), (?, ?)");
    assert_eq!(e[3].group, "SELECT * FROM t WHERE id = ?");
    assert!(e[5].latency >= Duration::from_millis(300) && e[5].latency < Duration::from_secs(10));
    assert!(e[3].latency < Duration::from_millis(300), "{e:?}");
    assert_eq!(
        conns[1].lines(),
        [
            STARTUP,
            "COPY t FROM STDIN → COPY 2",
            "COPY t TO STDOUT → COPY 4"
        ]
    );
    assert_eq!(
        conns[2].lines(),
        [
            "startup user=postgres database=nope → error [SQLSTATE 3D000: database \"nope\" does not exist]"
        ]
    );
}

/// Reads messages from `conn` up to a ReadyForQuery.
pub(super) fn until_ready(conn: &mut TcpStream) {
    let mut head = [0u8; 5];
    loop {
        conn.read_exact(&mut head).unwrap();
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0; len - 4];
        conn.read_exact(&mut body).unwrap();
        if head[0] == b'Z' {
            return;
        }
    }
}

pub(super) fn send(conn: &mut TcpStream, write: impl FnOnce(&mut BytesMut)) {
    let mut buf = BytesMut::new();
    write(&mut buf);
    conn.write_all(&buf).unwrap();
}

fn bind_execute(buf: &mut BytesMut, statement: &str, value: &str) {
    frontend::bind(
        "",
        statement,
        [0],
        [value],
        |v, b| {
            b.extend_from_slice(v.as_bytes());
            Ok(postgres_protocol::IsNull::No)
        },
        [0],
        buf,
    )
    .map_err(|_| "bind")
    .unwrap();
    frontend::execute("", 0, buf).unwrap();
    frontend::sync(buf);
}

#[test]
fn postgres_prepared_statements() {
    let pg = Pg::start(false);
    let tee = Tee::new(pg.server.port);
    let mut conn = TcpStream::connect(("127.0.0.1", tee.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    send(&mut conn, |b| {
        frontend::startup_message([("user", "postgres"), ("database", "postgres")], b).unwrap()
    });
    until_ready(&mut conn);
    let text = "SELECT $1::int + 1";
    send(&mut conn, |b| {
        frontend::parse("s1", text, [], b).unwrap();
        frontend::describe(b'S', "s1", b).unwrap();
        bind_execute(b, "s1", "41");
    });
    until_ready(&mut conn);
    send(&mut conn, |b| bind_execute(b, "s1", "1"));
    until_ready(&mut conn);
    send(&mut conn, |b| bind_execute(b, "s1", "x"));
    until_ready(&mut conn);
    send(&mut conn, |b| {
        frontend::parse("", "SELEC 1", [], b).unwrap();
        bind_execute(b, "", "1");
    });
    until_ready(&mut conn);
    send(&mut conn, |b| frontend::query("SELECT 1", b).unwrap());
    until_ready(&mut conn);
    send(&mut conn, frontend::terminate);
    drop(conn);
    // pgbench's prepared mode: a statement prepared once by name, executed again and again.
    run(
        pg.psql(tee.port).args([
            "-c",
            "CREATE TABLE t (id int, name text)",
            "-c",
            "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
        ]),
        true,
    );
    let script = pg._dir.path().join("bench.sql");
    std::fs::write(
        &script,
        "\\set id random(1, 2)\nSELECT name FROM t WHERE id = :id;\n",
    )
    .unwrap();
    let mut bench = pg.client("pgbench", tee.port);
    run(
        bench
            .args(["-n", "-M", "prepared", "-c", "1", "-t", "5", "-f"])
            .arg(&script),
        true,
    );
    let conns = tee.connections();
    conns.iter().for_each(decoded);
    assert_eq!(
        conns[0].lines(),
        [
            STARTUP,
            "SELECT $1::int + 1 → 1 row",
            "SELECT $1::int + 1 → 1 row",
            "SELECT $1::int + 1 → error [SQLSTATE 22P02: invalid input syntax for type integer: \"x\"]",
            "SELEC 1 → error [SQLSTATE 42601: syntax error at or near \"SELEC\"]",
            "SELECT 1 → 1 row",
        ]
    );
    assert_eq!(conns[0].exchanges[1].group, "SELECT $1::int + ?");
    let bench = conns.last().unwrap();
    let runs: Vec<_> = bench
        .exchanges
        .iter()
        .filter(|e| e.request == "SELECT name FROM t WHERE id = $1;")
        .collect();
    assert_eq!(runs.len(), 5, "{:#?}", bench.lines());
    assert!(
        runs.iter()
            .all(|e| e.outcome == "1 row" && e.error.is_none())
    );
}

#[test]
fn postgres_ssl_refused_then_plain() {
    let pg = Pg::start(false);
    let tee = Tee::new(pg.server.port);
    let required = output(
        pg.psql(tee.port)
            .env("PGSSLMODE", "require")
            .args(["-c", "SELECT 1"]),
    );
    assert!(required.contains("SSL"), "{required}");
    let preferred = pg
        .psql(tee.port)
        .env("PGSSLMODE", "prefer")
        .args(["-c", "SELECT 1"])
        .output();
    assert!(preferred.unwrap().status.success());
    let conns = tee.connections();
    conns.iter().for_each(decoded);
    assert_eq!(conns[0].lines(), ["SSLRequest → refused"]);
    assert_eq!(
        conns[1].lines(),
        ["SSLRequest → refused", STARTUP, "SELECT 1 → 1 row"]
    );
}

#[test]
fn postgres_ssl_accepted_is_encrypted() {
    let pg = Pg::start(true);
    let tee = Tee::new(pg.server.port);
    let out = run(
        pg.psql(tee.port)
            .env("PGSSLMODE", "require")
            .args(["-c", "SELECT 41 + 1"]),
        true,
    );
    assert_eq!(out.trim(), "42");
    let conns = tee.connections();
    assert_eq!(conns[0].lines(), ["SSLRequest → encrypted"]);
    assert_eq!(conns[0].state, Some(State::Encrypted));
}

/// `command` (a client program of PostgreSQL's) connecting to `port` as `postgres`, nothing else
/// of the environment but `PATH`.
pub(super) fn client(mut command: Command, port: u16) -> Command {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "postgres")
        .env("PGSSLMODE", "disable")
        .env("PGGSSENCMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "10");
    command
}
