//! `image` services through a real podman: a small image built here offline (`podman import` of
//! a rootfs holding Debian's static busybox; no registry is reachable), run as services: probed,
//! called through the proxy, stopped with their grace, restarted after a crash, cleaned up after
//! a SIGKILL of devstack by the next `up`; a missing image fails its service's build, plainly.
//! Every test removes the containers of its own stack (by the stack's label) when it ends.

use crate::common::{Stack, free_port, http_get};
use crate::decode::{program, run};
use crate::lifecycle::{run_within, service, wait_service};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The image the tests run: busybox (`sh`, `httpd`, `nc` …) and `/www/index.html`.
pub(crate) const IMAGE: &str = "devstack-test/busybox:3";

/// `podman`, or the test fails saying how to get it.
pub(crate) fn podman() -> Command {
    Command::new(program("podman", &[], "podman runc"))
}

/// Build `IMAGE` once per test run, unless podman has it already.
pub(crate) fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let page = ("www/index.html", "hello from a container\n");
        build_image(IMAGE, &[], &[], &[page], "[\"sh\"]");
    });
    IMAGE
}

/// Copy `from` (a file or a folder) into `root` at the same path, symlinks followed.
fn copy_in(root: &Path, from: &Path) {
    let to = root.join(from.strip_prefix("/").unwrap());
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    run(Command::new("cp").arg("-rL").arg(from).arg(&to), true);
}

