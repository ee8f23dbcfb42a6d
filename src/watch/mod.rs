//! File watching: one watcher over the `cwd` of every service that watches (none inside
//! another; not the rest of the stack's folder), debounced; which
//! changes matter to which service (`watch` and `ignore` globs, `.gitignore`s, `.devstackignore`,
//! built-in ignores); and whether a change changed anything (content hashes): `rules.rs`.
//!
//! Directories are walked with the ignore rules and watched one by one, so an ignored `target/`
//! or `node_modules/` costs no inotify watch. New directories get watches as they appear. When
//! the inotify limit is reached, the rest is polled, and the user is told how to raise it.

pub mod config_edits;
mod rules;

use crate::config::{Config, ServiceId};
use crate::format::plural;
use crate::ignored::Ignore;
use crate::sync::Locked;
use notify::{Event, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use rules::{IGNORE_FILES, IGNORED_DIRS, Rules, ServiceRules, trees};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why an event a watcher could not hand on does not matter: its receiver has gone, at the end.
const LEFT: &str = "the watching has ended; the watcher goes a moment later";

/// What the watcher tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These files of this service changed (paths relative to the stack's folder); `at`: when
    /// the first of them was seen.
    Files {
        service: ServiceId,
        paths: Vec<String>,
        at: Instant,
    },
    /// Something to say to the user about watching (limits, fallbacks), for these services.
    Note {
        services: Vec<ServiceId>,
        text: String,
    },
}

/// The running watcher; dropping it stops watching.
pub struct WatchHandle {
    _watchers: Arc<Mutex<Watchers>>,
    /// inotify watches in use (one per watched directory).
    pub watches: usize,
}

struct Watchers {
    native: RecommendedWatcher,
    /// One polling watcher for every folder past the inotify limit.
    polling: Option<PollWatcher>,
    tx: Sender<notify::Result<Event>>,
    rules: Arc<Mutex<Rules>>,
    watched: usize,
    polled: usize,
    said_limit: bool,
    notes: Vec<Change>,
}

impl Watchers {
    /// Watch `dir` and the folders under it that the rules don't ignore.
    fn add_tree(&mut self, dir: &Path) {
        let rules = self.rules.clone();
        let trees = rules.locked().trees.clone();
        let walker = ignore::WalkBuilder::new(dir)
            .hidden(false)
            .parents(true)
            .git_ignore(true)
            .git_exclude(true)
            .require_git(false)
            .add_custom_ignore_filename(".devstackignore")
            .filter_entry(|e| !IGNORED_DIRS.contains(&e.file_name().to_string_lossy().as_ref()))
            .build();
        for entry in walker.flatten() {
            let path = entry.path();
            if !entry.file_type().is_some_and(|t| t.is_dir()) {
                continue;
            }
            for name in IGNORE_FILES {
                rules.locked().load_ignore_file(&path.join(name));
            }
            if trees.iter().any(|t| t == path) {
                rules.locked().load_exclude(path);
            }
            self.watch_dir(path);
        }
    }

    fn watch_dir(&mut self, dir: &Path) {
        // DEVSTACK_MAX_WATCHES lowers the limit, to exercise the fallback without touching the
        // system's setting.
        let limited = std::env::var("DEVSTACK_MAX_WATCHES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|max| self.watched >= max);
        let result = if limited {
            Err(notify::Error::new(notify::ErrorKind::MaxFilesWatch))
        } else {
            self.native.watch(dir, RecursiveMode::NonRecursive)
        };
        self.rules.locked().dirs.insert(dir.to_path_buf());
        match result {
            Ok(()) => self.watched += 1,
            Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                if !self.said_limit {
                    self.said_limit = true;
                    self.notes.push(Change::Note {
                        services: Vec::new(),
                        text: format!(
                            "the inotify watch limit is reached after {}; polling the rest every second instead. Raise it: sudo sysctl fs.inotify.max_user_watches=524288",
                            plural(self.watched, "folder")
                        ),
                    });
                }
                if self.polling.is_none() {
                    let tx = self.tx.clone();
                    let config =
                        notify::Config::default().with_poll_interval(Duration::from_secs(1));
                    self.polling = PollWatcher::new(move |e| tx.send(e).or_say(LEFT), config).ok();
                }
                if let Some(poll) = &mut self.polling
                    && poll.watch(dir, RecursiveMode::NonRecursive).is_ok()
                {
                    self.polled += 1;
                }
            }
            Err(_) => {} // gone already, or unreadable: nothing to watch there
        }
    }
}

