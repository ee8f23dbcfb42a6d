//! File watching through the real binary: edits, bursts, atomic saves, ignores, builds.

use crate::common::{Stack, alive, lines_with};
use nix::sys::signal::Signal;
use std::time::Duration;

/// A stack of one watched service, running; its folder has `src/` and `target/`.
fn watched(extra: &str, build: &str) -> Stack {
    let mut stack = Stack::new(&format!(
        r#"
        [stack]
        debounce = "100ms"
        [services.app]
        build = "{build}"
        run = "echo app=$$; sleep 300"
        watch = ["src/**"]
        {extra}
        "#
    ));
    for dir in ["src/deep", "target/debug", "node_modules/x", "generated"] {
        std::fs::create_dir_all(stack.path().join(dir)).unwrap();
    }
    std::fs::write(stack.path().join("src/main.rs"), "fn main() {}").unwrap();
    stack.start(&["up"]);
    stack.wait_number("app=", 20);
    stack
}

fn write(stack: &Stack, file: &str, text: &str) {
    let path = stack.path().join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn count(stack: &Stack, needle: &str) -> usize {
    lines_with(&stack.output(), needle).len()
}

/// Wait for `n` lines with `needle`, then a quiet second in which no more arrive.
fn settle_at(stack: &Stack, needle: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count(stack, needle) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "waiting for {n} × `{needle}`:\n{}",
            stack.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        count(stack, needle),
        n,
        "exactly {n} × `{needle}`:\n{}",
        stack.output()
    );
}

fn stop(mut stack: Stack) {
    stack.signal(Signal::SIGINT);
    stack.wait_exit(20);
}

#[test]
fn an_edit_triggers_exactly_one_build_and_restart() {
    let stack = watched("", "echo building");
    write(&stack, "src/main.rs", "fn main() { println!(\"hi\"); }");
    settle_at(&stack, "build started", 2);
    assert_eq!(count(&stack, "| app="), 2, "restarted once");
    assert!(stack.output().contains("rebuilding: src/main.rs changed"));
    stop(stack);
}

#[test]
fn a_burst_of_fifty_writes_triggers_one_build() {
    let stack = watched("", "echo building");
    for i in 0..50 {
        write(
            &stack,
            &format!("src/deep/f{}.rs", i % 5),
            &format!("// {i}"),
        );
    }
    settle_at(&stack, "build started", 2);
    stop(stack);
}

#[test]
fn an_atomic_save_triggers() {
    let stack = watched("", "echo building");
    write(&stack, "src/.main.rs.tmp1234", "fn main() { /* saved */ }");
    std::fs::rename(
        stack.path().join("src/.main.rs.tmp1234"),
        stack.path().join("src/main.rs"),
    )
    .unwrap();
    settle_at(&stack, "build started", 2);
    assert!(
        stack.output().contains("rebuilding: src/main.rs changed"),
        "{}",
        stack.output()
    );
    stop(stack);
}

#[test]
fn ignored_paths_trigger_nothing() {
    let stack = watched(r#"ignore = ["**/*.log"]"#, "echo building");
    write(&stack, ".gitignore", "src/gen/\n");
    write(&stack, ".devstackignore", "src/scratch.rs\n");
    std::thread::sleep(Duration::from_millis(500));
    let builds = count(&stack, "build started");
    write(&stack, "src/gen/out.rs", "x");
    write(&stack, "src/scratch.rs", "x");
    write(&stack, "src/debug.log", "x");
    write(&stack, "target/debug/app.rs", "x");
    write(&stack, "src/target/x.rs", "x");
    write(&stack, "src/.main.rs.swp", "x");
    write(&stack, "src/main.rs~", "x");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        count(&stack, "build started"),
        builds,
        "an ignored path triggered:\n{}",
        stack.output()
    );
    // The watcher is alive: a real edit still builds.
    write(&stack, "src/main.rs", "fn main() { /* real */ }");
    settle_at(&stack, "build started", builds + 1);
    stop(stack);
}

