//! The control socket's wire, through the types server and CLI share: every request answered as
//! its `Answer`, streams as `Message`s, and `hello` with its protocol version.

use crate::common::Stack;
use devstack::control::client::Client;
use devstack::control::{Answer, Event, LineStream, Message, PROTOCOL, Request, Response};
use devstack::engine::{ServiceView, State};
use nix::sys::signal::Signal;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const STACK: &str = r#"
[services.db]
run = "echo db up; sleep 300"
[services.api]
build = "echo built"
run = "echo api up; while :; do echo tick; sleep 0.2; done"
watch = ["src/**"]
depends_on = ["db"]
"#;

fn socket(stack: &Stack) -> PathBuf {
    stack.path().join(".devstack/devstack.sock")
}

fn client(stack: &Stack) -> Client {
    Client::connect(&socket(stack)).unwrap()
}

fn running() -> Stack {
    let mut stack = Stack::new(STACK);
    stack.start(&["up", "--headless"]);
    stack.wait_socket(20);
    stack
}

fn service(answer: Answer) -> ServiceView {
    match answer {
        Answer::Service { service } => (*service).into(),
        other => panic!("not a service's view: {other:?}"),
    }
}

/// A `subscribe` (with `all` or not) on a connection of its own: it and the views it answered.
fn subscribed(stack: &Stack, all: bool) -> (Client, Vec<ServiceView>) {
    let mut c = client(stack);
    c.set_timeout(Some(Duration::from_secs(30))).unwrap();
    c.hello().unwrap();
    match c.call(&Request::Subscribe { all, traffic: None }).unwrap() {
        Answer::Services { services } => (c, services.into_iter().map(Into::into).collect()),
        other => panic!("not the services: {other:?}"),
    }
}

fn act(c: &mut Client, request: Request) -> ServiceView {
    service(c.call(&request).unwrap())
}

