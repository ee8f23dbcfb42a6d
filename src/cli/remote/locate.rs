//! Finding the running stack a command means, without its config (which may be broken or
//! deleted while the stack runs): the nearest folder, from here up, whose `.devstack/` has a stack
//! answering (`-f PATH`: PATH's folder), said `hello` to first; a `Running` holds the connection.

use crate::cli::note;
use devstack::config::{self, Config};
use devstack::control::client::{self, Client};
use devstack::statedir::StateDir;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A stack that answers on its control socket, and a connection to it.
pub struct Running {
    pub(in crate::cli) state: StateDir,
    pub(in crate::cli) client: Client,
    /// The folder whose `.devstack/` the stack answers in.
    folder: PathBuf,
}

impl Running {
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Where to connect to the stack again.
    pub fn socket(&self) -> PathBuf {
        self.state.socket_address()
    }

    pub fn pid(&self) -> Option<u32> {
        self.state.running_pid()
    }
}

pub(super) fn connect(state: &StateDir) -> Option<Client> {
    Client::connect(&state.socket_address()).ok()
}

/// The running stack a command means, found without reading its config (which may have been
/// edited into an error, or deleted, while the stack runs): with `-f PATH`, the one in PATH's
/// folder; otherwise the nearest folder, from here up, whose `.devstack/` has a stack answering,
/// stopping at the nearest folder with a `devstack.toml` (the stack `up` would start here).
/// None when that stack is not running; an error (said) when it speaks another protocol.
pub fn find(file: Option<&Path>) -> Result<Option<Running>, ExitCode> {
    locate(file).map_err(|refusal| {
        note(&format!("error: {refusal}"));
        ExitCode::FAILURE
    })
}

/// [`find`], saying nothing: the error is why the stack found can't be spoken to (another
/// protocol), in words.
pub fn locate(file: Option<&Path>) -> Result<Option<Running>, String> {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let folders: Vec<PathBuf> = match file {
        Some(f) => {
            let f = std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf());
            vec![f.parent().map_or(here, Path::to_path_buf)]
        }
        None => here.ancestors().map(Path::to_path_buf).collect(),
    };
    for folder in folders {
        let state = StateDir::new(&folder);
        if let Some(mut client) = connect(&state) {
            // Always first, so that a stack of another devstack version says so clearly.
            if let Err(e) = client.hello() {
                return Err(super::describe(&state, &e));
            }
            return Ok(Some(Running {
                state,
                client,
                folder,
            }));
        }
        if folder.join(config::FILE_NAME).is_file() {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The folder a stack would run in for the commands here (when none runs, to say where): with
/// `-f PATH`, PATH's folder; otherwise the nearest folder, from here up, with a
/// `devstack.toml`, or here.
pub fn home(file: Option<&Path>) -> PathBuf {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match file {
        Some(f) => {
            let f = std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf());
            f.parent().map_or(here, Path::to_path_buf)
        }
        None => config::find(&here)
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or(here),
    }
}

pub fn not_running(cfg: &Config) -> ExitCode {
    note(&format!(
        "no stack is running in {} (start one with `devstack up`, or `devstack up -d` in the background)",
        cfg.root.display()
    ));
    ExitCode::FAILURE
}

impl Running {
    /// Ask the stack; the answer, or its error said.
    pub(in crate::cli) fn ask<T>(
        &mut self,
        request: impl FnOnce(&mut Client) -> Result<T, client::Error>,
    ) -> Result<T, ExitCode> {
        request(&mut self.client).map_err(|e| super::fail(&self.state, e))
    }
}
