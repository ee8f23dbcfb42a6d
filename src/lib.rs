//! devstack: run a stack of local services, with one engine driven by the TUI, headless mode and CLI.

pub mod config;
pub mod control;
pub mod engine;
pub mod format;
pub mod headless;
pub mod health;
pub mod ignored;
pub mod logs;
pub mod process;
pub mod routes;
pub mod statedir;
pub mod sync;
pub mod traffic;
pub mod ui;
pub mod watch;
