//! The end-to-end tests: one crate (one binary to build and link), a module per area. Most drive
//! the real binary in a temporary folder on free ports (`common`); some drive the library's
//! parts directly (the relay, the config, the dashboard's frames). `chaos` is the soak and chaos
//! suite, ignored by a plain `cargo test` and run by CI (`cargo test -- --include-ignored`).
//! `tests/zombies.rs` stays a crate of its own: it makes its process a subreaper.

mod common;

mod attach;
mod chaos;
mod cli;
mod completions;
mod compose_images;
mod config_errors;
mod config_props;
mod containers;
mod control;
mod debuglog;
mod decode;
mod demo;
mod fault;
mod fault_redis;
mod fault_relay;
mod fault_scenarios;
mod fault_tcp;
mod graceful;
mod health;
mod import;
mod init;
mod inspect;
mod inspect_decoded;
mod inspector;
mod lifecycle;
mod lines_props;
mod man;
mod mcp;
mod output;
mod proxy_limits;
mod ps;
mod relay_props;
mod remote;
mod rollout;
mod schema;
mod socket_limits;
mod stuck_log;
mod supervisor;
mod survivors;
mod terminal;
mod traffic;
mod traffic_follow;
mod traffic_stack;
mod tui;
mod ui;
mod watch;
mod wire;
