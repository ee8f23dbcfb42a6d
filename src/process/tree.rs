//! Reading the process tree without scanning every process on the machine: the kernel keeps a
//! list of each thread's children (`/proc/PID/task/TID/children`). Where it doesn't, one scan of
//! `/proc` stands in. The `/proc` files a `Tree` read stay open between its passes (a bounded
//! number of them) and are read again with `pread`.

use super::stat::Stat;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The process tree, read cheaply: the kernel's list of each process's children
/// (`/proc/PID/task/TID/children`), or, where the kernel doesn't keep one, a scan of every
/// process. Those who look again and again (the keeper, the usage sampler) keep one `Tree`:
/// the `/proc` files it read stay open and are read again from their start (a `/proc` path
/// lookup costs more than the read), for as long as one of the last passes ([`Tree::pass`])
/// read them.
pub struct Tree {
    scanned: Option<BTreeMap<i32, Vec<i32>>>,
    files: HashMap<ProcFile, Open>,
    /// Passes so far.
    passes: u64,
}

/// A file not read during the last pass is closed at the next (a pass reads every live tree,
/// so such a file's process is gone or no longer of interest).
const KEEP_PASSES: u64 = 2;
/// At most this many files are kept open (past it, a file is opened for each read, as
/// before): two per process (its stat and its list of children), so 20 services that run
/// `sh -c` and a child need 81.
const MAX_OPEN: usize = 160;

/// A `/proc` file the tree reads: a process's `stat`, or a thread's list of children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ProcFile {
    Stat(i32),
    Children(i32, i32),
}

impl ProcFile {
    fn path(self) -> String {
        match self {
            ProcFile::Stat(pid) => format!("/proc/{pid}/stat"),
            ProcFile::Children(pid, tid) => format!("/proc/{pid}/task/{tid}/children"),
        }
    }
}

struct Open {
    file: File,
    /// The pass it was last read in.
    read: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    pub fn new() -> Tree {
        // Whether the kernel keeps the lists does not change while devstack runs.
        static LISTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let lists = *LISTS.get_or_init(|| {
            std::path::Path::new("/proc/self/task")
                .read_dir()
                .ok()
                .and_then(|mut tasks| tasks.next())
                .and_then(Result::ok)
                .is_some_and(|t| t.path().join("children").exists())
        });
        let mut tree = Tree {
            scanned: (!lists).then(BTreeMap::new),
            files: HashMap::new(),
            passes: 0,
        };
        tree.pass();
        tree
    }

    /// Start another look: the files the last passes did not read are closed (their
    /// processes are gone, or no longer of interest), and a scan is taken again.
    pub fn pass(&mut self) {
        self.passes += 1;
        let passes = self.passes;
        self.files
            .retain(|_, open| open.read + KEEP_PASSES > passes);
        if let Some(map) = &mut self.scanned {
            map.clear();
            for (_, stat) in super::stat::all() {
                map.entry(stat.ppid).or_default().push(stat.pid);
            }
        }
    }

    /// The kernel keeps no lists of children here: each pass scans every process.
    pub fn scans(&self) -> bool {
        self.scanned.is_some()
    }

    /// `/proc/PID/stat`, or None once the process is gone.
    pub fn stat(&mut self, pid: i32) -> Option<Stat> {
        Stat::parse(&self.read(ProcFile::Stat(pid))?)
    }

    /// The children of the main thread of `pid` only.
    pub fn children_of_thread(&mut self, pid: i32) -> Vec<i32> {
        match &self.scanned {
            Some(map) => map.get(&pid).cloned().unwrap_or_default(),
            None => pids(self.read(ProcFile::Children(pid, pid))),
        }
    }

