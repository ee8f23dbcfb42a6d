//! `.devstack/` beside `devstack.toml`: where each file of a running stack lives, and the lock
//! that keeps two runs from managing one folder. The folder is private (0700) and so are the
//! files devstack creates in it (0600), whatever the umask.

use crate::ignored::Ignore;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Mode of the folders devstack creates.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of the files devstack creates.
pub const PRIVATE_FILE: u32 = 0o600;

pub struct StateDir {
    dir: PathBuf,
}

/// Held while a stack runs; released when dropped or when the process dies.
pub struct RunLock {
    _lock: Flock<File>,
}

/// Options to create (or append to) a file readable and writable by its owner only.
pub fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(PRIVATE_FILE);
    options
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

    /// The control socket, or, when this path is too long for a socket address, a symlink to
    /// where it was bound (see [`short_socket`]).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("devstack.sock")
    }

    /// Where a client connects: the socket, or the short path its symlink records.
    pub fn socket_address(&self) -> PathBuf {
        let socket = self.socket();
        match std::fs::read_link(&socket) {
            Ok(target) => self.dir.join(target),
            Err(_) => socket,
        }
    }

    /// Output of a detached stack (`up -d`).
    pub fn detached_log(&self) -> PathBuf {
        self.dir.join("devstack.out")
    }

    /// devstack's own diagnostics, with `-v` or `DEVSTACK_LOG`.
    pub fn debug_log(&self) -> PathBuf {
        self.dir.join("devstack.log")
    }

    pub fn groups(&self) -> PathBuf {
        self.dir.join("pgroups")
    }

    fn lock_file(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// The pid the running (or last) stack wrote into its lock.
    pub fn running_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.lock_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// When the running (or last) stack started: it wrote its pid into the lock then.
    pub fn running_since(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.lock_file()).ok()?.modified().ok()
    }

    /// Create `.devstack/` and its `logs/`, private; an existing `.devstack/` is made private.
    pub fn create(&self) -> Result<(), String> {
        let cannot = |e: io::Error| format!("cannot create {}: {e}", self.dir.display());
        DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR)
            .create(self.logs())
            .map_err(cannot)?;
        let meta = std::fs::metadata(&self.dir).map_err(cannot)?;
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(PRIVATE_DIR))
                .map_err(|e| format!("cannot make {} private: {e}", self.dir.display()))?;
        }
        Ok(())
    }

    /// Take the folder for this run, or say which process has it.
    pub fn lock(&self) -> Result<RunLock, String> {
        self.create()?;
        let path = self.lock_file();
        let file = private_file()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // The pid is for people (and `running_pid`); the lock is what counts.
                const UNSAID: &str = "the lock holds all the same, without its pid said";
                lock.set_len(0).or_say(UNSAID);
                lock.rewind().or_say(UNSAID);
                write!(lock, "{}", std::process::id()).or_say(UNSAID);
                Ok(RunLock { _lock: lock })
            }
            Err((mut file, _)) => {
                let mut pid = String::new();
                file.read_to_string(&mut pid)
                    .or_say("the holder is said without its pid");
                Err(format!(
                    "devstack is already running this stack (pid {}); stop it first: `devstack down` (or Ctrl-C in its terminal)",
                    pid.trim(),
                ))
            }
        }
    }
}

/// Does `path` fit in a socket address (`sun_path`: 108 bytes on Linux, 104 on macOS)?
pub fn fits_socket_address(path: &Path) -> bool {
    SocketAddr::from_pathname(path).is_ok()
}

/// A short path to bind the control socket at when `socket`, its natural place, is too long for
/// a socket address: `<hash of socket's path>.sock` in a folder only we can enter,
/// `$XDG_RUNTIME_DIR/devstack/` or else `/tmp/devstack-<uid>/`.
pub fn short_socket(socket: &Path) -> io::Result<PathBuf> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    socket.hash(&mut hasher);
    let name = format!("{:016x}.sock", hasher.finish());
    let uid = nix::unistd::geteuid();
    let folders = [
        std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d).join("devstack")),
        Some(PathBuf::from(format!("/tmp/devstack-{uid}"))),
    ];
    let mut why = io::Error::other("no folder for a short socket path");
    for folder in folders.into_iter().flatten() {
        let path = folder.join(&name);
        if !fits_socket_address(&path) {
            continue;
        }
        match private_folder(&folder, uid.as_raw()) {
            Ok(()) => return Ok(path),
            Err(e) => why = e,
        }
    }
    Err(why)
}

/// Create `folder` (0700), or accept it if it already is a real folder of ours; tighten its mode
/// if needed. A symlink or someone else's folder is refused.
fn private_folder(folder: &Path, uid: u32) -> io::Result<()> {
    match DirBuilder::new().mode(PRIVATE_DIR).create(folder) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(folder)?;
    if !meta.file_type().is_dir() || meta.uid() != uid {
        return Err(io::Error::other(format!(
            "{} is not a folder of ours (a symlink, or owned by someone else)",
            folder.display()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(PRIVATE_DIR))?;
    }
    Ok(())
}
