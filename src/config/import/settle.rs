//! The translated stack made valid for devstack before it is written: service names it accepts,
//! dependencies only on services that are written and on what they can give (a probe for
//! `healthy`, a one-shot task for `completed`), each port used once.

use super::{Cond, Dep, Stack, Svc};
use std::collections::{BTreeMap, BTreeSet};

impl Stack {
    /// Names devstack accepts (letters, digits, `-`, `_`; not `external`, `unknown` or
    /// `replay`), unique.
    pub(super) fn sanitise_names(&mut self) {
        let valid = |n: &str| {
            !n.is_empty()
                && !crate::config::RESERVED_NAMES.contains(&n)
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        // Valid names keep theirs; the others are changed around them.
        let mut taken: BTreeSet<String> = self
            .services
            .iter()
            .map(|s| s.source_name.clone())
            .filter(|n| valid(n))
            .collect();
        for svc in &mut self.services {
            if valid(&svc.source_name) {
                continue;
            }
            let mut name: String = svc
                .source_name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            if name.is_empty() {
                name = "service".into();
            }
            if crate::config::RESERVED_NAMES.contains(&name.as_str()) {
                name.push_str("-svc");
            }
            let base = name.clone();
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            taken.insert(name.clone());
            if name != svc.source_name {
                svc.warn(format!(
                    "renamed `{}` to `{name}`: a devstack service name has letters, digits, `-` and `_`{}",
                    svc.source_name,
                    if matches!(base.as_str(), "external-svc" | "unknown-svc") {
                        " (and `external`/`unknown` name callers in the traffic views)"
                    } else {
                        ""
                    }
                ));
            }
            svc.name = name;
        }
    }

    /// Dependencies devstack accepts: on services that are written (not commented out), on a
    /// probe for `healthy`, on a one-shot task for `completed` (a service others wait to complete
    /// becomes one: its command is its `build`).
    pub(super) fn settle_deps(&mut self) {
        let by_name: BTreeMap<String, usize> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.source_name.clone(), i))
            .collect();
        self.make_tasks(&by_name);
        let targets: Vec<Target> = self
            .services
            .iter()
            .map(|s| Target {
                name: s.name.clone(),
                commented: s.commented,
                probe: s.health.is_some(),
                task: s.run.is_none() && s.build.is_some(),
            })
            .collect();
        for svc in &mut self.services {
            let deps = std::mem::take(&mut svc.deps);
            for d in deps {
                if let Some(d) = settle_dep(svc, d, &by_name, &targets) {
                    svc.deps.push(d);
                }
            }
        }
    }

    /// Services others wait to complete become one-shot tasks.
    fn make_tasks(&mut self, by_name: &BTreeMap<String, usize>) {
        let mut tasks = BTreeSet::new();
        for svc in &self.services {
            for d in &svc.deps {
                if d.cond == Cond::Completed
                    && let Some(&j) = by_name.get(&d.name)
                {
                    tasks.insert(j);
                }
            }
        }
        for &j in &tasks {
            let t = &mut self.services[j];
            if t.commented || t.run.is_none() {
                continue;
            }
            if t.build.is_none() {
                t.build = t.run.take();
                t.note("a one-shot task: others wait for it to complete (exit 0)");
                if t.health.take().is_some() {
                    t.warn("its health probe is dropped: a one-shot task has none");
                }
                if t.port.take().is_some() {
                    t.proxy = None;
                    t.warn("its port is dropped: a one-shot task has none");
                }
                t.watch.clear();
                t.ignore.clear();
                t.restart = None;
            }
        }
    }

    /// Each port used once.
    pub(super) fn settle_ports(&mut self) {
        let mut seen: BTreeMap<u16, String> = BTreeMap::new();
        for svc in &mut self.services {
            let Some(p) = svc.port else { continue };
            if let Some(first) = seen.get(&p) {
                let first = first.clone();
                svc.warn(format!(
                    "port {p} is `{first}`'s already: this service has none here"
                ));
                svc.port = None;
                svc.proxy = None;
            } else if !svc.commented {
                seen.insert(p, svc.name.clone());
            }
        }
    }
}

/// What a dependent can wait for in a service, once the tasks are made.
struct Target {
    /// Its name as written.
    name: String,
    commented: bool,
    probe: bool,
    task: bool,
}

/// `svc`'s dependency `d` as devstack accepts it, or None (said) when it is dropped.
fn settle_dep(
    svc: &mut Svc,
    mut d: Dep,
    by_name: &BTreeMap<String, usize>,
    targets: &[Target],
) -> Option<Dep> {
    let Some(&j) = by_name.get(&d.name) else {
        svc.warn(format!(
            "depends on `{}`, which the file does not define: dropped",
            d.name
        ));
        return None;
    };
    let t = &targets[j];
    let target = &t.name;
    if j == by_name[&svc.source_name] {
        svc.warn(format!("depends on itself (`{}`): dropped", d.name));
        return None;
    }
    if t.commented {
        svc.warn(format!(
            "depends on `{target}` ({}), which is commented out in this file: start it yourself, or uncomment it and add it back to depends_on",
            d.cond.name()
        ));
        return None;
    }
    if d.cond == Cond::Healthy && !t.probe {
        svc.warn(format!(
            "waited for `{target}` to be healthy, but it has no health probe here: it waits for it to start"
        ));
        d.cond = Cond::Started;
    }
    if d.cond == Cond::Completed && !t.task {
        svc.warn(format!(
            "waited for `{target}` to complete, but it keeps running here: it waits for it to start"
        ));
        d.cond = Cond::Started;
    }
    d.name = target.clone();
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::import::Context;

    #[test]
    fn names_are_sanitised_and_unique() {
        let mut s = Stack::new("a test", &Context::default());
        for n in ["web.app", "web-app", "external", ""] {
            let mut svc = Svc::new(n);
            svc.run = Some("true".into());
            s.services.push(svc);
        }
        s.sanitise_names();
        let names: Vec<&str> = s.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web-app-2", "web-app", "external-svc", "service"]);
    }
}
