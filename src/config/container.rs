//! A service run from an image (`image = "postgres:16"`) through the container engine on the
//! PATH (podman or docker): every command line devstack runs the engine with is made here, so the
//! engine's flags live in one place. The service's `build` pulls the image when it is missing, its
//! `run` is `ENGINE run` in the foreground (the engine's output is the service's output; the stop
//! signal sent to it is passed on to the container), and once that ends `remove` takes what is
//! left (a container whose engine process was killed runs on without it).
//!
//! Every container carries the stack's label (`LABEL` = the stack id), so the next `up` finds what
//! a killed devstack left (`leftovers`). Named volumes are the stack's (`<stack>_<name>`, as
//! compose names them), kept across runs and removed by `down --volumes`.

use super::{CommandLine, Slot};
use std::ffi::OsStr;
use std::path::Path;

/// The label every container of a stack carries, with the stack id as its value.
pub const LABEL: &str = "devstack.stack";
/// The label naming a container's service.
const SERVICE_LABEL: &str = "devstack.service";
/// The engines devstack can drive, in the order it looks for them.
pub const ENGINES: [&str; 2] = ["podman", "docker"];

/// How a service's container is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The engine's program (`podman`, `docker`), or None when neither is on the PATH: its
    /// `build` then fails saying so.
    pub engine: Option<String>,
    pub image: String,
    /// The container's name in slot A (`devstack-<stack>-<service>`); slot B's ends in `-b`.
    pub name: String,
    pub service: String,
    pub stack_id: String,
    /// The port the container listens on (the service's `port`).
    pub port: Option<u16>,
    /// `-v` arguments, named volumes already given the stack's prefix.
    pub volumes: Vec<String>,
    /// The stack's named volumes this container uses (`down --volumes` removes them).
    pub named_volumes: Vec<String>,
    /// `-e` variables: the service's own `env`, as written.
    pub env: Vec<(String, String)>,
    /// The command inside, when the service overrides the image's (`run`).
    pub args: Vec<String>,
    /// Its service's `build` is the pull (`pull`): it wrote none of its own.
    pub pulls: bool,
}

/// What an engine, stack or volume name may hold: letters, digits, `_`, `.`, `-`, starting with
/// a letter or digit; anything else becomes `-`.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 'x');
    }
    out
}

/// Whether `engine` (a program name or path) is podman, whose flags differ from docker's.
fn is_podman(engine: &str) -> bool {
    engine.ends_with("podman")
}

/// The engine's line removing the containers `names`, whatever state they are in (podman: no
/// wait for a stop, and a name already gone is no error).
pub fn removal(engine: &str, names: &[String]) -> Vec<String> {
    let mut argv = vec![engine.to_string(), "rm".into(), "-f".into()];
    if is_podman(engine) {
        argv.extend(["-t".into(), "0".into(), "--ignore".into()]);
    }
    argv.extend(names.iter().cloned());
    argv
}

/// Whether `program` is an executable file in a folder of `path` (a PATH value).
pub fn on_path(program: &str, path: &OsStr) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The engine to use: the one the stack names, else the first of `ENGINES` on `path`.
pub fn find_engine(named: Option<&str>, path: Option<&OsStr>) -> Option<String> {
    let found = |p: &str| path.is_some_and(|path| on_path(p, path));
    match named {
        Some(n) => Some(n.to_string()).filter(|n| found(n)),
        None => ENGINES.iter().find(|e| found(e)).map(|e| e.to_string()),
    }
}

/// A volume as written: `name:/path[:opts]` (a named volume) or `./dir:/path`, `/dir:/path` (a
/// folder bound in, relative to `root`). The `-v` argument, and the named volume's full name.
pub fn volume(written: &str, stack: &str, root: &Path) -> Result<(String, Option<String>), String> {
    let Some((source, rest)) = written.split_once(':') else {
        return Err(format!(
            "`{written}`: write `name:/path` (a named volume) or `./folder:/path` (a folder bound in)"
        ));
    };
    if !rest.starts_with('/') {
        return Err(format!(
            "`{written}`: the path inside the container must be absolute"
        ));
    }
    if source.starts_with(['/', '.', '~']) {
        let dir = root.join(source);
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        return Ok((format!("{}:{rest}", dir.display()), None));
    }
    if source.is_empty() || sanitize(source) != source {
        return Err(format!(
            "`{source}` is not a volume name (letters, digits, `_`, `.`, `-`)"
        ));
    }
    let full = format!("{}_{source}", sanitize(stack));
    Ok((format!("{full}:{rest}"), Some(full)))
}

impl Container {
    /// The container's name in `slot`.
    pub fn name_in(&self, slot: Slot) -> String {
        match slot {
            Slot::A => self.name.clone(),
            Slot::B => format!("{}-b", self.name),
        }
    }

    /// The `build` of an image service: pull the image unless it is here already; a missing
    /// engine or a failed pull said plainly.
    pub fn pull(&self) -> CommandLine {
        let image = quote(&self.image);
        let Some(engine) = &self.engine else {
            return CommandLine::Shell(format!(
                "echo 'devstack: {} needs a container engine, and neither podman nor docker is on the PATH (install one, or set [stack] container_engine)' >&2; exit 127",
                self.service
            ));
        };
        let e = quote(engine);
        let have = if is_podman(engine) {
            format!("{e} image exists {image}")
        } else {
            format!("{e} image inspect {image} >/dev/null 2>&1")
        };
        CommandLine::Shell(format!(
            "{have} || {e} pull {image} || {{ echo 'devstack: cannot pull {image} (no network? build or load it here), then start the service again' >&2; exit 1; }}"
        ))
    }

