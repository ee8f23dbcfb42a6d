//! `depends_on`: each dependency's target and condition checked (once every service exists, so
//! that a condition can look at its target), cycles, and the start order.

use super::Resolver;
use super::stack::Table;
use crate::config::raw::{RawDep, Spanned};
use crate::config::{Condition, Dep, Service, ServiceId, Services};
use std::ops::Range;

impl Resolver<'_> {
    /// Fill each service's `deps` from the table's `depends_on`.
    pub(super) fn dependencies(&mut self, table: &Table, services: &mut Services<Service>) {
        // Where each dependency is written, for a cycle's diagnostic.
        let mut dep_spans: Services<Vec<Range<usize>>> = services.map(|_| Vec::new());
        for (i, (name, raw)) in table.services.iter() {
            for dep in &raw.depends_on.0 {
                if let Some(d) = self.dependency(i, name, dep, table, services) {
                    services[i].deps.push(d);
                    dep_spans[i].push(dep.name.span());
                }
            }
        }
        if let Some(cycle) = find_cycle(services) {
            let path: Vec<&str> = cycle.iter().map(|&i| services[i].name.as_str()).collect();
            let (a, b) = (cycle[0], cycle[1]);
            let at = services[a]
                .deps
                .iter()
                .position(|d| d.service == b)
                .expect("edge of the cycle");
            self.error(
                dep_spans[a][at].clone(),
                format!("dependency cycle: {}", path.join(" → ")),
            );
        }
    }

    /// Service `i`'s dependency `dep` (None, said, when it names no other service).
    fn dependency(
        &mut self,
        i: ServiceId,
        name: &Spanned<String>,
        dep: &RawDep,
        table: &Table,
        services: &Services<Service>,
    ) -> Option<Dep> {
        let target = dep.name.get_ref();
        let Some(j) = table.id(target) else {
            self.error(dep.name.span(), table.unknown_service_message(target));
            return None;
        };
        if j == i {
            self.error(
                dep.name.span(),
                format!("dependency cycle: {target} → {target}"),
            );
            return None;
        }
        let default = if services[j].is_task() {
            Condition::Completed
        } else if services[j].health.is_some() {
            Condition::Healthy
        } else {
            Condition::Started
        };
        let condition = dep.condition.unwrap_or(default);
        if condition == Condition::Completed && !services[j].is_task() {
            self.error(
                dep.name.span(),
                format!("`{target}` keeps running (it has `run`), so it never completes"),
            )
            .help = Some(
                "wait for \"started\" or \"healthy\", or make it a one-shot task (only `build`)"
                    .into(),
            );
        }
        if condition == Condition::Healthy && services[j].health.is_none() {
            self.error(
                dep.name.span(),
                format!("`{}` waits for `{target}` to be healthy, but `{target}` has no [services.{target}.health]", name.get_ref()),
            )
            .help = Some("add a health probe to it, or wait for \"started\"".into());
        }
        Some(Dep {
            service: j,
            condition,
            restart: dep.restart,
        })
    }
}

/// A dependency cycle as a closed path of services (first == last), if there is one.
fn find_cycle(services: &Services<Service>) -> Option<Vec<ServiceId>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: ServiceId,
        services: &Services<Service>,
        marks: &mut Services<Mark>,
        path: &mut Vec<ServiceId>,
    ) -> Option<Vec<ServiceId>> {
        marks[i] = Mark::Active;
        path.push(i);
        for dep in &services[i].deps {
            match marks[dep.service] {
                Mark::Active => {
                    let from = path
                        .iter()
                        .position(|&p| p == dep.service)
                        .expect("on the path");
                    let mut cycle = path[from..].to_vec();
                    cycle.push(dep.service);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(dep.service, services, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = services.map(|_| Mark::New);
    services.ids().find_map(|i| {
        if marks[i] == Mark::New {
            visit(i, services, &mut marks, &mut Vec::new())
        } else {
            None
        }
    })
}

/// Kahn's algorithm, taking the earliest-written ready service each step.
pub(super) fn start_order(services: &Services<Service>) -> Vec<ServiceId> {
    let mut placed = services.map(|_| false);
    let mut order = Vec::with_capacity(services.len());
    while order.len() < services.len() {
        let next = services
            .ids()
            .find(|&i| !placed[i] && services[i].deps.iter().all(|d| placed[d.service]))
            .expect("no cycles after validation");
        placed[next] = true;
        order.push(next);
    }
    order
}
