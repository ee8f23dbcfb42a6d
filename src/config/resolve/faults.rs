//! `[faults.NAME]`: each scenario's faults read as `devstack fault add` reads them
//! (`traffic::fault::parse`), their scopes naming services of the stack and proxied callees.

use super::Resolver;
use super::stack::Table;
use crate::config::raw::{RawScenario, Spanned};
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
            if scenario.faults.is_empty() {
                self.error(name.span(), format!("scenario `{n}` has no faults"))
                    .help = Some("add `faults = [\"users latency=2s\"]`".into());
            }
            let faults = scenario
                .faults
                .iter()
                .filter_map(|words| self.scenario_fault(words, table))
                .collect();
            scenarios.insert(n.clone(), faults);
        }
        Scenarios(scenarios)
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
        let proxied = |name: &str| match table.id(name) {
            Some(id) => Ok(table.proxied(id)),
            None => Err(table.unknown_service_message(name)),
        };
        if let Err(e) = check_scope(&fault.scope, proxied) {
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

const HELP: &str = "write a fault as `devstack fault add` takes it: `orders->users latency=200ms`, \
                    `users error=503 rate=0.5`, `external->users reset first=3`";
