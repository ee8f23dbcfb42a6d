//! `.devstack/` beside `devstack.toml`: where each file of a running stack lives, and the lock
//! that keeps two runs from managing one folder.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub struct StateDir {
    dir: PathBuf,
}

/// Held while a stack runs; released when dropped or when the process dies.
pub struct RunLock {
    _lock: Flock<File>,
}

impl StateDir {
    pub fn new(config_root: &Path) -> Self {
        StateDir {
            dir: config_root.join(".devstack"),
        }
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("devstack.sock")
    }

    /// Output of a detached stack (`up -d`).
    pub fn detached_log(&self) -> PathBuf {
        self.dir.join("devstack.out")
    }

    pub fn groups(&self) -> PathBuf {
        self.dir.join("pgroups")
    }

    /// Take the folder for this run, or say which process has it.
    pub fn lock(&self) -> Result<RunLock, String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let _ = lock.set_len(0);
                let _ = lock.rewind();
                let _ = write!(lock, "{}", std::process::id());
                Ok(RunLock { _lock: lock })
            }
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Err(format!(
                    "devstack is already running this stack (pid {}); stop it first (Ctrl-C in its terminal, or kill {})",
                    pid.trim(),
                    pid.trim()
                ))
            }
        }
    }
}
