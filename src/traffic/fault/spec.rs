//! A fault as written on the command line, and back: the scope first (`orders->users`, `users`,
//! `external->users`), then one effect (`latency=200ms` with `jitter=50ms`, `error=503` with
//! `body=…`, `reset`, `timeout`, `bandwidth=100KB`, `cut`, `slow_close=2s`) and any triggers
//! (`rate=0.3`, `first=3`, `for=30s`, `method=GET`, `path=/api`). A bandwidth is bytes per
//! second: a whole number with `B`, `KB` (1000), `MB` (1000²), `KiB` (1024) or `MiB` (1024²),
//! any case, `/s` allowed after it.

use super::{Effect, Fault, Scope, Trigger};
use crate::traffic::grpc;
use std::time::Duration;

/// A fault written as one line (`orders->users error=503 body="users is down"`), its words
/// split as a shell would (so a body may hold spaces, quoted), then read (`parse`).
pub fn read(line: &str) -> Result<Fault, String> {
    let words = shlex::split(line).ok_or_else(|| format!("`{line}`: a quote is not closed"))?;
    parse(&words.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The words of a fault (`["orders->users", "latency=200ms", "jitter=50ms"]`).
pub fn parse(words: &[&str]) -> Result<Fault, String> {
    let (scope, rest) = words
        .split_first()
        .ok_or("say where: `orders->users`, `users` (every caller) or `external->users`")?;
    let scope = match scope.split_once("->") {
        Some((caller, callee)) if !caller.is_empty() && !callee.is_empty() => Scope {
            caller: Some(caller.to_string()),
            callee: callee.to_string(),
        },
        None if !scope.contains('=') && !scope.is_empty() => Scope {
            caller: None,
            callee: scope.to_string(),
        },
        _ => {
            return Err(format!(
                "`{scope}` is not an edge (`orders->users`) or a service"
            ));
        }
    };
    let mut effect = None;
    let (mut jitter, mut body) = (None, None);
    let mut when = Trigger::default();
    for word in rest {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        let set = match key {
            "latency" => Some(Effect::Latency {
                ms: millis(key, value)?,
                jitter_ms: 0,
            }),
            "error" => Some(error(value)?),
            "reset" => Some(Effect::Reset),
            "timeout" => Some(Effect::Timeout),
            "bandwidth" => Some(Effect::Bandwidth {
                bytes_per_sec: rate(value)?,
            }),
            "cut" => Some(Effect::Cut),
            "slow_close" => Some(Effect::SlowClose {
                ms: millis(key, value)?,
            }),
            "jitter" => {
                jitter = Some(millis(key, value)?);
                None
            }
            "body" => {
                body = Some(value.to_string());
                None
            }
            _ => {
                trigger(&mut when, key, value)?;
                None
            }
        };
        if let Some(set) = set {
            if effect.is_some() {
                return Err(format!("one effect per fault: `{word}` is a second"));
            }
            effect = Some(set);
        }
    }
    let effect = match (effect, jitter, body) {
        (None, ..) => return Err(format!("say what happens to `{scope}`: {EFFECTS}")),
        (Some(Effect::Latency { ms, .. }), jitter, None) => Effect::Latency {
            ms,
            jitter_ms: jitter.unwrap_or(0),
        },
        (Some(Effect::Error { status, grpc, .. }), None, body) => {
            Effect::Error { status, grpc, body }
        }
        (Some(_), Some(_), _) => return Err("`jitter` goes with `latency`".into()),
        (Some(_), _, Some(_)) => return Err("`body` goes with `error`".into()),
        (Some(effect), None, None) => effect,
    };
    if effect == Effect::Cut && (when.method.is_some() || when.path.is_some()) {
        return Err("`cut` is on connections: `method` and `path` never match one".into());
    }
    Ok(Fault {
        scope,
        effect,
        when,
    })
}

const EFFECTS: &str = "latency=200ms [jitter=50ms], error=503 [body=…], reset, timeout, \
                       bandwidth=100KB, cut or slow_close=2s";

/// Bytes per second, as `bandwidth=` says them (`500B`, `100KB`, `1MB`, `64KiB`, `1MiB/s`).
fn rate(value: &str) -> Result<u64, String> {
    let said = value.strip_suffix("/s").unwrap_or(value);
    let digits = said
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(said.len());
    let (number, unit) = said.split_at(digits);
    let unit = match unit.to_ascii_lowercase().as_str() {
        "b" => 1,
        "kb" => 1000,
        "mb" => 1_000_000,
        "kib" => 1024,
        "mib" => 1024 * 1024,
        _ => 0,
    };
    match number.parse::<u64>().map(|n| n.saturating_mul(unit)) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`bandwidth={value}`: bytes per second such as 500B, 100KB, 1MB or 64KiB"
        )),
    }
}

