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
        if std::path::Path::new("/proc/self/task")
            .read_dir()
            .ok()
            .and_then(|mut tasks| tasks.next())
            .and_then(Result::ok)
            .is_some_and(|t| t.path().join("children").exists())
        {
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
        match self {
            Tree::Scanned(map) => map.get(&pid).cloned().unwrap_or_default(),
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
    std::fs::read_to_string(path)
        .map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
