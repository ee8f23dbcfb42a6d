//! The config loader: any text is a valid model or errors that render, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = |name: &str| (name == "HOME").then(|| "/home/fuzz".to_string());
    match devstack::config::parse(Path::new("/fuzz/devstack.toml"), &text, &env) {
        Ok(cfg) => {
            // A valid model: a start order over every service, dependencies in range.
            assert_eq!(cfg.order.len(), cfg.services.len());
            let _ = devstack::config::describe(&cfg);
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            let shown = errors.to_string();
            // Diagnostics quote the source: no control character reaches the terminal (tabs
            // stay tabs, in the line and under it, so the caret lines up).
            assert!(
                !shown
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t'),
                "{shown:?}"
            );
        }
    }
});