/// A bandwidth's bytes as written back: in the largest unit that divides them.
pub(super) fn bytes(n: u64) -> String {
    let units = [
        (1024 * 1024, "MiB"),
        (1_000_000, "MB"),
        (1024, "KiB"),
        (1000, "KB"),
    ];
    match units.iter().find(|(u, _)| n.is_multiple_of(*u)) {
        Some((u, name)) => format!("{}{name}", n / u),
        None => format!("{n}B"),
    }
}

fn trigger(when: &mut Trigger, key: &str, value: &str) -> Result<(), String> {
    match key {
        "rate" => {
            let rate: f64 = value.parse().map_err(|_| bad(key, value))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("`rate={value}`: a probability from 0 to 1"));
            }
            when.rate = Some(rate);
        }
        "first" => when.first = Some(value.parse().map_err(|_| bad(key, value))?),
        "for" => when.for_ms = Some(millis(key, value)?),
        "method" if !value.is_empty() => when.method = Some(value.to_ascii_uppercase()),
        "path" if value.starts_with('/') => when.path = Some(value.to_string()),
        "path" => return Err(format!("`path={value}`: a path starts with `/`")),
        _ => {
            return Err(format!(
                "`{key}` is not a fault's word: {EFFECTS}; when: rate=0.3, first=3, for=30s, \
                 method=GET, path=/api"
            ));
        }
    }
    Ok(())
}

fn bad(key: &str, value: &str) -> String {
    format!("`{key}={value}` is not a number")
}

fn millis(key: &str, value: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(value)
        .map_err(|_| format!("`{key}={value}`: a time such as 200ms or 30s"))?;
    Ok(d.as_millis() as u64)
}

/// `error=503` (an HTTP status; a gRPC call is answered the code gRPC reads off it), or
/// `error=grpc:14` / `error=grpc:unavailable` (a gRPC status; an HTTP/1 request is answered
/// the HTTP status nearest it).
fn error(value: &str) -> Result<Effect, String> {
    if let Some(code) = value.strip_prefix("grpc:") {
        let code = grpc::code(code).ok_or_else(|| {
            format!("`error={value}`: a gRPC status, 0 to 16 or its name (`grpc:unavailable`)")
        })?;
        return Ok(Effect::Error {
            status: grpc::to_http(code),
            grpc: Some(code),
            body: None,
        });
    }
    match value.parse::<u16>() {
        Ok(status @ 100..=599) => Ok(Effect::Error {
            status,
            grpc: None,
            body: None,
        }),
        _ => Err(format!(
            "`error={value}`: an HTTP status, 100 to 599, or a gRPC one (`grpc:14`)"
        )),
    }
}

