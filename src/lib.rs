//! devstack: run a stack of local services, with one engine driven by the TUI, headless mode and CLI.

pub mod clipboard;
pub mod config;
pub mod confwatch;
pub mod control;
pub mod engine;
pub mod headless;
pub mod health;
pub mod logs;
pub mod process;
pub mod routes;
pub mod statedir;
pub mod traffic;
pub mod ui;
pub mod watch;

/// A count and its noun, agreeing: `1 folder`, `2 folders`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(super::plural(1, "folder"), "1 folder");
        assert_eq!(super::plural(0, "line"), "0 lines");
        assert_eq!(super::plural(2, "line"), "2 lines");
    }
}
