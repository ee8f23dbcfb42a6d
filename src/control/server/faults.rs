//! `fault_add`, `faults`, `fault_rm`, `fault_clear`: the faults set on the stack's edges, held
//! by the proxy's `Stats` (in memory: they end with the stack). A fault's words are read here
//! (`traffic::fault::parse`), so that every client gets the same errors; its scope must name
//! services of the stack, and its callee a proxied one (a fault rides on the proxy).

use super::{Context, done, error, index};
use crate::control::{Answer, Response, wire};
use crate::traffic::fault::{self, Scope};

/// The caller of requests from outside the stack.
const EXTERNAL: &str = "external";

/// Set the fault `words` say.
pub(super) fn add(ctx: &Context, words: &str) -> Response {
    let words: Vec<&str> = words.split_whitespace().collect();
    let fault = match fault::parse(&words) {
        Ok(fault) => fault,
        Err(e) => return error(e),
    };
    if let Err(e) = check(ctx, &fault.scope) {
        return error(e);
    }
    let Some(stats) = &ctx.traffic else {
        return error("no service is proxied here: a fault rides on the proxy");
    };
    let faults = stats.faults();
    let id = faults.add(fault);
    match faults.list().into_iter().find(|set| set.id == id) {
        Some(set) => done(Answer::Fault { fault: set.into() }),
        None => error(format!("fault {id} was removed as it was set")),
    }
}

/// The faults set, oldest first.
pub(super) fn list(ctx: &Context) -> Response {
    let faults = ctx.traffic.as_ref().map_or_else(Vec::new, |stats| {
        stats
            .faults()
            .list()
            .into_iter()
            .map(wire::Fault::from)
            .collect()
    });
    done(Answer::Faults { faults })
}

/// Remove fault `id`, or say it is not set.
pub(super) fn remove(ctx: &Context, id: u64) -> Response {
    let Some(stats) = &ctx.traffic else {
        return error(format!("no fault {id}: none is set"));
    };
    if stats.faults().remove(id) {
        return done(Answer::Done {});
    }
    let set: Vec<String> = stats
        .faults()
        .list()
        .iter()
        .map(|s| s.id.to_string())
        .collect();
    match set.as_slice() {
        [] => error(format!("no fault {id}: none is set")),
        set => error(format!("no fault {id}: those set are {}", set.join(", "))),
    }
}

/// Remove every fault.
pub(super) fn clear(ctx: &Context) -> Response {
    let cleared = ctx
        .traffic
        .as_ref()
        .map_or(0, |stats| stats.faults().clear());
    done(Answer::Cleared { cleared })
}

/// A scope's caller is a service of the stack or `external`; its callee a proxied service.
fn check(ctx: &Context, scope: &Scope) -> Result<(), String> {
    if let Some(caller) = scope.caller.as_deref().filter(|c| *c != EXTERNAL) {
        index(ctx, caller).map_err(|e| format!("{e} (or `{EXTERNAL}`, for a caller)"))?;
    }
    let callee = index(ctx, &scope.callee)?;
    if !ctx.proxied[callee] {
        return Err(format!(
            "{} is not proxied (it has no `port`, or `proxy = false`): a fault rides on the \
             proxy, so none can be set on it",
            scope.callee
        ));
    }
    Ok(())
}
