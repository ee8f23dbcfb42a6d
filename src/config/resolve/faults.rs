//! `[faults.NAME]`: each scenario's faults read as `devstack fault add` reads them
//! (`traffic::fault::parse`), their scopes naming services of the stack and proxied callees.

use super::Resolver;
use super::stack::Table;
use crate::config::raw::{RawFaultTable, RawScenario, Spanned};
use crate::config::scenarios::{Scenarios, check_scope};
use crate::traffic::fault::{self, Fault};
use std::collections::BTreeMap;

impl Resolver<'_> {
    /// The scenarios, every word of every fault checked.
    pub(super) fn scenarios(
        &mut self,
        raw: &BTreeMap<Spanned<String>, RawScenario>,
        table: &Table,
    ) -> Scenarios {
        let mut scenarios = BTreeMap::new();
        for (name, scenario) in raw {
            let n = name.get_ref();
            if !super::stack::valid_name(n) {
                self.error(
                    name.span(),
                    format!("invalid scenario name `{n}`: use letters, digits, `-` and `_`"),
                );
            }
            if scenario.faults.is_empty() && scenario.scopes.is_empty() {
                self.error(name.span(), format!("scenario `{n}` has no faults"))
                    .help = Some("add `users = { latency = \"2s\" }`".into());
            }
            let mut faults: Vec<Fault> = (scenario.scopes.iter())
                .filter_map(|(scope, fault)| self.scenario_table(scope, fault, table))
                .collect();
            faults.extend(
                (scenario.faults.iter()).filter_map(|words| self.scenario_fault(words, table)),
            );
            scenarios.insert(n.clone(), faults);
        }
        Scenarios(scenarios)
    }

    /// A fault written as a table under its scope (`users = { error = 503, rate = 0.2 }`): its
    /// keys read as `devstack fault add`'s words (`true`: a word alone, `reset = true`); an
    /// error is said at the table (a scope's, at the scope).
    fn scenario_table(
        &mut self,
        scope: &Spanned<String>,
        fault: &Spanned<RawFaultTable>,
        table: &Table,
    ) -> Option<Fault> {
        let mut words = vec![scope.get_ref().clone()];
        for (key, value) in fault.get_ref() {
            match value.get_ref().0.as_str() {
                "true" => words.push(key.get_ref().clone()),
                "false" => {
                    let k = key.get_ref();
                    self.error(value.span(), format!("`{k} = false` sets nothing"))
                        .help = Some(format!("remove `{k}`, or say `{k} = true`"));
                    return None;
                }
                v => words.push(format!("{}={v}", key.get_ref())),
            }
        }
        let fault = match fault::parse(&words.iter().map(String::as_str).collect::<Vec<_>>()) {
            Ok(f) => f,
            Err(e) => {
                self.error(fault.span(), e).help = Some(TABLE_HELP.into());
                return None;
            }
        };
        if let Err(e) = check_scope(&fault.scope, |name| proxied(table, name)) {
            self.error(scope.span(), e);
            return None;
        }
        Some(fault)
    }

    /// One fault's words, read; an error is said at the string (a scope's, at its first word).
    fn scenario_fault(&mut self, words: &Spanned<String>, table: &Table) -> Option<Fault> {
        let text = words.get_ref();
        let fault = match fault::read(text) {
            Ok(fault) => fault,
            Err(e) => {
                self.error(words.span(), e).help = Some(HELP.into());
                return None;
            }
        };
        if let Err(e) = check_scope(&fault.scope, |name| proxied(table, name)) {
            let start = text.len() - text.trim_start().len();
            let end = start
                + text[start..]
                    .find(char::is_whitespace)
                    .unwrap_or(text.len() - start);
            let span = crate::config::diag::value_span(self.src, words.span(), text, start..end);
            self.error(span, e);
            return None;
        }
        Some(fault)
    }
}

/// Whether the service `name` is proxied, or the error that it is not in the stack.
fn proxied(table: &Table, name: &str) -> Result<bool, String> {
    match table.id(name) {
        Some(id) => Ok(table.proxied(id)),
        None => Err(table.unknown_service_message(name)),
    }
}

const TABLE_HELP: &str = "write a fault as a table of `devstack fault add`'s words: \
                          `\"orders->users\" = { latency = \"200ms\", jitter = \"50ms\" }`, \
                          `users = { error = 503, rate = 0.5 }`, `users = { reset = true, first = 3 }`";

const HELP: &str = "write a fault as `devstack fault add` takes it: `orders->users latency=200ms`, \
                    `users error=503 rate=0.5`, `external->users reset first=3`";
