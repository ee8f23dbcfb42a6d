//! `[stack]` and the table of services: the stack's name, timings and scrollback; the services
//! in the order they are written, their names and their ports checked.

use super::Resolver;
use crate::config::diag::{self, Diagnostic, did_you_mean};
use crate::config::raw::{RawService, RawStack, Spanned};
use crate::config::{RESERVED_NAMES, ServiceId, Services};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The settings of the whole stack, defaults applied.
pub(super) struct Settings {
    pub name: String,
    /// The services' `grace` unless they set their own.
    pub grace: Duration,
    pub debounce: Duration,
    pub scrollback: usize,
    pub capture: crate::config::capture::Bounds,
}

/// The services in the order they are written, and what the others read of them.
pub(super) struct Table {
    pub services: Services<(Spanned<String>, RawService)>,
    pub names: Vec<String>,
    /// Each service's `port`.
    pub ports: Services<Option<u16>>,
    index: HashMap<String, ServiceId>,
}

impl Table {
    /// The service called `name`.
    pub fn id(&self, name: &str) -> Option<ServiceId> {
        self.index.get(name).copied()
    }

    /// Whether the service `id` is proxied (a `port`, and `proxy` left on).
    pub fn proxied(&self, id: ServiceId) -> bool {
        let raw = &self.services[id].1;
        raw.port.is_some() && raw.proxy != Some(false)
    }

    /// What is said of a name that is no service's.
    pub fn unknown_service_message(&self, name: &str) -> String {
        let names = &self.names;
        let hint = match did_you_mean(name, names.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`? "),
            None => String::new(),
        };
        format!(
            "unknown service `{name}`; {hint}services are: {}",
            names.join(", ")
        )
    }
}

impl Resolver<'_> {
    pub(super) fn settings(&mut self, stack: &RawStack, root: &Path) -> Settings {
        // The name is a label in the dashboard's header: nothing in it may drive the terminal.
        if let Some(n) = &stack.name
            && diag::printable(n.get_ref()) != n.get_ref().as_str()
        {
            self.error(n.span(), "the stack's name has control characters")
                .help = Some("a name is a label: use printable characters".into());
        }
        let name = match &stack.name {
            Some(n) => n.get_ref().clone(),
            None => root
                .file_name()
                .map(|n| diag::printable(&n.to_string_lossy()).into_owned())
                .unwrap_or_else(|| "stack".into()),
        };
        let grace = stack.grace.map_or(DEFAULT_GRACE, |d| d.0);
        let debounce = stack.debounce.map_or(Duration::from_millis(200), |d| d.0);
        let scrollback = stack.scrollback.as_ref().map_or(10_000, |n| *n.get_ref());
        if let Some(n) = &stack.scrollback
            && !(100..=10_000_000).contains(n.get_ref())
        {
            self.error(
                n.span(),
                "scrollback is lines kept per service: use 100 to 10000000",
            );
        }
        Settings {
            name,
            grace,
            debounce,
            scrollback,
            capture: stack.capture.bounds(),
        }
    }

    /// `[stack] container_engine`, or the first engine on the PATH; looked for only when a
    /// service runs an `image` (`wanted`).
    pub(super) fn container_engine(&mut self, stack: &RawStack, wanted: bool) -> Option<String> {
        use crate::config::container::{ENGINES, find_engine};
        let named = stack.container_engine.as_ref();
        if let Some(n) = named
            && !ENGINES.contains(&n.get_ref().as_str())
        {
            self.error(
                n.span(),
                format!(
                    "`{}` is not a container engine devstack drives",
                    n.get_ref()
                ),
            )
            .help = Some("use \"podman\" or \"docker\"".into());
            return None;
        }
        if !wanted {
            return None;
        }
        let path = (self.process_env)("PATH");
        find_engine(
            named.map(|n| n.get_ref().as_str()),
            path.as_deref().map(std::ffi::OsStr::new),
        )
    }

    /// The services in the order they are written, their names and ports checked.
    pub(super) fn table(&mut self, services: BTreeMap<Spanned<String>, RawService>) -> Table {
        if services.is_empty() {
            self.errors.push(
                Diagnostic::new(self.file, "no services: there is nothing to run").help(
                    "add a [services.NAME] table with `run = \"...\"` (a long-running process) or `build = \"...\"` (a one-shot task); see the README for an example",
                ),
            );
        }
        let mut services: Vec<(Spanned<String>, RawService)> = services.into_iter().collect();
        services.sort_by_key(|(name, _)| name.span().start);
        for (name, _) in &services {
            self.check_name(name);
        }
        self.check_ports(&services);
        let services = Services::from(services);
        let names: Vec<String> = services
            .values()
            .map(|(n, _)| n.get_ref().clone())
            .collect();
        let index = services
            .iter()
            .map(|(id, (n, _))| (n.get_ref().clone(), id))
            .collect();
        let ports = services.map(|(_, s)| s.port.as_ref().map(|p| p.get_ref().0));
        Table {
            services,
            names,
            ports,
            index,
        }
    }

    fn check_name(&mut self, name: &Spanned<String>) {
        let n = name.get_ref();
        if !valid_name(n) {
            self.error(
                name.span(),
                format!("invalid service name `{n}`: use letters, digits, `-` and `_`"),
            );
        } else if RESERVED_NAMES.contains(&n.as_str()) {
            self.error(
                name.span(),
                format!("`{n}` can't be a service's name: the traffic views use it for callers that are not services"),
            )
            .help = Some("rename the service".into());
        }
    }

    fn check_ports(&mut self, services: &[(Spanned<String>, RawService)]) {
        let mut seen: BTreeMap<u16, &str> = BTreeMap::new();
        for (name, raw) in services {
            if let Some(port) = &raw.port {
                let p = port.get_ref().0;
                if let Some(first) = seen.get(&p) {
                    let msg = format!(
                        "port {p} is used by both `{first}` and `{}`",
                        name.get_ref()
                    );
                    self.error(port.span(), msg).help =
                        Some("give each service its own port".into());
                } else {
                    seen.insert(p, name.get_ref());
                }
            }
        }
    }
}

/// A name a service or a scenario may have: letters, digits, `-` and `_`, at least one.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