fn time(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// An effect's words, as `parse` reads them.
pub(super) fn effect_words(effect: &Effect) -> String {
    match effect {
        Effect::Latency { ms, jitter_ms: 0 } => format!("latency={}", time(*ms)),
        Effect::Latency { ms, jitter_ms } => {
            format!("latency={} jitter={}", time(*ms), time(*jitter_ms))
        }
        Effect::Error { status, grpc, body } => {
            let mut words = match grpc {
                Some(code) => format!("error=grpc:{}", grpc::name(*code).to_lowercase()),
                None => format!("error={status}"),
            };
            if let Some(body) = body {
                words.push(' ');
                let word = format!("body={body}");
                // Quoted only when it would not read back as one word.
                let plain = !word.contains(|c: char| c.is_whitespace() || "'\"\\#".contains(c));
                match plain {
                    true => words.push_str(&word),
                    false => words.push_str(&shlex::try_quote(&word).unwrap_or_default()),
                }
            }
            words
        }
        Effect::Reset => "reset".into(),
        Effect::Timeout => "timeout".into(),
        Effect::Bandwidth { bytes_per_sec } => format!("bandwidth={}", bytes(*bytes_per_sec)),
        Effect::Cut => "cut".into(),
        Effect::SlowClose { ms } => format!("slow_close={}", time(*ms)),
    }
}

/// A trigger's words, as `parse` reads them.
pub(super) fn trigger_words(when: &Trigger) -> Vec<String> {
    let mut words = Vec::new();
    if let Some(rate) = when.rate {
        words.push(format!("rate={rate}"));
    }
    if let Some(n) = when.first {
        words.push(format!("first={n}"));
    }
    if let Some(ms) = when.for_ms {
        words.push(format!("for={}", time(ms)));
    }
    if let Some(m) = &when.method {
        words.push(format!("method={m}"));
    }
    if let Some(p) = &when.path {
        words.push(format!("path={p}"));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bandwidth_reads_in_the_units_it_names() {
        for (said, n) in [
            ("500B", 500),
            ("100KB", 100_000),
            ("100kb/s", 100_000),
            ("1MB", 1_000_000),
            ("64KiB", 65_536),
            ("1MiB/s", 1_048_576),
        ] {
            assert_eq!(rate(said), Ok(n), "{said}");
        }
        assert_eq!(
            parse(&["users", "bandwidth=2MB"])
                .unwrap()
                .effect
                .to_string(),
            "bandwidth 2MB/s"
        );
    }

    #[test]
    fn a_fault_reads_back_as_it_was_written() {
        for text in [
            "orders->users latency=200ms jitter=50ms",
            "users error=503 body=down first=3",
            "external->users reset rate=0.3 for=30s",
            "users timeout method=POST path=/api",
            "orders->users bandwidth=100KB",
            "users bandwidth=1MiB first=2",
            "users bandwidth=1500B",
            "external->users cut for=1m",
            "users slow_close=2s",
            "users error=grpc:unavailable",
            "users error=grpc:deadline_exceeded 'body=users is slow' path=/users.Users/",
            r#"users error=503 "body=it's down""#,
        ] {
            let fault = read(text).unwrap();
            assert_eq!(fault.to_string(), text);
        }
    }

    #[test]
    fn a_grpc_error_reads_by_number_or_name_with_the_http_status_nearest_it() {
        for said in ["users error=grpc:14", "users error=grpc:UNAVAILABLE"] {
            let effect = read(said).unwrap().effect;
            let grpc = Some(14);
            assert_eq!(
                effect,
                Effect::Error {
                    status: 503,
                    grpc,
                    body: None
                }
            );
        }
        let quoted = read(r#"users error=500 body="users is down""#).unwrap();
        assert!(
            matches!(quoted.effect, Effect::Error { body: Some(b), .. } if b == "users is down")
        );
        assert!(
            read("users error=grpc:17")
                .unwrap_err()
                .contains("a gRPC status")
        );
        assert!(
            read("users error=500 body=\"open")
                .unwrap_err()
                .contains("not closed")
        );
    }

    #[test]
    fn a_fault_that_does_not_read_says_why() {
        for (words, says) in [
            (&[][..], "say where"),
            (&["users"][..], "say what happens"),
            (&["->users", "reset"][..], "is not an edge"),
            (&["users", "reset", "timeout"][..], "one effect per fault"),
            (&["users", "latency=fast"][..], "a time such as"),
            (&["users", "error=700"][..], "an HTTP status"),
            (&["users", "reset", "rate=2"][..], "from 0 to 1"),
            (
                &["users", "reset", "jitter=5ms"][..],
                "`jitter` goes with `latency`",
            ),
            (&["users", "reset", "colour=red"][..], "not a fault's word"),
            (&["users", "reset", "path=api"][..], "starts with `/`"),
            (&["users", "bandwidth=fast"][..], "bytes per second"),
            (&["users", "bandwidth=0KB"][..], "bytes per second"),
            (&["users", "bandwidth=10GB"][..], "bytes per second"),
            (&["users", "slow_close=soon"][..], "a time such as"),
            (
                &["users", "cut", "path=/api"][..],
                "`cut` is on connections",
            ),
        ] {
            let e = parse(words).unwrap_err();
            assert!(e.contains(says), "{words:?}: {e}");
        }
    }
}
