//! The control socket (`.devstack/devstack.sock`): one JSON object per line each way. The server
//! drives the same engine commands as the TUI; the client is what `devstack ps`, `restart`,
//! `logs` … use.

pub mod client;
pub mod server;

use crate::logs::{LogLine, Stream, strip_sgr};
use serde::{Deserialize, Serialize};

/// A request. `wait` (default true) makes an action answer once it took effect.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Ps,
    Start {
        service: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    Stop {
        service: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    Restart {
        service: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    /// Restart every wanted service in dependency order (the dashboard's `R`).
    #[serde(rename = "restart-all")]
    RestartAll {
        #[serde(default = "yes")]
        wait: bool,
    },
    Rebuild {
        service: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    Kill {
        service: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    Logs {
        /// Services to show; empty means all.
        #[serde(default)]
        services: Vec<String>,
        #[serde(default = "default_lines")]
        lines: usize,
        #[serde(default)]
        follow: bool,
    },
    /// Rebuild on file changes (`auto`) or only when asked.
    Watch {
        service: String,
        auto: bool,
    },
    Traffic,
    Down,
    Subscribe,
}

fn yes() -> bool {
    true
}

fn default_lines() -> usize {
    100
}

/// One log line on the wire.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct WireLine {
    pub service: String,
    /// `out`, `build` or `devstack`
    pub stream: String,
    /// RFC 3339 with milliseconds
    pub time: String,
    /// Without colour codes.
    pub text: String,
}

impl WireLine {
    pub fn new(line: &LogLine, names: &[String]) -> Self {
        WireLine {
            service: names[line.service].clone(),
            stream: match line.stream {
                Stream::Out => "out",
                Stream::Build => "build",
                Stream::System => "devstack",
            }
            .into(),
            time: humantime::format_rfc3339_millis(line.time).to_string(),
            text: strip_sgr(&line.text).into_owned(),
        }
    }
}
