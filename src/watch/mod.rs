//! File watching: one watcher over the `cwd` of every service that watches (none inside
//! another; not the rest of the stack's folder), debounced; which
//! changes matter to which service (`watch` and `ignore` globs, `.gitignore`s, `.devstackignore`,
//! built-in ignores); and whether a change changed anything (content hashes).
//!
//! Directories are walked with the ignore rules and watched one by one, so an ignored `target/`
//! or `node_modules/` costs no inotify watch. New directories get watches as they appear. When
//! the inotify limit is reached, the rest is polled, and the user is told how to raise it.

pub mod config_edits;

use crate::config::Config;
use crate::plural;
use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::gitignore::Gitignore;
use notify::{Event, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Folders no service wants rebuilt for, wherever they are.
const IGNORED_DIRS: &[&str] = &[".git", ".devstack", "target", "node_modules", ".hg", ".svn"];
/// Ignore files honoured in every folder.
const IGNORE_FILES: [&str; 2] = [".gitignore", ".devstackignore"];
/// Files bigger than this are not hashed; any event on them counts as a change.
const HASH_LIMIT: u64 = 16 * 1024 * 1024;

/// What the watcher tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These files of this service changed (paths relative to the stack's folder); `at`: when
    /// the first of them was seen.
    Files {
        service: usize,
        paths: Vec<String>,
        at: Instant,
    },
    /// Something to say to the user about watching (limits, fallbacks), for these services.
    Note { services: Vec<usize>, text: String },
}

/// A service's own rules: globs relative to its `cwd`.
struct ServiceRules {
    service: usize,
    cwd: PathBuf,
    watch: GlobSet,
    ignore: GlobSet,
}

/// Every rule, and what was seen of each file.
struct Rules {
    /// The stack's folder: changed paths are shown relative to it.
    root: PathBuf,
    /// The folders walked and watched: each watching service's `cwd` (none inside another).
    trees: Vec<PathBuf>,
    /// Ignore files and their matchers (`.git/info/exclude` under the root's key).
    gitignores: Vec<(PathBuf, Gitignore)>,
    services: Vec<ServiceRules>,
    hashes: HashMap<PathBuf, u64>,
    /// Folders being watched (a vanished one is not a changed file).
    dirs: std::collections::HashSet<PathBuf>,
}

fn globset(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p)?);
    }
    b.build()
}

/// Editors' swap, backup and lock files.
fn editor_temp(name: &str) -> bool {
    name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with('~')
        || name == "4913"
        || name.starts_with(".#")
}

