//! A Redis command as the tail shows it: its name (both words of a command with subcommands,
//! `CLIENT SETNAME`) and its first key, never an argument of `AUTH` or `HELLO`'s credentials.

use super::resp::{self, Frame};
use crate::traffic::decode::{MAX_TEXT, printable};
use redis_protocol::resp3::types::RangeFrame;
use std::borrow::Cow;

/// A command's name is cut to this many characters.
pub const MAX_NAME: usize = 40;

/// A command's name and what is shown of it (`GET user:42`), and its arguments' count; None
/// for no command (`*0`, an empty line: Redis answers nothing). `args` gets its first
/// arguments.
pub fn read<'a>(
    frame: &'a Frame,
    args: &mut Vec<Cow<'a, [u8]>>,
) -> Option<(String, String, usize)> {
    let argc;
    (*args, argc) = arguments(frame, 3);
    let name = command_name(args.first()?, args.get(1));
    if KEY_FURTHER.contains(&name.as_str()) {
        *args = arguments(frame, resp::PARTS).0;
    }
    let request = match key_index(&name, args) {
        Some(i) if i < args.len() => {
            let room = MAX_TEXT.saturating_sub(name.len() + 1);
            format!("{name} {}", printable(&args[i], room))
        }
        _ => name.clone(),
    };
    Some((name, request, argc))
}

/// Commands whose first key may lie past their third argument.
const KEY_FURTHER: &[&str] = &[
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
    "XREAD",
    "XREADGROUP",
    "MIGRATE",
];

/// A command's first `n` arguments (of those the scanner located), and how many it has in all.
fn arguments<'a>(frame: &'a Frame, n: usize) -> (Vec<Cow<'a, [u8]>>, usize) {
    if frame.kind == 0 {
        let line = frame.bytes.trim_ascii_end();
        let words = shlex::bytes::split(line).unwrap_or_else(|| {
            line.split(|b| b.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        });
        let argc = words.len();
        return (words.into_iter().map(Cow::Owned).collect(), argc);
    }
    let argc = frame.count.unwrap_or(0).max(0) as usize;
    let args = (0..frame.parts.len().min(n))
        .map(|i| Cow::Borrowed(frame.part_bytes(i).unwrap_or_default()))
        .collect();
    (args, argc)
}

/// All of a whole command's arguments, its name first (None: not all kept, or not a command).
pub fn all(frame: &Frame) -> Option<Vec<Vec<u8>>> {
    if !frame.whole {
        return None;
    }
    if frame.kind == 0 {
        let (words, _) = arguments(frame, usize::MAX);
        return Some(words.into_iter().map(Cow::into_owned).collect());
    }
    let RangeFrame::Array { data, .. } = resp::value(frame.bytes)? else {
        return None;
    };
    data.iter()
        .map(|part| match part {
            RangeFrame::BlobString { data, .. } | RangeFrame::SimpleString { data, .. } => {
                frame.bytes.get(data.0..data.1).map(<[u8]>::to_vec)
            }
            _ => None,
        })
        .collect()
}

/// Commands that hold subcommands: their name is both words.
const CONTAINERS: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY",
    "MODULE", "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
];

/// `GET`, `CLIENT SETNAME`: upper case, cut.
fn command_name(first: &[u8], second: Option<&Cow<[u8]>>) -> String {
    let name = printable(first, MAX_NAME).to_ascii_uppercase();
    match second {
        Some(sub) if CONTAINERS.contains(&name.as_str()) => {
            format!("{name} {}", printable(sub, MAX_NAME).to_ascii_uppercase())
        }
        _ => name,
    }
}

/// Commands whose arguments are not keys, or never shown (`AUTH`'s, `HELLO`'s credentials):
/// the name alone is shown.
const KEYLESS: &[&str] = &[
    "AUTH",
    "PING",
    "ECHO",
    "QUIT",
    "RESET",
    "MULTI",
    "EXEC",
    "DISCARD",
    "UNWATCH",
    "DBSIZE",
    "FLUSHDB",
    "FLUSHALL",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
    "LASTSAVE",
    "TIME",
    "ROLE",
    "SHUTDOWN",
    "SWAPDB",
    "WAIT",
    "WAITAOF",
    "FAILOVER",
    "REPLICAOF",
    "SLAVEOF",
    "SYNC",
    "PSYNC",
    "MONITOR",
    "READONLY",
    "READWRITE",
    "RANDOMKEY",
    "SCAN",
    "SELECT",
    "INFO",
    "LOLWUT",
    "ASKING",
    "REPLCONF",
];

/// Where a command's first key is among its arguments (None: none to show).
fn key_index(name: &str, args: &[Cow<[u8]>]) -> Option<usize> {
    match name {
        "HELLO" => args.get(1)?.iter().all(u8::is_ascii_digit).then_some(1),
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" => {
            let keys: u64 = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            (keys > 0).then_some(3)
        }
        "XREAD" | "XREADGROUP" => args
            .iter()
            .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))
            .map(|i| i + 1),
        "BITOP" => Some(2),
        "MIGRATE" => Some(3),
        _ if KEYLESS.contains(&name) => None,
        _ if name.contains(' ') => {
            let keyed = ["OBJECT ", "MEMORY USAGE", "XINFO ", "XGROUP "];
            keyed.iter().any(|k| name.starts_with(k)).then_some(2)
        }
        _ => Some(1),
    }
}
