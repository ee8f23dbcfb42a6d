//! The socket itself: `bind` makes it (private to its owner, behind a symlink when its path is
//! too long for a socket address) and `serve` accepts connections, each given a slot and a task
//! of its own, or refused in a line when every slot is busy.

use super::slots::{MAX_CONNECTIONS, Slots};
use super::streams::line;
use super::{Context, connection, error};
use crate::ignored::Ignore;
use crate::statedir;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;

/// Why a socket file left behind does not matter: the next stack's `bind` replaces it, and a
/// client finds no stack answering on it.
const LEFT: &str = "a socket left behind is replaced by the next stack's";
/// Why a stale socket that could not be removed does not matter here: binding says what does.
const STALE: &str = "there may be no stale socket; binding says if one is in the way";

/// The bound socket; removes its file when dropped.
pub struct Socket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Ok(bound) = std::fs::read_link(&self.path) {
            std::fs::remove_file(bound).or_say(LEFT);
        }
        std::fs::remove_file(&self.path).or_say(LEFT);
    }
}

/// Bind the socket at `path`, replacing a stale one (the caller holds the folder's lock, so no
/// live stack owns it), readable and writable by the owner only. `path` is in a private folder,
/// so the socket is never reachable by others before its mode is set. When `path` is too long
/// for a socket address, the socket is bound at a short path in a private folder
/// ([`statedir::short_socket`]) and `path` becomes a symlink to it, which clients follow.
pub fn bind(path: &Path) -> std::io::Result<Socket> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(old) = std::fs::read_link(path)
        && std::fs::symlink_metadata(&old).is_ok_and(|m| m.file_type().is_socket())
    {
        std::fs::remove_file(old).or_say(STALE);
    }
    std::fs::remove_file(path).or_say(STALE);
    let at = if statedir::fits_socket_address(path) {
        path.to_path_buf()
    } else {
        let short = statedir::short_socket(path)?;
        std::fs::remove_file(&short).or_say(STALE);
        short
    };
    let listener = UnixListener::bind(&at)?;
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o600))?;
    if at != path
        && let Err(e) = std::os::unix::fs::symlink(&at, path)
    {
        std::fs::remove_file(&at).or_say(LEFT);
        return Err(e);
    }
    tracing::info!(socket = %at.display(), "control socket listening");
    Ok(Socket {
        listener,
        path: path.to_path_buf(),
    })
}

/// Accept connections until the task is dropped.
pub async fn serve(socket: Socket, ctx: Arc<Context>) {
    let slots = Arc::new(Slots::default());
    loop {
        match socket.listener.accept().await {
            Ok((stream, _)) => match slots.admit() {
                Some(slot) => {
                    tokio::spawn(connection(stream, ctx.clone(), slot));
                }
                None => {
                    // A new socket's buffer is empty: this neither blocks nor fails for room.
                    let refusal = error(format!(
                        "too many connections: {MAX_CONNECTIONS} are open and busy"
                    ));
                    stream
                        .try_write(&line(&refusal))
                        .or_say("the refused client may have left already");
                }
            },
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
