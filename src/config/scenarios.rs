//! Named fault scenarios (`[faults.NAME]` in `devstack.toml`): sets of faults, each written as
//! `devstack fault add` takes it and read by `traffic::fault::parse` when the file is loaded.
//! None acts unless asked (`devstack fault apply NAME`, `run --faults NAME`, `up --faults NAME`).

use crate::traffic::fault::{Fault, Scope};
use std::collections::BTreeMap;

/// The caller of requests from outside the stack.
pub const EXTERNAL: &str = "external";

/// The stack's scenarios, by name.
#[derive(Debug, Clone, Default)]
pub struct Scenarios(pub BTreeMap<String, Vec<Fault>>);

impl Scenarios {
    /// The faults of scenario `name`, or why there is none.
    pub fn get(&self, name: &str) -> Result<&[Fault], String> {
        if let Some(faults) = self.0.get(name) {
            return Ok(faults);
        }
        if self.0.is_empty() {
            return Err(format!(
                "no fault scenario `{name}`: devstack.toml declares none (add a \
                 `[faults.{name}]` table with `users = {{ latency = \"2s\" }}`)"
            ));
        }
        let names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        let hint = match super::diag::did_you_mean(name, names.iter().copied()) {
            Some(best) => format!("did you mean `{best}`? "),
            None => String::new(),
        };
        Err(format!(
            "no fault scenario `{name}`; {hint}scenarios are: {}",
            names.join(", ")
        ))
    }

    /// The faults of every scenario named, in order; the first unknown name is an error.
    pub fn all(&self, names: &[String]) -> Result<Vec<Fault>, String> {
        let mut faults = Vec::new();
        for name in names {
            faults.extend_from_slice(self.get(name)?);
        }
        Ok(faults)
    }
}

/// A scope's caller is a service of the stack or `external`; its callee a proxied service.
/// `service` answers whether a name's service is proxied, or the error of an unknown name.
pub fn check_scope(
    scope: &Scope,
    service: impl Fn(&str) -> Result<bool, String>,
) -> Result<(), String> {
    if let Some(caller) = scope.caller.as_deref().filter(|c| *c != EXTERNAL) {
        service(caller).map_err(|e| format!("{e} (or `{EXTERNAL}`, for a caller)"))?;
    }
    if !service(&scope.callee)? {
        return Err(format!(
            "{} is not proxied (it has no `port`, or `proxy = false`): a fault rides on the \
             proxy, so none can be set on it",
            scope.callee
        ));
    }
    Ok(())
}