/// Why files can't be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("a pattern is not valid: {0}")]
    Pattern(#[from] globset::Error),
    #[error("{0}")]
    Watcher(#[from] notify::Error),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Start watching for every service that has `watch` globs. `report` gets every change, on the
/// watcher's own thread. None when no service watches anything.
pub fn start(
    cfg: &Config,
    report: impl Fn(Change) + Send + 'static,
) -> Result<Option<WatchHandle>, WatchError> {
    let mut services = ServiceRules::of(cfg)?;
    if services.is_empty() {
        return Ok(None);
    }
    let root = cfg.root.canonicalize().unwrap_or_else(|_| cfg.root.clone());
    for s in &mut services {
        s.cwd = s.cwd.canonicalize().unwrap_or_else(|_| s.cwd.clone());
    }
    // Only the folders of the services that watch: a stack whose services live in a subfolder
    // (the demo's `fixtures/demo`) costs that subfolder's watches, not the whole repository's.
    let trees = trees(services.iter().map(|s| s.cwd.clone()));
    let rules = Arc::new(Mutex::new(Rules::new(root, trees.clone(), services)));
    let (tx, rx) = channel();
    let native_tx = tx.clone();
    let native = notify::recommended_watcher(move |e| native_tx.send(e).or_say(LEFT))?;
    let watchers = Arc::new(Mutex::new(Watchers {
        native,
        polling: None,
        tx,
        rules: rules.clone(),
        watched: 0,
        polled: 0,
        said_limit: false,
        notes: Vec::new(),
    }));
    let watches = {
        let mut w = watchers.locked();
        for tree in &trees {
            w.add_tree(tree);
        }
        for note in w.notes.drain(..) {
            report(note);
        }
        (w.watched, w.polled)
    };
    let (watches, polled) = watches;
    report(Change::Note {
        services: Vec::new(),
        text: if polled > 0 {
            format!(
                "watching {} for changes ({polled} of them by polling)",
                plural(watches + polled, "folder")
            )
        } else {
            format!("watching {} for changes", plural(watches, "folder"))
        },
    });
    let debounce = cfg.debounce;
    let thread_watchers = watchers.clone();
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || debounce_loop(rx, debounce, rules, thread_watchers, report))?;
    Ok(Some(WatchHandle {
        _watchers: watchers,
        watches,
    }))
}

/// Gather events until `quiet` passes without one (or, under constant writes, `quiet` × 10),
/// then route the batch.
fn debounce_loop(
    rx: Receiver<notify::Result<Event>>,
    quiet: Duration,
    rules: Arc<Mutex<Rules>>,
    watchers: Arc<Mutex<Watchers>>,
    report: impl Fn(Change),
) {
    let max_wait = (quiet * 10).max(Duration::from_secs(1));
    loop {
        let Ok(first) = rx.recv() else { return };
        let started = Instant::now();
        let at = started;
        let Some(batch) = gather(&rx, first, started, quiet, max_wait) else {
            return;
        };
        let (paths, rescan) = changed_paths(batch, &rules, &watchers, &report);
        let mut rules = rules.locked();
        for path in &paths {
            if path
                .file_name()
                .is_some_and(|n| IGNORE_FILES.iter().any(|f| n == *f))
            {
                rules.load_ignore_file(path);
            }
        }
        if rescan {
            let all: Vec<ServiceId> = rules.services.iter().map(|s| s.service).collect();
            report(Change::Note {
                services: all.clone(),
                text: "the watcher's event queue overflowed; rebuilding every watched service to be safe".into(),
            });
            for service in all {
                report(Change::Files {
                    service,
                    paths: vec!["(events lost: rescan)".into()],
                    at,
                });
            }
            continue;
        }
        for (service, paths) in rules.route(paths) {
            report(Change::Files { service, paths, at });
        }
    }
}

/// The batch that starts with `first` (received at `started`): every event until `quiet` passes
/// without one, or `max_wait` since `started`. None when the watcher is gone.
fn gather(
    rx: &Receiver<notify::Result<Event>>,
    first: notify::Result<Event>,
    started: Instant,
    quiet: Duration,
    max_wait: Duration,
) -> Option<Vec<notify::Result<Event>>> {
    let mut batch = vec![first];
    loop {
        let left = max_wait.saturating_sub(started.elapsed());
        match rx.recv_timeout(quiet.min(left)) {
            Ok(e) => batch.push(e),
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => return None,
        }
        if started.elapsed() >= max_wait {
            break;
        }
    }
    Some(batch)
}

/// The paths a batch of events names (a new folder given watches of its own, and the files
/// created in it before), and whether events were lost (the kernel's queue overflowed).
fn changed_paths(
    batch: Vec<notify::Result<Event>>,
    rules: &Mutex<Rules>,
    watchers: &Mutex<Watchers>,
    report: &impl Fn(Change),
) -> (BTreeSet<PathBuf>, bool) {
    let mut paths = BTreeSet::new();
    let mut rescan = false;
    for event in batch.into_iter().flatten() {
        rescan |= event.need_rescan();
        if matches!(event.kind, EventKind::Access(_)) {
            continue;
        }
        for path in event.paths {
            // A new folder, or one moved in or renamed, gets its own watches (unless ignored).
            let arrived = matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
            );
            if arrived && path.is_dir() && !rules.locked().dirs.contains(&path) {
                let ignored = rules.locked().ignored(&path, true);
                if !ignored {
                    let mut w = watchers.locked();
                    w.add_tree(&path);
                    for note in w.notes.drain(..) {
                        report(note);
                    }
                    // Files created inside it before the watch existed.
                    for entry in walk_files(&path) {
                        paths.insert(entry);
                    }
                }
            }
            paths.insert(path);
        }
    }
    (paths, rescan)
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    ignore::WalkBuilder::new(dir)
        .hidden(false)
        .require_git(false)
        .build()
        .flatten()
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(|e| e.into_path())
        .collect()
}