    /// The `run` of the service in `slot`, its container published on `host_port` (the
    /// service's private port when proxied) on 127.0.0.1.
    pub fn run(&self, slot: Slot, host_port: Option<u16>) -> CommandLine {
        let engine = self.engine.clone().unwrap_or_else(|| ENGINES[0].into());
        let name = self.name_in(slot);
        let mut argv = vec![engine.clone(), "run".into(), "--rm".into(), "--init".into()];
        // Output reaches devstack attached, so the engine keeps no log of its own.
        argv.extend(["--log-driver".into(), "none".into()]);
        argv.extend(["--name".into(), name.clone()]);
        let labels = [(LABEL, &self.stack_id), (SERVICE_LABEL, &self.service)];
        for (k, v) in labels {
            argv.extend(["--label".into(), format!("{k}={v}")]);
        }
        if let (Some(host), Some(port)) = (host_port, self.port) {
            argv.extend(["-p".into(), format!("127.0.0.1:{host}:{port}")]);
        }
        for v in &self.volumes {
            argv.extend(["-v".into(), v.clone()]);
        }
        for (k, v) in &self.env {
            argv.extend(["-e".into(), format!("{k}={v}")]);
        }
        argv.push(self.image.clone());
        argv.extend(self.args.iter().cloned());
        if is_podman(&engine) {
            // A container of that name a killed run left is replaced.
            argv.insert(2, "--replace".into());
            return CommandLine::Exec(argv);
        }
        // docker has no --replace: remove it first.
        CommandLine::Exec(
            [
                "sh",
                "-c",
                "n=$1; shift; \"$0\" rm -f \"$n\" >/dev/null 2>&1; exec \"$0\" \"$@\"",
            ]
            .into_iter()
            .map(String::from)
            .chain([engine, name])
            .chain(argv.into_iter().skip(1))
            .collect(),
        )
    }

    /// What removes the container of `slot`, whatever state it is in (run once its engine
    /// process has ended).
    pub fn remove(&self, slot: Slot) -> Option<Vec<String>> {
        let engine = self.engine.as_deref()?;
        Some(removal(engine, &[self.name_in(slot)]))
    }

    /// A `cmd` probe run inside the container of `slot` (`exec = true`).
    pub fn exec(&self, slot: Slot, cmd: &str) -> String {
        let engine = self.engine.as_deref().unwrap_or(ENGINES[0]);
        let name = self.name_in(slot);
        shlex::try_join([engine, "exec", name.as_str(), "sh", "-c", cmd])
            .unwrap_or_else(|_| format!("{engine} exec {name} sh -c false"))
    }
}

/// A word for `sh`, quoted when it must be.
fn quote(word: &str) -> String {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "''".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Container {
        Container {
            engine: Some("podman".into()),
            image: "postgres:16".into(),
            name: "devstack-shop-db".into(),
            service: "db".into(),
            stack_id: "/src/shop".into(),
            port: Some(5432),
            volumes: vec!["shop_pgdata:/var/lib/postgresql/data".into()],
            named_volumes: vec!["shop_pgdata".into()],
            env: vec![("POSTGRES_PASSWORD".into(), "pw".into())],
            args: vec!["postgres".into(), "-c".into(), "fsync=off".into()],
            pulls: true,
        }
    }

    #[test]
    fn the_run_line_publishes_the_port_on_loopback_and_labels_the_container() {
        let line = db().run(Slot::B, Some(41001)).to_string();
        assert_eq!(
            line,
            "podman run --replace --rm --init --log-driver none --name devstack-shop-db-b \
             --label devstack.stack=/src/shop --label devstack.service=db \
             -p 127.0.0.1:41001:5432 -v shop_pgdata:/var/lib/postgresql/data \
             -e POSTGRES_PASSWORD=pw postgres:16 postgres -c fsync=off"
        );
        let docker = Container {
            engine: Some("docker".into()),
            ..db()
        };
        let CommandLine::Exec(argv) = docker.run(Slot::A, Some(41000)) else {
            panic!("an exec line")
        };
        assert_eq!(&argv[..2], ["sh", "-c"]);
        assert_eq!(&argv[3..6], ["docker", "devstack-shop-db", "run"]);
    }

    #[test]
    fn volumes_are_named_for_the_stack_or_bound_from_the_stack_s_folder() {
        let root = Path::new("/src/shop");
        assert_eq!(
            volume("pgdata:/data:Z", "my shop", root).unwrap(),
            (
                "my-shop_pgdata:/data:Z".into(),
                Some("my-shop_pgdata".into())
            )
        );
        assert_eq!(
            volume("./init:/docker-entrypoint-initdb.d", "shop", root).unwrap(),
            ("/src/shop/init:/docker-entrypoint-initdb.d".into(), None)
        );
        assert!(volume("pgdata", "shop", root).is_err());
        assert!(volume("pg data:/x", "shop", root).is_err());
        assert!(volume("pgdata:rel", "shop", root).is_err());
    }

    #[test]
    fn a_probe_inside_runs_through_the_engine_s_exec() {
        assert_eq!(
            db().exec(Slot::A, "pg_isready -U postgres"),
            "podman exec devstack-shop-db sh -c 'pg_isready -U postgres'"
        );
        assert_eq!(
            db().remove(Slot::A).unwrap().join(" "),
            "podman rm -f -t 0 --ignore devstack-shop-db"
        );
    }
}
