//! The resolved plan `devstack check` prints.

use super::diag::printable;
use super::{CommandLine, Config, Protocol, Rollout};

/// A config enum as it is written in the file (`on-failure`, `healthy`).
fn word(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn command(cmd: &CommandLine) -> String {
    match cmd {
        CommandLine::Shell(s) => format!("sh -c {s:?}"),
        CommandLine::Exec(argv) => format!("{argv:?}"),
    }
}

pub fn describe(cfg: &Config) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "stack `{}` from {}\n",
        printable(&cfg.name),
        printable(&cfg.file.display().to_string())
    ));
    out.push_str("start order:\n");
    for (n, &i) in cfg.order.iter().enumerate() {
        let s = &cfg.services[i];
        let kind = if s.is_task() { " (one-shot task)" } else { "" };
        out.push_str(&format!("  {}. {}{kind}\n", n + 1, s.name));
        if !s.deps.is_empty() {
            let deps: Vec<String> = s
                .deps
                .iter()
                .map(|d| format!("{} ({})", cfg.services[d.service].name, word(d.condition)))
                .collect();
            out.push_str(&format!("       after: {}\n", deps.join(", ")));
        }
        if let Some(b) = &s.build {
            out.push_str(&format!("       build: {}\n", command(b)));
        }
        if let Some(r) = &s.run {
            out.push_str(&format!("       run:   {}\n", command(r)));
        }
        let rel = s.cwd.strip_prefix(&cfg.root).unwrap_or(&s.cwd);
        let rel = if rel.as_os_str().is_empty() {
            ".".into()
        } else {
            rel.display().to_string()
        };
        out.push_str(&format!("       cwd:   {}\n", printable(&rel)));
        if let Some(p) = s.port {
            let how = if !s.proxy {
                " (the service binds it: proxy = false)".to_string()
            } else if s.protocol != Protocol::Auto {
                format!(
                    " (devstack listens and forwards to the service's PORT, read as {})",
                    s.protocol.name()
                )
            } else {
                " (devstack listens and forwards to the service's PORT)".to_string()
            };
            out.push_str(&format!("       port:  {p}{how}\n"));
        }
        if !s.watch.is_empty() {
            out.push_str(&format!(
                "       watch: {}\n",
                printable(&s.watch.join(", "))
            ));
        }
        if s.run.is_some() {
            out.push_str(&format!(
                "       restart: {}, stop: {} then KILL after {}\n",
                word(s.restart),
                s.stop_signal.as_str(),
                crate::format::secs(s.grace)
            ));
            out.push_str(&match s.rollout {
                Rollout::BlueGreen => format!(
                    "       rollout: blue-green (the new process serves once ready; the old drains up to {})\n",
                    crate::format::secs(s.drain)
                ),
                Rollout::Restart => "       rollout: restart (stopped, then started)\n".into(),
            });
        }
        if !s.autostart {
            out.push_str("       autostart: off\n");
        }
    }
    if !cfg.faults.0.is_empty() {
        out.push_str("fault scenarios (set only when asked: `devstack fault apply NAME`):\n");
    }
    for (name, faults) in &cfg.faults.0 {
        let faults: Vec<String> = faults.iter().map(ToString::to_string).collect();
        out.push_str(&format!("  {name}: {}\n", printable(&faults.join("; "))));
    }
    out
}