#[test]
fn a_change_during_a_build_queues_exactly_one_more() {
    let stack = watched("", "echo building; sleep 1");
    write(&stack, "src/main.rs", "// 1");
    stack.wait_for("rebuilding: src/main.rs changed", 20);
    std::thread::sleep(Duration::from_millis(300));
    write(&stack, "src/main.rs", "// 2");
    std::thread::sleep(Duration::from_millis(300));
    write(&stack, "src/deep/x.rs", "// 3");
    settle_at(&stack, "build started", 3);
    assert!(
        stack
            .output()
            .contains("a build is running; one more will follow it"),
        "{}",
        stack.output()
    );
    stop(stack);
}

#[test]
fn a_failed_build_keeps_the_old_process_running() {
    let stack = watched("", "test ! -f broken || { echo error: broken; exit 1; }");
    let old = stack.wait_number("app=", 5);
    std::fs::write(stack.path().join("broken"), "").unwrap();
    // `broken` sits beside src/, unwatched; the edit below triggers the build.
    write(&stack, "src/main.rs", "fn main() { broken }");
    stack.wait_for(
        "build failed (code 1); the previous process keeps running",
        20,
    );
    assert!(alive(old));
    assert_eq!(count(&stack, "| app="), 1);
    stop(stack);
}

#[test]
fn manual_mode_ignores_edits_until_a_rebuild() {
    let stack = watched("", "echo building");
    let out = stack.command(&["watch", "app", "manual"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write(&stack, "src/main.rs", "// edited");
    stack.wait_for(
        "src/main.rs changed (rebuild on change is off: rebuild by hand)",
        20,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&stack, "build started"), 1);
    let out = stack.command(&["rebuild", "app"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(count(&stack, "build started"), 2);
    stop(stack);
}

#[test]
fn a_build_writing_into_its_own_watched_files_does_not_loop() {
    // Different content every time, so content hashes can't tell; the loop guard must.
    let stack = watched("", "date +%N > src/gen.rs; sleep 0.2");
    std::thread::sleep(Duration::from_secs(4));
    let out = stack.output();
    assert!(
        out.contains("the build seems to write into its own watched files"),
        "{out}"
    );
    let builds = count(&stack, "build started");
    assert!(builds <= 5, "{builds} builds:\n{out}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        count(&stack, "build started"),
        builds,
        "still looping:\n{}",
        stack.output()
    );
    stop(stack);
}

#[test]
fn past_the_inotify_limit_the_rest_is_polled_and_the_user_told() {
    let stack = Stack::new(
        r#"
        [stack]
        debounce = "100ms"
        [services.app]
        build = "echo building"
        run = "echo app=$$; sleep 300"
        watch = ["src/**"]
        "#,
    );
    std::fs::create_dir_all(stack.path().join("src/deep")).unwrap();
    let mut cmd = stack.command(&["up"]);
    cmd.env("DEVSTACK_MAX_WATCHES", "1");
    // Started by hand to set the variable; the Stack still cleans up what it finds.
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let sink = out.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let wait = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !out.lock().unwrap().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "no `{needle}`:\n{}",
                out.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("app=");
    wait("the inotify watch limit is reached after 1 folder; polling the rest");
    wait("fs.inotify.max_user_watches");
    write(&stack, "src/deep/polled.rs", "// seen by polling");
    wait("rebuilding: src/deep/polled.rs changed");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGINT,
    )
    .unwrap();
    child.wait().unwrap();
}

#[test]
fn a_dependent_that_asks_restarts_when_its_dependency_is_rebuilt() {
    let mut stack = Stack::new(
        r#"
        [stack]
        debounce = "100ms"
        [services.lib]
        build = "echo building"
        run = "echo lib=$$; sleep 300"
        watch = ["lib/**"]
        [services.api]
        run = "echo api=$$; sleep 300"
        depends_on = { lib = { condition = "started", restart = true } }
        [services.web]
        run = "echo web=$$; sleep 300"
        depends_on = ["lib"]
        "#,
    );
    std::fs::create_dir_all(stack.path().join("lib")).unwrap();
    stack.start(&["up"]);
    stack.wait_number("api=", 20);
    stack.wait_number("web=", 20);
    write(&stack, "lib/x.rs", "// changed");
    stack.wait_for(
        "api | [devstack] restarting: dependency `lib` was rebuilt",
        20,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count(&stack, "| api=") < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", stack.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        count(&stack, "| web="),
        1,
        "web did not ask to be restarted"
    );
    stack.signal(Signal::SIGINT);
    stack.wait_exit(20);
}

#[test]
fn several_saves_during_one_slow_build_are_not_a_loop() {
    let stack = watched("", "echo building; sleep 2");
    write(&stack, "src/main.rs", "// 0");
    stack.wait_for("rebuilding: src/main.rs changed", 20);
    for i in 1..=4 {
        std::thread::sleep(Duration::from_millis(400));
        write(&stack, "src/main.rs", &format!("// {i}"));
    }
    settle_at(&stack, "build started", 3);
    let out = stack.output();
    assert!(
        !out.contains("seems to write into its own watched files"),
        "{out}"
    );
    stop(stack);
}

#[test]
fn a_service_whose_cwd_is_beside_the_stack_folder_is_watched_there() {
    // <tmp>/stack/devstack.toml, and the service's sources in <tmp>/lib.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("stack");
    let lib = tmp.path().join("lib");
    for d in [dir.join("src"), lib.join("src/gen")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(lib.join("src/x.rs"), "// 0").unwrap();
    std::fs::write(lib.join(".gitignore"), "src/gen/\n").unwrap();
    // The process goes back into the stack's folder, where the test's cleanup looks for it.
    std::fs::write(
        dir.join("devstack.toml"),
        format!(
            r#"
            [stack]
            debounce = "100ms"
            [services.app]
            cwd = "../lib"
            build = "echo building"
            run = "echo app=$$; cd '{}' && exec sleep 300"
            watch = ["src/**"]
            "#,
            dir.display()
        ),
    )
    .unwrap();
    let mut stack = Stack::at(&dir);
    stack.start(&["up"]);
    stack.wait_number("app=", 20);
    stack.wait_for(" for changes", 20);
    // Its own tree's ignore rules hold.
    std::fs::write(lib.join("src/gen/out.rs"), "// generated").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(count(&stack, "build started"), 1, "{}", stack.output());
    std::fs::write(lib.join("src/x.rs"), "// 1").unwrap();
    stack.wait_for("rebuilding: ../lib/src/x.rs changed", 20);
    settle_at(&stack, "build started", 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count(&stack, "| app=") < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", stack.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(stack);
}

#[test]
fn one_watched_folder_is_one_folder() {
    let mut stack = Stack::new(
        r#"
        [services.app]
        run = "echo app=$$; sleep 300"
        watch = ["*.rs"]
        "#,
    );
    stack.start(&["up"]);
    stack.wait_for("watching 1 folder for changes", 20);
    stop(stack);
}

#[test]
fn only_the_folders_of_the_watching_services_are_watched() {
    // The demo's shape: the services live in a subfolder of a folder with many others.
    let mut stack = Stack::new(
        r#"
        [stack]
        debounce = "100ms"
        [services.app]
        cwd = "svc"
        run = "echo app=$$; sleep 300"
        watch = ["*.rs"]
        "#,
    );
    for dir in ["docs/a", "docs/b", "tests", "benches", "svc/src", "svc/gen"] {
        std::fs::create_dir_all(stack.path().join(dir)).unwrap();
    }
    // The stack folder's .gitignore still applies inside the service's folder.
    write(&stack, ".gitignore", "gen/\n");
    stack.start(&["up"]);
    stack.wait_for("watching 2 folders for changes", 20);
    stack.wait_number("app=", 20);
    write(&stack, "svc/gen/out.rs", "x");
    write(&stack, "svc/src/new/x.rs", "x");
    stack.wait_for("svc/src/new/x.rs changed", 20);
    assert!(!stack.output().contains("gen/out.rs"), "{}", stack.output());
    stop(stack);
}
