//! `environment` and `env_file`: the service's variables (the other services' host names made
//! 127.0.0.1, `$` references made devstack's), and the stack's one `env_file`.

use super::super::{Context, Stack, Svc, env_value, rebase};
use super::text;
use serde_norway::Value;
use std::collections::HashSet;

/// `environment`, a list of `KEY=VALUE` (or `KEY`: inherited) or a mapping, into the service's
/// `env`; `names` are the services' host names.
pub(super) fn environment(svc: &mut Svc, v: &Value, cx: &Context, names: &HashSet<&str>) {
    let mut env: Vec<(String, Option<String>)> = Vec::new();
    match v {
        Value::Sequence(items) => {
            for item in items.iter().filter_map(text) {
                match item.split_once('=') {
                    Some((k, v)) => env.push((k.to_string(), Some(v.to_string()))),
                    None => env.push((item, None)),
                }
            }
        }
        Value::Mapping(m) => {
            for (k, v) in m {
                if let Some(k) = k.as_str() {
                    env.push((k.to_string(), text(v)));
                }
            }
        }
        _ => {}
    }
    let mut localised = false;
    for (k, v) in env {
        let Some(v) = v else {
            svc.note(format!(
                "{k}: taken from the environment devstack runs in (services inherit it)"
            ));
            continue;
        };
        if k == "PORT" && !svc.commented {
            svc.note(format!(
                "PORT={v} is left out: devstack gives each service its PORT"
            ));
            continue;
        }
        let mut value = env_value(cx, svc, &k, &v);
        if let Some(l) = local_hosts(&value, names, &svc.source_name) {
            value = l;
            localised = true;
        }
        svc.env.push((k, value));
    }
    if localised {
        svc.note("the other services' host names are 127.0.0.1 here: they all run on this machine");
    }
}

/// `env_file`: devstack has one, for the whole stack: the first one named becomes it.
pub(super) fn env_file(svc: &mut Svc, v: &Value, cx: &Context, stack: &mut Stack) {
    let name = svc.source_name.clone();
    let files: Vec<String> = match v {
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| match i {
                Value::Mapping(m) => m.get("path").and_then(text),
                other => text(other),
            })
            .collect(),
        other => text(other).into_iter().collect(),
    };
    for f in files {
        let f = rebase(&cx.base, &f);
        match &stack.env_file {
            None => {
                stack.env_file = Some(f.clone());
                stack.env_file_notes.push(format!(
                    "{f}: the env_file of `{name}`; devstack loads it into every service"
                ));
            }
            Some(s) if *s == f => {}
            Some(s) => svc.warn(format!(
                "env_file {f} is not loaded: devstack has one env_file for the whole stack ({s}); copy its variables into [services.{name}.env]"
            )),
        }
    }
}

/// The other services' host names in a value (`postgres://db:5432`, `REDIS_HOST=redis`) →
/// 127.0.0.1: the whole value, or a host after `/` or `@` that ends at `:`, `/` or the end.
/// One pass over the value, names looked up in a set (a regex per name made 500 services
/// take most of a minute).
fn local_hosts(value: &str, names: &HashSet<&str>, own: &str) -> Option<String> {
    let other = |host: &str| host != own && names.contains(host);
    if other(value) {
        return Some("127.0.0.1".into());
    }
    let mut out = String::with_capacity(value.len());
    let mut copied = 0;
    // Each piece between `:` and `/` delimiters; `start` is where it begins in `value`.
    let mut start = 0;
    for piece in value.split([':', '/']) {
        let end = start + piece.len();
        // A name has no `@`: only the part after the last `@` of a piece can be a host, or the
        // whole piece when it follows a `/`.
        let host_at = match piece.rfind('@') {
            Some(at) => Some(start + at + 1),
            None => (start > 0 && value.as_bytes()[start - 1] == b'/').then_some(start),
        };
        if let Some(h) = host_at
            && other(&value[h..end])
        {
            out.push_str(&value[copied..h]);
            out.push_str("127.0.0.1");
            copied = end;
        }
        start = end + 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&value[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_become_local() {
        let names: HashSet<&str> = ["db", "redis", "api"].into_iter().collect();
        let local = |v: &str| local_hosts(v, &names, "api");
        assert_eq!(
            local("postgres://app:pw@db:5432/app").as_deref(),
            Some("postgres://app:pw@127.0.0.1:5432/app")
        );
        assert_eq!(local("redis").as_deref(), Some("127.0.0.1"));
        assert_eq!(
            local("redis://redis/0,http://db").as_deref(),
            Some("redis://127.0.0.1/0,http://127.0.0.1")
        );
        assert_eq!(
            local("amqp://u:p@redis:1//db/x").as_deref(),
            Some("amqp://u:p@127.0.0.1:1//127.0.0.1/x")
        );
        assert_eq!(local("dbx://nothing"), None);
        assert_eq!(local("db:5432"), None, "no `/` or `@` before it");
        assert_eq!(local("http://api:80"), None, "its own name is left");
        assert_eq!(local("http://db@x:1"), None);
    }
}
