//! `fault_add`, `faults`, `fault_rm`, `fault_clear`, `fault_apply`: the faults set on the
//! stack's edges, held by the proxy's `Stats` (in memory: they end with the stack). A fault's
//! words are read here (`traffic::fault::parse`), so that every client gets the same errors; its
//! scope must name services of the stack, and its callee a proxied one (a fault rides on the
//! proxy). A scenario's faults were read and checked when the config was loaded.

use super::{Context, done, error, index};
use crate::control::{Answer, Response, wire};

/// Set the fault `words` say.
pub(super) fn add(ctx: &Context, words: &str) -> Response {
    let Some(stats) = &ctx.traffic else {
        return error("no service is proxied here: a fault rides on the proxy");
    };
    let service = |name: &str| index(ctx, name).map(|i| ctx.proxied[i]);
    match stats.faults().set(words, service) {
        Ok(set) => done(Answer::Fault { fault: set.into() }),
        Err(e) => error(e),
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

/// Set every fault of the scenario `name`: the faults set.
pub(super) fn apply(ctx: &Context, name: &str) -> Response {
    let faults = match ctx.scenarios.get(name) {
        Ok(faults) => faults,
        Err(e) => return error(e),
    };
    let Some(stats) = &ctx.traffic else {
        return error("no service is proxied here: a fault rides on the proxy");
    };
    let ids: Vec<u64> = faults
        .iter()
        .map(|f| stats.faults().add(f.clone()))
        .collect();
    let faults = stats
        .faults()
        .list()
        .into_iter()
        .filter(|set| ids.contains(&set.id))
        .map(wire::Fault::from)
        .collect();
    done(Answer::Faults { faults })
}