impl Rules {
    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let Some(rel) = self.trees.iter().find_map(|t| path.strip_prefix(t).ok()) else {
            return true;
        };
        if rel
            .components()
            .any(|c| IGNORED_DIRS.contains(&c.as_os_str().to_string_lossy().as_ref()))
        {
            return true;
        }
        if path
            .file_name()
            .is_some_and(|n| editor_temp(&n.to_string_lossy()))
        {
            return true;
        }
        self.gitignores
            .iter()
            .filter(|(_, g)| path.starts_with(g.path()))
            .any(|(_, g)| g.matched_path_or_any_parents(path, is_dir).is_ignore())
    }

    /// (Re)read an ignore file: at the start, and whenever it changes.
    fn load_ignore_file(&mut self, file: &Path) {
        self.gitignores.retain(|(f, _)| f != file);
        if file.is_file() {
            let (gi, _) = Gitignore::new(file);
            self.gitignores.push((file.to_path_buf(), gi));
        }
    }

    /// Read `dir/.git/info/exclude`, if there is one, as an ignore file of `dir`.
    fn load_exclude(&mut self, dir: &Path) {
        let exclude = dir.join(".git/info/exclude");
        if !exclude.is_file() || self.gitignores.iter().any(|(f, _)| *f == exclude) {
            return;
        }
        let mut b = ignore::gitignore::GitignoreBuilder::new(dir);
        b.add(&exclude);
        if let Ok(gi) = b.build() {
            self.gitignores.push((exclude, gi));
        }
    }

    /// Did the content change since we last looked? (Unknown before: yes.)
    fn content_changed(&mut self, path: &Path) -> bool {
        let Ok(meta) = std::fs::metadata(path) else {
            // Deleted (or unreadable): that is a change.
            self.hashes.remove(path);
            return true;
        };
        if !meta.is_file() || meta.len() > HASH_LIMIT {
            return true;
        }
        let Ok(bytes) = std::fs::read(path) else {
            return true;
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        let hash = h.finish();
        self.hashes.insert(path.to_path_buf(), hash) != Some(hash)
    }

    /// The services a set of changed paths concern, with the paths each cares about.
    fn route(&mut self, paths: BTreeSet<PathBuf>) -> Vec<(usize, Vec<String>)> {
        let mut by_service: HashMap<usize, Vec<String>> = HashMap::new();
        // Files that came and went within the batch (an editor's temp file before its rename)
        // count only when nothing else of the service changed.
        let mut fleeting: HashMap<usize, Vec<String>> = HashMap::new();
        for path in paths {
            if self.ignored(&path, path.is_dir()) || path.is_dir() || self.dirs.contains(&path) {
                continue;
            }
            let wanted: Vec<usize> = self
                .services
                .iter()
                .filter(|s| {
                    path.strip_prefix(&s.cwd)
                        .is_ok_and(|rel| s.watch.is_match(rel) && !s.ignore.is_match(rel))
                })
                .map(|s| s.service)
                .collect();
            let gone_unseen = !path.exists() && !self.hashes.contains_key(&path);
            if wanted.is_empty() || !self.content_changed(&path) {
                continue;
            }
            let shown = relative(&path, &self.root).display().to_string();
            let into = if gone_unseen {
                &mut fleeting
            } else {
                &mut by_service
            };
            for s in wanted {
                into.entry(s).or_default().push(shown.clone());
            }
        }
        for (s, paths) in fleeting {
            by_service.entry(s).or_insert(paths);
        }
        let mut out: Vec<_> = by_service.into_iter().collect();
        out.sort();
        out
    }
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
        let trees = rules.lock().expect("rules").trees.clone();
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
                rules
                    .lock()
                    .expect("rules")
                    .load_ignore_file(&path.join(name));
            }
            if trees.iter().any(|t| t == path) {
                rules.lock().expect("rules").load_exclude(path);
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
        self.rules
            .lock()
            .expect("rules")
            .dirs
            .insert(dir.to_path_buf());
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
                    self.polling = PollWatcher::new(move |e| drop(tx.send(e)), config).ok();
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
    let mut services = Vec::new();
    for (i, s) in cfg.services.iter().enumerate() {
        if s.watch.is_empty() {
            continue;
        }
        services.push(ServiceRules {
            service: i,
            cwd: s.cwd.clone(),
            watch: globset(&s.watch)?,
            ignore: globset(&s.ignore)?,
        });
    }
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
    let mut rules = Rules {
        root: root.clone(),
        trees: trees.clone(),
        dirs: Default::default(),
        gitignores: Vec::new(),
        services,
        hashes: HashMap::new(),
    };
    // The ignore files of the folders between the stack's and each tree apply inside it (read
    // once: those folders are not watched).
    for tree in &trees {
        for folder in tree
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(&root))
        {
            for name in IGNORE_FILES {
                rules.load_ignore_file(&folder.join(name));
            }
        }
    }
    rules.load_exclude(&root);
    let rules = Arc::new(Mutex::new(rules));
    let (tx, rx) = channel();
    let native_tx = tx.clone();
    let native = notify::recommended_watcher(move |e| drop(native_tx.send(e)))?;
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
        let mut w = watchers.lock().expect("watchers");
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
        let mut batch = vec![first];
        loop {
            let left = max_wait.saturating_sub(started.elapsed());
            match rx.recv_timeout(quiet.min(left)) {
                Ok(e) => batch.push(e),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if started.elapsed() >= max_wait {
                break;
            }
        }
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
                if arrived && path.is_dir() && !rules.lock().expect("rules").dirs.contains(&path) {
                    let ignored = rules.lock().expect("rules").ignored(&path, true);
                    if !ignored {
                        let mut w = watchers.lock().expect("watchers");
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
        let mut rules = rules.lock().expect("rules");
        for path in &paths {
            if path
                .file_name()
                .is_some_and(|n| IGNORE_FILES.iter().any(|f| n == *f))
            {
                rules.load_ignore_file(path);
            }
        }
        if rescan {
            let all: Vec<usize> = rules.services.iter().map(|s| s.service).collect();
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

/// The folders to walk: each given one that isn't inside another (a folder once).
fn trees(folders: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let folders: BTreeSet<PathBuf> = folders.into_iter().collect();
    folders
        .iter()
        .filter(|f| !folders.iter().any(|o| o != *f && f.starts_with(o)))
        .cloned()
        .collect()
}

/// `path` as seen from `base` (`src/x.rs`, or `../lib/x.rs` for a file beside the stack's folder).
fn relative(path: &Path, base: &Path) -> PathBuf {
    let common = path
        .components()
        .zip(base.components())
        .take_while(|(a, b)| a == b)
        .count();
    let up = base.components().count() - common;
    std::iter::repeat_n(Component::ParentDir, up)
        .chain(path.components().skip(common))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(dir: &Path, watch: &[&str], ignore: &[&str]) -> Rules {
        let w: Vec<String> = watch.iter().map(|s| s.to_string()).collect();
        let i: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
        Rules {
            root: dir.to_path_buf(),
            trees: vec![dir.to_path_buf()],
            dirs: Default::default(),
            gitignores: Vec::new(),
            services: vec![ServiceRules {
                service: 0,
                cwd: dir.to_path_buf(),
                watch: globset(&w).unwrap(),
                ignore: globset(&i).unwrap(),
            }],
            hashes: HashMap::new(),
        }
    }

    #[test]
    fn routes_matching_files_and_skips_ignored_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for f in [
            "src/a.rs",
            "src/b.tmp",
            "target/x.rs",
            "src/.#a.rs",
            "src/a.rs.swp",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
        let mut r = rules(&root, &["src/**"], &["**/*.tmp"]);
        let paths = [
            "src/a.rs",
            "src/b.tmp",
            "target/x.rs",
            "src/.#a.rs",
            "src/a.rs.swp",
        ]
        .iter()
        .map(|f| root.join(f))
        .collect();
        assert_eq!(r.route(paths), vec![(0, vec!["src/a.rs".to_string()])]);
    }

    #[test]
    fn folders_inside_another_are_not_walked_twice() {
        let t = |s: &str| PathBuf::from(s);
        assert_eq!(
            trees([
                t("/s/stack"),
                t("/s/stack/api"),
                t("/s/lib"),
                t("/s/lib"),
                t("/s/libx")
            ]),
            [t("/s/lib"), t("/s/libx"), t("/s/stack")]
        );
        assert_eq!(trees([t("/s/stack"), t("/s")]), [t("/s")]);
    }

    #[test]
    fn paths_are_shown_from_the_stack_folder() {
        let root = Path::new("/s/stack");
        assert_eq!(
            relative(Path::new("/s/stack/src/a.rs"), root),
            Path::new("src/a.rs")
        );
        assert_eq!(
            relative(Path::new("/s/lib/a.rs"), root),
            Path::new("../lib/a.rs")
        );
        assert_eq!(
            relative(Path::new("/other/a.rs"), root),
            Path::new("../../other/a.rs")
        );
    }

    #[test]
    fn unchanged_content_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let file = root.join("gen.rs");
        std::fs::write(&file, "same").unwrap();
        let mut r = rules(&root, &["*.rs"], &[]);
        assert_eq!(r.route([file.clone()].into()).len(), 1);
        std::fs::write(&file, "same").unwrap();
        assert!(
            r.route([file.clone()].into()).is_empty(),
            "rewritten with the same content"
        );
        std::fs::write(&file, "different").unwrap();
        assert_eq!(r.route([file].into()).len(), 1);
    }
}