    /// `children`, knowing `pid` runs `threads` threads (from its `Stat`; 0 if unknown): a
    /// single-threaded process's list is read without listing its threads.
    pub fn children_of(&mut self, pid: i32, threads: i64) -> Vec<i32> {
        if self.scanned.is_some() || threads == 1 {
            return self.children_of_thread(pid);
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        let tids: Vec<i32> = tasks
            .flatten()
            .filter_map(|t| t.file_name().to_str()?.parse().ok())
            .collect();
        tids.into_iter()
            .flat_map(|tid| pids(self.read(ProcFile::Children(pid, tid))))
            .collect()
    }

    /// A small `/proc` file, through its open file when there is one. A file whose process
    /// is gone fails to read (even once its pid is reused: the open file is the old
    /// process's), and is closed.
    fn read(&mut self, which: ProcFile) -> Option<Vec<u8>> {
        if let Some(open) = self.files.get_mut(&which) {
            match read_from_start(&open.file) {
                Some(text) => {
                    open.read = self.passes;
                    return Some(text);
                }
                None => {
                    self.files.remove(&which);
                    return None;
                }
            }
        }
        let file = File::open(which.path()).ok()?;
        let text = read_from_start(&file)?;
        if self.files.len() < MAX_OPEN {
            let read = self.passes;
            self.files.insert(which, Open { file, read });
        }
        Some(text)
    }

    /// How many `/proc` files are open.
    #[cfg(test)]
    fn open_files(&self) -> usize {
        self.files.len()
    }
}

/// The pids listed in a `children` file.
fn pids(text: Option<Vec<u8>>) -> Vec<i32> {
    text.map(|text| {
        String::from_utf8_lossy(&text)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    })
    .unwrap_or_default()
}

/// A `/proc` file's whole text, read from its start with `pread` (the file's size is not
/// known to `/proc`: it is read until a read comes back short).
pub(super) fn read_from_start(file: &File) -> Option<Vec<u8>> {
    let mut text = vec![0u8; 1024];
    let mut len = 0;
    loop {
        match file.read_at(&mut text[len..], len as u64) {
            Ok(0) => break,
            // `/proc` fills what it is asked for unless the file ends: a short read is its end.
            Ok(n) if len + n < text.len() => {
                len += n;
                break;
            }
            Ok(n) => {
                len += n;
                text.resize(text.len() * 2, 0);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    text.truncate(len);
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ignored::Ignore;
    use crate::process::stat;

    #[test]
    fn reads_our_own_stat_and_children() {
        let me = std::process::id() as i32;
        let s = stat(me).expect("our stat");
        assert!(matches!(s.state, 'R' | 'S'), "{}", s.state);
        assert!(s.threads >= 1 && s.rss > 0 && s.starttime > 0);
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let mut tree = Tree::new();
        let kids = tree.children_of(me, 0);
        let pid = child.id() as i32;
        assert!(kids.contains(&pid), "{kids:?}");
        assert_eq!(
            tree.stat(pid).unwrap().starttime,
            stat(pid).unwrap().starttime
        );
        child.kill().or_say("it may have exited");
        child
            .wait()
            .or_say("another test's keeper may have collected it");
    }

    /// Files stay open from one pass to the next while they are read, are read afresh each
    /// time, and are closed once their process is gone or nobody reads them.
    #[test]
    fn open_files_are_read_again_and_closed_when_no_longer_read() {
        let mut tree = Tree::new();
        if tree.scanned.is_some() {
            return; // no children lists on this kernel
        }
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read x; sleep 30"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let first = tree.stat(pid).unwrap();
        assert_eq!(tree.open_files(), 1);
        tree.pass();
        // The same open file, read again: it sees the process as it is now (a child).
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"go\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let kids = loop {
            let kids = tree.children_of_thread(pid);
            if !kids.is_empty() {
                break kids;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sh never forked sleep"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        for kid in kids {
            crate::process::signal(kid, nix::sys::signal::Signal::SIGKILL);
        }
        assert_eq!(tree.stat(pid).unwrap().starttime, first.starttime);
        assert_eq!(tree.open_files(), 2);
        // Gone: its file fails to read, and is closed.
        child.kill().or_say("it may have exited");
        child
            .wait()
            .or_say("another test's keeper may have collected it");
        assert!(tree.stat(pid).is_none());
        assert_eq!(tree.open_files(), 1);
        // Not read for a while: closed.
        for _ in 0..KEEP_PASSES {
            assert_eq!(tree.open_files(), 1);
            tree.pass();
        }
        assert_eq!(tree.open_files(), 0);
    }
}