/// The shared libraries `bin` loads, by `ldd`.
fn libraries(bin: &Path) -> Vec<PathBuf> {
    let out = run(Command::new("ldd").arg(bin), true);
    out.lines()
        .filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// An image `tag` of busybox, `programs` (with their libraries), `extra` files and folders of this
/// machine, `files` written (an executable `entry.sh` among them is its entrypoint) and `cmd` as
/// its command; unless podman has it already.
pub(crate) fn build_image(
    tag: &str,
    programs: &[PathBuf],
    extra: &[&str],
    files: &[(&str, &str)],
    cmd: &str,
) {
    if podman()
        .args(["image", "exists", tag])
        .status()
        .unwrap()
        .success()
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for dir in ["bin", "tmp", "etc", "var/run"] {
        std::fs::create_dir_all(r.join(dir)).unwrap();
    }
    let busybox = program("busybox", &[], "busybox-static");
    std::fs::copy(&busybox, r.join("bin/busybox")).unwrap();
    for applet in run(Command::new(&busybox).arg("--list"), true).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
        }
    }
    let mut copied: Vec<PathBuf> = programs.to_vec();
    for p in programs {
        copied.extend(libraries(p));
    }
    copied.extend(extra.iter().map(PathBuf::from));
    for f in &copied {
        copy_in(r, f);
    }
    std::fs::write(
        r.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\npostgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\npostgres:x:999:\n").unwrap();
    for (name, text) in files {
        let path = r.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    let entry = files.iter().any(|(n, _)| *n == "entry.sh");
    if entry {
        run(
            Command::new("chmod").arg("755").arg(r.join("entry.sh")),
            true,
        );
    }
    let chmod_tmp = Command::new("chmod")
        .arg("1777")
        .arg(r.join("tmp"))
        .status();
    assert!(chmod_tmp.unwrap().success());
    let tar = tempfile::NamedTempFile::new().unwrap();
    run(
        Command::new("tar")
            .arg("-C")
            .arg(r)
            .arg("-cf")
            .arg(tar.path())
            .arg("."),
        true,
    );
    let mut import = podman();
    import.arg("import");
    if entry {
        import.args(["--change", "ENTRYPOINT=[\"/entry.sh\"]"]);
    }
    run(
        import
            .args(["--change", &format!("CMD={cmd}")])
            .args([
                "--change",
                "ENV=PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin",
            ])
            .arg(tar.path())
            .arg(tag),
        true,
    );
}

/// The containers podman has for the stack in `dir` (by the label devstack gives them).
pub(crate) fn containers_of(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let filter = format!("label=devstack.stack={}", dir.display());
    let out = podman()
        .args(["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// Removes the containers and volumes of one stack when dropped, even when the test failed.
pub(crate) struct Cleanup {
    dir: std::path::PathBuf,
    volumes: Vec<String>,
}

impl Cleanup {
    pub(crate) fn new(stack: &Stack, volumes: &[&str]) -> Cleanup {
        Cleanup {
            dir: stack.path().to_path_buf(),
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// Remove this volume too.
    pub(crate) fn volume(&mut self, name: &str) {
        self.volumes.push(name.to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names = containers_of(&self.dir);
        if !names.is_empty() {
            let _ = podman().args(["rm", "-f", "-t", "0"]).args(&names).output();
        }
        if !self.volumes.is_empty() {
            let _ = podman()
                .args(["volume", "rm", "-f"])
                .args(&self.volumes)
                .output();
        }
    }
}

/// The full name of the stack's named volume `name`: the stack's name (its folder's, a leading
/// `.` made `x.`) and the name.
fn volume_of(stack: &Stack, name: &str) -> String {
    let folder = stack.path().file_name().unwrap().to_string_lossy();
    let folder = match folder.strip_prefix('.') {
        Some(_) => format!("x{folder}"),
        None => folder.into_owned(),
    };
    format!("{folder}_{name}")
}

/// Wait until `check` holds for the stack's containers; panics with them after `secs`.
fn wait_containers(stack: &Stack, secs: u64, check: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = containers_of(stack.path());
        if check(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "containers now: {now:?}\n{}",
            stack.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ctrl-C to devstack; it must exit (its containers removed) within a minute.
fn stop(stack: &mut Stack) {
    stack.signal(nix::sys::signal::Signal::SIGINT);
    stack.wait_exit(60);
}

#[test]
fn an_image_service_is_probed_called_through_the_proxy_and_leaves_no_container() {
    let image = image();
    let (web, port) = (free_port(), free_port());
    let mut stack = Stack::new(&format!(
        r#"
        [services.web]
        image = "{image}"
        run = "httpd -f -v -p {port} -h /www"
        port = {port}
        [services.web.health]
        http = "/index.html"
        interval = "200ms"

        [services.worker]
        image = "{image}"
        run = ["sh", "-c", "echo greeting=$GREETING; date > /data/seen; trap 'echo worker got TERM; exit 0' TERM; while true; do sleep 1; done"]
        volumes = ["state:/data"]
        env = {{ GREETING = "hi from the table" }}
        [services.worker.health]
        cmd = "test -s /data/seen"
        exec = true
        interval = "200ms"
        "#,
    ));
    let _ = web;
    let _cleanup = Cleanup::new(&stack, &[&volume_of(&stack, "state")]);
    stack.start(&["up", "--headless"]);
    stack.wait_ready(60);
    let worker = service(&stack, "worker");
    let volume = worker["volumes"][0].as_str().unwrap().to_string();
    assert_eq!(volume, volume_of(&stack, "state"));
    assert_eq!(worker["image"], image);
    // Through the proxy: the public port answers with the container's file.
    let (status, body) = http_get(port, "/index.html");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hello from a container"), "{body}");
    // The container's env is the service's own `env`; its output is the service's log.
    stack.wait_log("worker", "greeting=hi from the table", 10);
    // Its traffic is seen like a process's.
    let traffic = run_within(&stack, &["traffic", "--json"], 20);
    let text = String::from_utf8_lossy(&traffic.stdout);
    assert!(text.contains("\"web\""), "{text}");
    // `ps` names the named volume the stack keeps.
    let ps = run_within(&stack, &["ps"], 20);
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(ps.contains(&volume), "{ps}");
    let names = containers_of(stack.path());
    assert_eq!(names.len(), 2, "{names:?}");
    stop(&mut stack);
    assert!(
        stack
            .log_lines("worker")
            .iter()
            .any(|l| l.contains("worker got TERM")),
        "the stop signal reached the container's process"
    );
    assert_eq!(containers_of(stack.path()), Vec::<String>::new());
    // The named volume stays until `down --volumes`.
    let exists = |v: &str| {
        podman()
            .args(["volume", "exists", v])
            .status()
            .unwrap()
            .success()
    };
    assert!(exists(&volume));
    let down = run_within(&stack, &["down", "--volumes"], 60);
    assert!(down.status.success(), "{down:?}");
    assert!(!exists(&volume), "{down:?}");
}

#[test]
fn a_container_that_ignores_term_is_removed_after_its_grace_and_a_crashed_one_restarts() {
    let image = image();
    let mut stack = Stack::new(&format!(
        r#"
        [services.stubborn]
        image = "{image}"
        run = ["sh", "-c", "trap '' TERM; echo stubborn up; while true; do sleep 1; done"]
        grace = "1s"

        [services.crashy]
        image = "{image}"
        run = ["sh", "-c", "echo crashy up; sleep 1; exit 3"]
        "#,
    ));
    let _cleanup = Cleanup::new(&stack, &[]);
    stack.start(&["up", "--headless"]);
    stack.wait_log("stubborn", "stubborn up", 60);
    wait_containers(&stack, 30, |c| c.iter().any(|n| n.ends_with("-stubborn")));
    // A crash is restarted, in a new container of the same name.
    wait_service(&stack, "crashy", 60, |s| s["restarts"].as_u64() >= Some(1));
    let stopped = run_within(&stack, &["stop", "stubborn"], 60);
    assert!(stopped.status.success(), "{stopped:?}");
    // It ignored the stop signal, so it ended only by the SIGKILL its grace's end brings.
    stack.wait_log("stubborn", "stopped (signal KILL)", 10);
    let left = wait_containers(&stack, 30, |c| !c.iter().any(|n| n.ends_with("-stubborn")));
    assert!(!left.iter().any(|n| n.ends_with("-stubborn")));
    stop(&mut stack);
    assert_eq!(containers_of(stack.path()), Vec::<String>::new());
}

#[test]
fn a_devstack_killed_with_sigkill_leaves_containers_the_next_up_removes() {
    let image = image();
    let port = free_port();
    let config = format!(
        r#"
        [services.web]
        image = "{image}"
        run = "httpd -f -p {port} -h /www"
        port = {port}
        [services.web.health]
        tcp = true
        interval = "200ms"
        "#,
    );
    let mut stack = Stack::new(&config);
    let _cleanup = Cleanup::new(&stack, &[]);
    stack.start(&["up", "--headless"]);
    stack.wait_ready(60);
    assert_eq!(containers_of(stack.path()).len(), 1);
    stack.signal(nix::sys::signal::Signal::SIGKILL);
    stack.wait_exit(10);
    // The engine process outlives the hang-up (it passes it on), and so does the container:
    // `down` with nothing running removes it.
    assert_eq!(containers_of(stack.path()).len(), 1);
    let down = run_within(&stack, &["down"], 60);
    let said = String::from_utf8_lossy(&down.stderr).into_owned();
    assert!(said.contains("removed leftover container"), "{said}");
    assert_eq!(containers_of(stack.path()), Vec::<String>::new());
    stack.start(&["up", "--headless"]);
    stack.wait_ready(60);
    stack.signal(nix::sys::signal::Signal::SIGKILL);
    stack.wait_exit(10);
    // The next run removes what the killed one left before it starts its own.
    stack.start(&["up", "--headless"]);
    stack.wait_ready(60);
    let said = stack.output();
    assert!(
        said.contains("removed leftover container") || said.contains("reaped leftover"),
        "{said}"
    );
    assert_eq!(containers_of(stack.path()).len(), 1);
    assert_eq!(http_get(port, "/index.html").0, 200);
    stop(&mut stack);
    assert_eq!(containers_of(stack.path()), Vec::<String>::new());
}

#[test]
fn an_image_that_cannot_be_pulled_fails_the_service_s_build_saying_so() {
    image();
    let mut stack = Stack::new(
        r#"
        [services.db]
        image = "devstack-test/not-here:1"
        port = 5432
        "#,
    );
    let _cleanup = Cleanup::new(&stack, &[]);
    // With nothing else to run, the stack ends at once, saying why.
    stack.start(&["up", "--headless"]);
    let status = stack.wait_exit(60);
    assert!(!status.success());
    let out = stack.output();
    assert!(out.contains("db build-failed"), "{out}");
    stack.wait_log("db", "cannot pull devstack-test/not-here:1", 10);
}

#[test]
fn a_pull_shows_on_the_row_and_its_progress_in_the_log() {
    let image = image();
    // A podman whose pull is slow (as over a network), the real one for the rest.
    let bin = tempfile::tempdir().unwrap();
    let real = crate::decode::program("podman", &[], "podman");
    let fake = bin.path().join("podman");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$1 $2\" in\n\"image exists\") exit 1 ;;\n\"pull \"*) echo \"Copying blob 1 of 1\"; sleep 3; echo \"Writing manifest\"; exit 0 ;;\nesac\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let mut stack = Stack::new(&format!(
        "[services.web]\nimage = \"{image}\"\nrun = [\"sh\", \"-c\", \"echo web container up; sleep 600\"]\n"
    ));
    let _cleanup = Cleanup::new(&stack, &[]);
    stack.env("PATH", &path);
    stack.start(&["up", "--headless"]);
    stack.wait_socket(30);
    let pulling = format!("pulling {image}");
    let web = wait_service(&stack, "web", 30, |s| {
        s["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with(&pulling))
    });
    assert_eq!(web["state"], "building", "{web}");
    stack.wait_log("web", "Copying blob 1 of 1", 10);
    stack.wait_log("web", "web container up", 30);
    stop(&mut stack);
    assert_eq!(containers_of(stack.path()), Vec::<String>::new());
}

#[test]
fn a_container_s_cpu_and_memory_are_its_service_s() {
    use std::io::{Read, Write};
    let image = image();
    let mut stack = Stack::new(&format!(
        "[services.busy]\nimage = \"{image}\"\nrun = [\"sh\", \"-c\", \"while :; do :; done\"]\n"
    ));
    let _cleanup = Cleanup::new(&stack, &[]);
    stack.start(&["up", "--headless"]);
    stack.wait_ready(60);
    // Someone watching (a subscriber), so the stack samples; its messages read and dropped.
    let mut watcher =
        std::os::unix::net::UnixStream::connect(stack.path().join(".devstack/devstack.sock"))
            .unwrap();
    watcher
        .write_all(b"{\"cmd\":\"subscribe\",\"all\":true}\n")
        .unwrap();
    let mut reader = watcher.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while reader.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    // The engine process idles; only the container's spinning shell can make this busy.
    let busy = wait_service(&stack, "busy", 30, |s| {
        s["cpu_percent"].as_f64().is_some_and(|cpu| cpu > 30.0)
    });
    assert!(busy["mem_bytes"].as_u64().is_some_and(|m| m > 0), "{busy}");
    drop(watcher);
    stop(&mut stack);
}

#[test]
fn without_a_container_engine_an_image_service_fails_its_build_saying_so() {
    // A PATH with a shell and no engine.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.path().join("sh")).unwrap();
    let mut stack = Stack::new("[services.db]\nimage = \"postgres:16\"\nport = 5432\n");
    stack.env("PATH", bin.path().to_str().unwrap());
    stack.start(&["up", "--headless"]);
    assert!(!stack.wait_exit(60).success());
    assert!(
        stack.output().contains("db build-failed"),
        "{}",
        stack.output()
    );
    stack.wait_log("db", "neither podman nor docker is on the PATH", 10);
}