/// Wait until `ps` shows `name` in `state`.
fn until_state(c: &mut Client, name: &str, state: State) -> ServiceView {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = c
            .ps()
            .unwrap()
            .into_iter()
            .find(|v| v.name == name)
            .unwrap();
        if view.state == state {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never got {state}: {view:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn every_request_round_trips_through_the_shared_types() {
    let mut stack = running();
    let mut c = client(&stack);

    // hello
    let hello = c.hello().unwrap();
    assert_eq!(hello.version, PROTOCOL);
    assert_eq!(hello.devstack, env!("CARGO_PKG_VERSION"));

    // ps
    let views = c.ps().unwrap();
    let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["db", "api"]);
    let api = until_state(&mut c, "api", State::Running);
    assert_eq!(api.health, None, "no probe, no health");
    assert_eq!(api.auto_rebuild, Some(true));

    let api_named = || "api".to_string();
    // stop, start, restart, rebuild, kill: each answers with the view once it took effect.
    let stopped = act(
        &mut c,
        Request::Stop {
            service: api_named(),
            wait: true,
        },
    );
    assert_eq!((stopped.state, stopped.pid), (State::Stopped, None));
    let started = act(
        &mut c,
        Request::Start {
            service: api_named(),
            wait: true,
        },
    );
    assert_eq!(started.state, State::Running);
    assert!(started.ready);
    let restarted = act(
        &mut c,
        Request::Restart {
            service: api_named(),
            wait: true,
        },
    );
    assert_eq!(restarted.state, State::Running);
    assert_ne!(restarted.pid, started.pid);
    let rebuilt = act(
        &mut c,
        Request::Rebuild {
            service: api_named(),
            wait: true,
        },
    );
    assert_eq!(rebuilt.state, State::Running);
    assert!(rebuilt.spawns > restarted.spawns, "{rebuilt:?}");
    let killed = act(
        &mut c,
        Request::Kill {
            service: api_named(),
            wait: true,
        },
    );
    assert_ne!(killed.pid, rebuilt.pid);

    // An action without waiting answers at once, with nothing more.
    assert_eq!(
        c.call(&Request::Start {
            service: api_named(),
            wait: false
        })
        .unwrap(),
        Answer::Done {}
    );
    until_state(&mut c, "api", State::Running);

    // restart-all
    match c.call(&Request::RestartAll { wait: true }).unwrap() {
        Answer::Services { services } => {
            assert_eq!(services.len(), 2);
            assert!(services.iter().all(|v| v.ready), "{services:?}");
        }
        other => panic!("not the services: {other:?}"),
    }

    // watch
    let watched = act(
        &mut c,
        Request::Watch {
            service: api_named(),
            auto: false,
        },
    );
    assert_eq!(watched.auto_rebuild, Some(false));

    // traffic: nothing is proxied here (tests/traffic_stack.rs has a stack that is).
    match c
        .call(&Request::Traffic {
            recent: 5,
            follow: false,
        })
        .unwrap()
    {
        Answer::Traffic { traffic, recent } => {
            assert!(traffic.edges.is_empty() && traffic.services.is_empty());
            assert!(recent.is_empty());
        }
        other => panic!("not traffic: {other:?}"),
    }

    // logs without follow: the tail, typed.
    let tail = c.logs(&["api".to_string()], 500, false).unwrap();
    assert!(tail.iter().all(|l| l.service == "api"));
    assert!(
        tail.iter()
            .any(|l| l.stream == LineStream::Out && l.text == "api up"),
        "{tail:?}"
    );
    assert!(
        tail.iter()
            .any(|l| l.stream == LineStream::Build && l.text == "built"),
        "{tail:?}"
    );
    // The connection still serves requests after a tail.
    assert_eq!(c.ps().unwrap().len(), 2);

    // logs with follow: the tail, then each new line as a `Message::Line`.
    let mut follower = client(&stack);
    follower.hello().unwrap();
    let tail = follower.logs(&["api".to_string()], 1, true).unwrap();
    assert!(tail.len() <= 1);
    let mut ticks = 0;
    while ticks < 3 {
        match follower.next_message().unwrap() {
            Some(Message::Line { line }) => {
                assert_eq!(line.service, "api");
                ticks += usize::from(line.text == "tick");
            }
            other => panic!("not a line: {other:?}"),
        }
    }

    // subscribe: the views, then an event per change, typed.
    let (mut subscriber, services) = subscribed(&stack, false);
    assert_eq!(services.len(), 2);
    act(
        &mut c,
        Request::Stop {
            service: "db".into(),
            wait: true,
        },
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match subscriber.next_message().unwrap() {
            Some(Message::Event {
                event: Event::State,
                service,
            }) if service.name == "db" && service.state == State::Stopped => break,
            Some(Message::Event { .. }) => {}
            other => panic!("not an event: {other:?}"),
        }
        assert!(Instant::now() < deadline, "db never showed stopped");
    }

    // down: answered, then the stack ends.
    assert_eq!(c.call(&Request::Down).unwrap(), Answer::Done {});
    assert!(stack.wait_exit(60).success());
}

/// Send a line by hand; the answer as the shared type.
fn by_hand(conn: &mut (BufReader<UnixStream>, UnixStream), line: &str) -> Response {
    conn.1.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    conn.0.read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

#[test]
fn a_hello_of_another_version_is_refused_clearly_and_hello_is_optional() {
    let stack = running();
    let s = UnixStream::connect(socket(&stack)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut conn = (BufReader::new(s.try_clone().unwrap()), s);

    // Without hello, a request is read as the current version (socat, scripts).
    match by_hand(&mut conn, r#"{"cmd":"ps"}"#) {
        Response::Ok(Answer::Services { services }) => assert_eq!(services.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        by_hand(&mut conn, r#"{"cmd":"hello","version":999}"#),
        Response::error(format!(
            "this stack speaks protocol {PROTOCOL}; this devstack speaks 999: use the same devstack version (stack pid {})",
            stack.pid()
        ))
    );
    assert_eq!(
        by_hand(
            &mut conn,
            &format!(r#"{{"cmd":"hello","version":{PROTOCOL}}}"#)
        ),
        Response::Ok(Answer::Hello {
            version: PROTOCOL,
            devstack: env!("CARGO_PKG_VERSION").into()
        })
    );
    stack.signal(Signal::SIGINT);
}

/// A socket in a stack's folder that answers every line with `answer`, as a devstack of another
/// version would; what it heard.
fn impostor(stack: &Stack, answer: &'static str) -> std::thread::JoinHandle<Vec<String>> {
    std::fs::create_dir_all(stack.path().join(".devstack")).unwrap();
    let listener = UnixListener::bind(socket(stack)).unwrap();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut writer = conn;
        let mut heard = Vec::new();
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            heard.push(line.trim_end().to_string());
            line.clear();
            if writer.write_all(format!("{answer}\n").as_bytes()).is_err() {
                break;
            }
        }
        heard
    })
}

#[test]
fn the_cli_says_clearly_when_the_stack_speaks_another_protocol() {
    let stack = Stack::new(STACK);
    let heard = impostor(
        &stack,
        r#"{"ok":false,"error":"this stack speaks protocol 7; this devstack speaks 1: use the same devstack version (stack pid 4242)"}"#,
    );
    let out = stack.command(&["ps"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        "devstack: error: this stack speaks protocol 7; this devstack speaks 1: use the same devstack version (stack pid 4242)"
    );
    assert!(out.stdout.is_empty());
    // The CLI said hello first, and nothing else after the refusal.
    assert_eq!(
        heard.join().unwrap(),
        [format!(r#"{{"cmd":"hello","version":{PROTOCOL}}}"#)]
    );
}

#[test]
fn the_cli_says_clearly_when_the_stack_predates_hello() {
    let stack = Stack::new(STACK);
    // What a devstack from before `hello` answers to it.
    let _heard = impostor(
        &stack,
        r#"{"ok":false,"error":"bad request: unknown variant `hello`, expected one of `ps`, `start`, `stop` at line 1 column 15"}"#,
    );
    let out = stack.command(&["restart", "api"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("it is an older devstack") && err.contains("use the same devstack version"),
        "{err}"
    );
}

/// `subscribe` with `all` sends every change of a view (here a restart's countdown, second by
/// second) as an `update`; a plain `subscribe` sends changes of state only.
#[test]
fn subscribe_all_sends_countdowns_as_updates_and_plain_subscribe_only_states() {
    let mut stack = Stack::new("[services.flaky]\nrun = \"sleep 0.3; exit 1\"\n");
    stack.start(&["up", "--headless"]);
    stack.wait_socket(20);
    let subscribe = |all| {
        let (c, services) = subscribed(&stack, all);
        assert_eq!(services.len(), 1);
        c
    };
    let (mut every, mut plain) = (subscribe(true), subscribe(false));
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        match every.next_message().unwrap() {
            Some(Message::Event {
                event: Event::Update,
                service,
            }) => {
                assert_eq!(service.state, State::Restarting);
                assert!(service.detail.starts_with("restarting in "), "{service:?}");
                break;
            }
            Some(Message::Event {
                event: Event::State,
                ..
            }) => {}
            other => panic!("not an event: {other:?}"),
        }
        assert!(Instant::now() < deadline, "no update came");
    }
    // Meanwhile the plain subscriber heard of states only, as many as went by.
    let mut states = 0;
    while states < 4 {
        match plain.next_message().unwrap() {
            Some(Message::Event {
                event: Event::State,
                service,
            }) => {
                assert_eq!(service.name, "flaky");
                states += 1;
            }
            other => panic!("not a state event: {other:?}"),
        }
    }
}

/// CPU and memory are sampled while someone wants them (here a subscriber), and come to it as
/// updates: a busy service shows its CPU, a quiet one 0%, both their memory. Nobody asked
/// before: `ps` showed none.
#[test]
fn a_subscriber_gets_cpu_and_memory_as_they_change() {
    let mut stack = Stack::new(
        "[services.quiet]\nrun = \"sleep 300\"\n[services.busy]\nrun = \"while :; do :; done\"\n",
    );
    stack.start(&["up", "--headless"]);
    stack.wait_socket(20);
    let mut c = client(&stack);
    until_state(&mut c, "busy", State::Running);
    until_state(&mut c, "quiet", State::Running);
    assert!(c.ps().unwrap().iter().all(|v| v.cpu_percent.is_none()));

    let (mut sub, mut views) = subscribed(&stack, true);
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = |views: &[ServiceView], name: &str| {
        let v = views.iter().find(|v| v.name == name).unwrap();
        (v.cpu_percent, v.mem_bytes)
    };
    loop {
        let (busy, quiet) = (shown(&views, "busy"), shown(&views, "quiet"));
        if busy.0.is_some_and(|cpu| cpu > 20.0) && quiet.0 == Some(0.0) {
            assert!(busy.1.unwrap() > 0 && quiet.1.unwrap() > 0);
            break;
        }
        assert!(Instant::now() < deadline, "busy {busy:?}, quiet {quiet:?}");
        match sub.next_message().unwrap() {
            Some(Message::Event { service, .. }) => {
                let i = views.iter().position(|v| v.name == service.name).unwrap();
                views[i] = service.into();
            }
            other => panic!("not an event: {other:?}"),
        }
    }
    // And `ps` shows them too, now that they are sampled.
    assert!(c.ps().unwrap().iter().all(|v| v.mem_bytes.is_some()));
}
