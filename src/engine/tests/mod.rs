//! The engine on a fake spawner and tokio's paused clock: every test starts nothing, waits for
//! nothing real, and says which behaviour it pins down.

mod builds;
mod fake;
mod health;
mod restarts;
mod rollout;
mod start_stop;
mod stuck_disk;
mod tickets;
mod views;

use super::{
    Change, Command, Engine, Handle, Options, Outcome, ServiceId, ServiceView, TicketOutcome,
};
pub use super::{HealthState, State};
use crate::config::{self, Config};
use crate::ignored::Ignore;
use crate::logs::LogHub;
pub use crate::process::Exit;
use fake::Fake;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

pub const CRASH: Exit = Exit::Code(1);
pub const CLEAN: Exit = Exit::Code(0);

pub struct Rig {
    pub fake: Arc<Fake>,
    pub handle: Handle,
    cfg: Arc<Config>,
    logs: Arc<LogHub>,
    engine: Option<JoinHandle<Outcome>>,
    dir: PathBuf,
}

/// An engine on `toml` (every autostart service wanted), running.
pub fn rig(toml: &str) -> Rig {
    rig_with(toml, &[], false)
}

/// An engine on `toml` whose proxied services get private ports (from 41000 up, in file
/// order: a blue-green service its two in turn), as a stack run with a proxy has.
pub fn rig_proxied(toml: &str) -> Rig {
    rig_cfg(&[], false, |file| {
        let next = std::cell::Cell::new(41000);
        config::parse_with(file, toml, &|_| None, &|| {
            next.set(next.get() + 1);
            Some(next.get() - 1)
        })
    })
}

/// An engine on `toml` that starts only `only` (and what they depend on).
pub fn rig_with(toml: &str, only: &[&str], exit_when_settled: bool) -> Rig {
    rig_cfg(only, exit_when_settled, |file| {
        config::parse(file, toml, &|_| None)
    })
}

/// An engine on the config `parse` reads (given its file, in a folder of its own) that starts
/// only `only` (and what they depend on).
fn rig_cfg(
    only: &[&str],
    exit_when_settled: bool,
    parse: impl FnOnce(&Path) -> Result<Config, config::ConfigErrors>,
) -> Rig {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "devstack-engine-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a temp folder");
    let cfg = parse(&dir.join(config::FILE_NAME)).unwrap_or_else(|e| panic!("{e}"));
    let cfg = Arc::new(cfg);
    let logs = Arc::new(LogHub::new(&dir.join("logs"), &cfg.names(), None, 1000));
    let fake = Arc::new(Fake::default());
    let only = only
        .iter()
        .map(|n| cfg.id_of(n).expect("a service"))
        .collect();
    let (engine, handle) = Engine::new(
        cfg.clone(),
        logs.clone(),
        Options {
            only,
            exit_when_settled,
            sample_usage: false,
            spawner: fake.clone(),
        },
    );
    Rig {
        fake,
        handle,
        cfg,
        logs,
        engine: Some(tokio::spawn(engine.run())),
        dir,
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(engine) = &self.engine {
            engine.abort();
        }
        std::fs::remove_dir_all(&self.dir).or_say("a temp folder left behind is harmless");
    }
}

impl Rig {
    pub fn view(&self, name: &str) -> ServiceView {
        self.handle.views().borrow()[self.id(name)].clone()
    }

    pub fn state(&self, name: &str) -> State {
        self.view(name).state
    }

    pub fn detail(&self, name: &str) -> String {
        self.view(name).detail
    }

    /// The service's log lines, devstack's own and its output.
    pub fn log(&self, name: &str) -> Vec<String> {
        // Logged lines are written (and so buffered) by a writer thread.
        self.logs.flush(Duration::from_secs(10));
        self.logs
            .tail(self.id(name), 10_000)
            .iter()
            .map(|l| l.text.clone())
            .collect()
    }

    pub fn logged(&self, name: &str, needle: &str) -> bool {
        self.log(name).iter().any(|l| l.contains(needle))
    }

    pub fn id(&self, name: &str) -> ServiceId {
        self.cfg
            .id_of(name)
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    /// Apply a command by service name, and wait until the engine has.
    pub async fn send(&self, cmd: fn(ServiceId) -> Command, name: &str) {
        assert!(self.handle.apply(cmd(self.id(name))).await);
    }

    pub async fn apply(&self, cmd: Command) {
        assert!(self.handle.apply(cmd).await);
    }

    /// Send a command with a ticket: how it ends, awaited on a task of its own.
    pub fn ticket(&self, cmd: Command) -> JoinHandle<Option<TicketOutcome>> {
        tokio::spawn(self.handle.ticket(cmd).expect("the engine runs").wait())
    }

    /// Wait for `only` (every wanted service when empty) to be ready, on a task of its own.
    pub fn ready(&self, only: &[&str]) -> JoinHandle<Option<TicketOutcome>> {
        let only = only.iter().map(|n| self.id(n)).collect();
        tokio::spawn(self.handle.ready(only).expect("the engine runs").wait())
    }

    /// Let the engine handle everything sent to it so far, without moving the clock.
    pub async fn settle(&self) {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    /// Wait until `check` holds (at most 10 minutes of the paused clock): looked at again each
    /// time the views or the fake change, the clock jumping to the engine's next timer while
    /// nothing else happens (and by a second at most, for what shows only in the logs).
    pub async fn until(&self, what: &str, check: impl Fn(&Rig) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        let mut views = self.handle.views();
        loop {
            self.settle().await;
            views.borrow_and_update();
            if check(self) {
                return;
            }
            // Enabled after the check (whose reads touch the fake too), with no await between.
            let touched = self.fake.touched();
            tokio::pin!(touched);
            touched.as_mut().enable();
            assert!(
                tokio::time::Instant::now() < deadline,
                "never: {what}\nviews: {:#?}\nevents: {:#?}",
                self.handle.views().borrow(),
                self.fake.events()
            );
            tokio::select! {
                _ = touched => {}
                _ = views.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Wait until `name` is in `state`.
    pub async fn until_state(&self, name: &str, state: State) {
        self.until(&format!("{name} is {state}"), |r| r.state(name) == state)
            .await;
    }

    /// Wait until the engine has ended, and say how.
    pub async fn ended(&mut self) -> Outcome {
        let engine = self.engine.take().expect("the engine runs");
        tokio::time::timeout(Duration::from_secs(600), engine)
            .await
            .expect("the engine ends")
            .expect("the engine task ends cleanly")
    }

    /// The live process of `cmd` exits, and the engine has seen it.
    pub async fn exit(&self, cmd: &str, exit: Exit) {
        self.fake.exit(cmd, exit);
        self.settle().await;
    }

    pub async fn probe(&self, service: &str, result: Result<(), &str>) {
        assert!(self.fake.probe(service, result), "{service} has no probe");
        self.settle().await;
    }
}

/// The time between consecutive spawns of `cmd`, in whole milliseconds.
pub fn gaps(rig: &Rig, cmd: &str) -> Vec<u128> {
    rig.fake
        .spawn_times(cmd)
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect()
}
