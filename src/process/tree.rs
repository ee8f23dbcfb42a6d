//! Reading the process tree without scanning every process on the machine: the kernel keeps a
//! list of each thread's children (`/proc/PID/task/TID/children`). Where it doesn't, one scan of
//! `/proc` stands in.

use std::collections::BTreeMap;

/// The process tree, read cheaply: the kernel's list of each process's children
/// (`/proc/PID/task/TID/children`), or, where the kernel doesn't keep one, a scan of every
/// process.
pub enum Tree {
    Lists,
    Scanned(BTreeMap<i32, Vec<i32>>),
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
        if lists {
            return Tree::Lists;
        }
        let mut map: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        if let Ok(all) = procfs::process::all_processes() {
            for stat in all.flatten().filter_map(|p| p.stat().ok()) {
                map.entry(stat.ppid).or_default().push(stat.pid);
            }
        }
        Tree::Scanned(map)
    }

    /// The children of the main thread of `pid` only.
    pub fn children_of_thread(&self, pid: i32) -> Vec<i32> {
        match self {
            Tree::Scanned(_) => self.children(pid),
            Tree::Lists => read_pids(&format!("/proc/{pid}/task/{pid}/children")),
        }
    }

    pub fn children(&self, pid: i32) -> Vec<i32> {
        self.children_of(pid, 0)
    }

    /// `children`, knowing `pid` runs `threads` threads (from its `Stat`; 0 if unknown): a
    /// single-threaded process's list is read without listing its threads.
    pub fn children_of(&self, pid: i32, threads: i64) -> Vec<i32> {
        match self {
            Tree::Scanned(map) => map.get(&pid).cloned().unwrap_or_default(),
            Tree::Lists if threads == 1 => self.children_of_thread(pid),
            Tree::Lists => {
                let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                    return Vec::new();
                };
                tasks
                    .flatten()
                    .flat_map(|t| read_pids(&t.path().join("children").to_string_lossy()))
                    .collect()
            }
        }
    }
}

/// The pids listed in a `children` file.
fn read_pids(path: &str) -> Vec<i32> {
    read_proc(path)
        .map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A small `/proc` file, read with open, read and close only (`fs::read_to_string` also asks
/// for the file's size, which `/proc` does not know): the idle keeper and the usage sampler read
/// a few of them per service every second or two.
fn read_proc(path: &str) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 1024];
    let mut text = Vec::new();
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&text).into_owned())
}

/// The fields of `/proc/PID/stat` devstack reads, from one read of that file.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub state: char,
    pub session: i32,
    /// CPU time in clock ticks, user and system.
    pub utime: u64,
    pub stime: u64,
    pub threads: i64,
    pub starttime: u64,
    /// Resident pages.
    pub rss: u64,
}

/// `/proc/PID/stat`, or None once the process is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    let text = read_proc(&format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state) of proc(5).
    let field = |n: usize| f.get(n - 3).copied();
    Some(Stat {
        state: field(3)?.chars().next()?,
        session: field(6)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        threads: field(20)?.parse().ok()?,
        starttime: field(22)?.parse().ok()?,
        rss: field(24)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let tree = Tree::new();
        let kids = tree.children(me);
        let _ = child.kill();
        let _ = child.wait();
        assert!(kids.contains(&(child.id() as i32)), "{kids:?}");
    }
}
