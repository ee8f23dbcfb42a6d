//! The stack as `devstack.toml` text: a header, the notes as `#` comments (the warnings among
//! them also returned as `Warning`s), `[stack]`, `[env]`, and each service's table, commented out
//! when devstack can't run it as it is.

use super::{Dep, Health, Stack, Svc, Warning};
use crate::config::diag::printable;

impl Stack {
    pub(super) fn render(&self) -> (String, Vec<Warning>) {
        let mut warnings = Vec::new();
        let mut out = String::new();
        out.push_str(&format!(
            "# Translated from {} by `devstack init --from`.\n# What could not be translated is in `#` comments beside its service.\n# `devstack check` validates this file; `devstack` starts the stack.\n\n",
            self.source
        ));
        for n in &self.notes {
            comment(&mut out, "", &n.text);
            if n.warn {
                warnings.push(Warning {
                    service: None,
                    message: n.text.clone(),
                });
            }
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out.push_str("[stack]\n");
        out.push_str(&format!("name = {}\n", string(&self.name)));
        if let Some(f) = &self.env_file {
            for n in &self.env_file_notes {
                comment(&mut out, "", n);
            }
            out.push_str(&format!("env_file = {}\n", string(f)));
        }
        if !self.env.is_empty() {
            out.push_str("\n[env]\n");
            for (k, v) in &self.env {
                out.push_str(&format!("{} = {}\n", key(k), string(v)));
            }
        }
        for svc in &self.services {
            out.push('\n');
            for n in &svc.notes {
                comment(&mut out, "", &n.text);
                if n.warn {
                    warnings.push(Warning {
                        service: Some(svc.source_name.clone()),
                        message: n.text.clone(),
                    });
                }
            }
            let mut block = String::new();
            write_service(&mut block, svc);
            if svc.commented {
                for line in block.lines() {
                    out.push_str(&format!("# {line}\n"));
                }
            } else {
                out.push_str(&block);
            }
        }
        (out, warnings)
    }
}

fn write_service(out: &mut String, svc: &Svc) {
    out.push_str(&format!("[services.{}]\n", key(&svc.name)));
    let mut kv = |k: &str, v: String| {
        out.push_str(&format!("{k} = {v}\n"));
    };
    if let Some(b) = &svc.build {
        kv("build", string(b));
    }
    if let Some(i) = &svc.image {
        kv("image", string(i));
    }
    if let Some(r) = &svc.run {
        kv("run", string(r));
    }
    if !svc.volumes.is_empty() {
        kv("volumes", list(&svc.volumes));
    }
    if let Some(c) = &svc.cwd {
        kv("cwd", string(c));
    }
    if let Some(p) = svc.port {
        kv("port", p.to_string());
    }
    if let Some(p) = svc.proxy {
        kv("proxy", p.to_string());
    }
    if !svc.deps.is_empty() {
        kv("depends_on", depends_on(&svc.deps));
    }
    if !svc.watch.is_empty() {
        kv("watch", list(&svc.watch));
    }
    if !svc.ignore.is_empty() {
        kv("ignore", list(&svc.ignore));
    }
    if let Some(r) = svc.restart {
        kv("restart", string(r));
    }
    if let Some(a) = svc.autostart {
        kv("autostart", a.to_string());
    }
    if let Some(s) = &svc.stop_signal {
        kv("stop_signal", string(s));
    }
    if let Some(g) = &svc.grace {
        kv("grace", string(g));
    }
    if !svc.env.is_empty() {
        out.push_str(&format!("[services.{}.env]\n", key(&svc.name)));
        for (k, v) in &svc.env {
            out.push_str(&format!("{} = {}\n", key(k), string(v)));
        }
    }
    if let Some(h) = &svc.health {
        write_health(out, &svc.name, h);
    }
}

/// `[services.NAME.health]`: the probe and its timings.
fn write_health(out: &mut String, name: &str, h: &Health) {
    out.push_str(&format!("[services.{}.health]\n", key(name)));
    if h.kind == "tcp" {
        out.push_str("tcp = true\n");
    } else {
        out.push_str(&format!("{} = {}\n", h.kind, string(&h.value)));
    }
    if h.exec {
        out.push_str("exec = true\n");
    }
    if let Some(i) = &h.interval {
        out.push_str(&format!("interval = {}\n", string(i)));
    }
    if let Some(t) = &h.timeout {
        out.push_str(&format!("timeout = {}\n", string(t)));
    }
    if let Some(r) = h.retries {
        out.push_str(&format!("retries = {r}\n"));
    }
    if let Some(s) = &h.start_period {
        out.push_str(&format!("start_period = {}\n", string(s)));
    }
}

/// `depends_on` as an inline table: name → condition, or { condition, restart }.
fn depends_on(deps: &[Dep]) -> String {
    let items: Vec<String> = deps
        .iter()
        .map(|d| {
            if d.restart {
                format!(
                    "{} = {{ condition = \"{}\", restart = true }}",
                    key(&d.name),
                    d.cond.name()
                )
            } else {
                format!("{} = \"{}\"", key(&d.name), d.cond.name())
            }
        })
        .collect();
    format!("{{ {} }}", items.join(", "))
}

/// `# text`, one line per line of text, nothing in it that could leave the comment.
fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        out.push_str(&format!("{indent}# {}\n", printable(line)));
    }
}

/// A TOML string.
fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key: bare when it can be.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        k.to_string()
    } else {
        string(k)
    }
}

fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| string(s)).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_cannot_break_out() {
        let mut out = String::new();
        comment(&mut out, "", "a\nb\u{1b}]0;x");
        assert_eq!(out, "# a\n# b\\u{1b}]0;x\n");
    }
}
