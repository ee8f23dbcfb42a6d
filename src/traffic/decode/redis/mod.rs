//! Redis: each command (RESP2/RESP3 arrays, or inline commands) matched with its reply, in
//! order, as pipelining has it. Frames are found by `resp::Scanner` and read by `redis-protocol`.
//!
//! What is not a reply to a command is told apart: pub/sub messages (a RESP2 array
//! `message`/`pmessage`/`smessage` while subscribed, any RESP3 push), the confirmations of a
//! `SUBSCRIBE` (one per channel, all of them the one reply of that command), `MONITOR`'s feed,
//! and the commands `CLIENT REPLY OFF`/`SKIP` silence. A reply that answers nothing makes the
//! decoder give up rather than mis-match what follows.

mod command;
mod resp;

use super::resend::{self, Resend};
use super::{Decoder, Exchange, KEEP, MAX_ERROR, MAX_PENDING, Protocol, State, printable};
use crate::format;
use command::MAX_NAME;
use redis_protocol::resp3::types::RangeFrame;
pub use resp::NotResp;
use resp::{Frame, STREAMED, Scanner};
use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

/// Subscriptions counted per family past which the decoder gives up.
const MAX_SUBSCRIPTIONS: usize = 10_000;

/// Commands taken for an inline command (a line of words) when a connection opens with one.
const INLINE: &[&str] = &[
    "PING",
    "AUTH",
    "SELECT",
    "INFO",
    "ECHO",
    "QUIT",
    "GET",
    "SET",
    "DEL",
    "EXISTS",
    "INCR",
    "DECR",
    "EXPIRE",
    "TTL",
    "TYPE",
    "KEYS",
    "SCAN",
    "MGET",
    "MSET",
    "HGET",
    "HSET",
    "HGETALL",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "LRANGE",
    "LLEN",
    "SADD",
    "SMEMBERS",
    "ZADD",
    "ZRANGE",
    "PUBLISH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "MONITOR",
    "FLUSHALL",
    "FLUSHDB",
    "DBSIZE",
    "CLIENT",
    "CONFIG",
    "COMMAND",
];

/// Whether a connection opening with `first` speaks Redis: a RESP array (`*` and a digit), or
/// an inline command among the common ones.
pub fn looks_like(first: &[u8]) -> bool {
    match first {
        [b'*', digit, ..] => digit.is_ascii_digit(),
        [] | [b'*'] => false,
        _ => {
            let line = first.split(|&b| b == b'\n').next().unwrap_or_default();
            let Some(end) = line.iter().position(|&b| matches!(b, b' ' | b'\r')) else {
                return false;
            };
            let http = line.windows(6).any(|w| w == b" HTTP/");
            let word = String::from_utf8_lossy(&line[..end]).to_ascii_uppercase();
            !http && INLINE.contains(&word.as_str())
        }
    }
}

/// A passive Redis decoder of one connection.
pub struct Redis {
    commands: Scanner,
    replies: Scanner,
    /// When the command being read began (its first bytes came in an earlier read).
    since: Option<Instant>,
    matcher: Matcher,
}

impl Default for Redis {
    fn default() -> Self {
        Redis::new()
    }
}

impl Redis {
    pub fn new() -> Redis {
        Redis {
            commands: Scanner::new(true),
            replies: Scanner::new(false),
            since: None,
            matcher: Matcher::default(),
        }
    }
}

/// Where a caller's commands (or a service's replies) end, in any chunking, and each
/// command's name: for the proxy's faults asked per command (`tcp::commands`).
pub struct Frames {
    scanner: Scanner,
    commands: bool,
}

/// A frame that ended: where in the chunk it ends, and what it was.
pub struct Ended {
    /// Bytes of the chunk up to its end.
    pub at: usize,
    /// A command's name (`GET`, `CLIENT REPLY`); empty for a reply, or no command (`*0`).
    pub name: String,
    /// A RESP3 push (`>`): said by the service unasked, a reply to no command.
    pub push: bool,
}

impl Frames {
    /// A caller's commands.
    pub fn commands() -> Frames {
        Frames {
            scanner: Scanner::new(true),
            commands: true,
        }
    }

    /// A service's replies.
    pub fn replies() -> Frames {
        Frames {
            scanner: Scanner::new(false),
            commands: false,
        }
    }

    /// The frames that end in `chunk` (the stream's next bytes); Err once they are not RESP.
    pub fn ends(&mut self, chunk: &[u8]) -> Result<Vec<Ended>, NotResp> {
        let mut rest = chunk;
        let mut ended = Vec::new();
        while let Some(frame) = self.scanner.next(&mut rest)? {
            let name = match self.commands {
                true => command::read(&frame, &mut Vec::new()).map(|(name, ..)| name),
                false => None,
            };
            ended.push(Ended {
                at: chunk.len() - rest.len(),
                name: name.unwrap_or_default(),
                push: frame.kind == b'>',
            });
        }
        Ok(ended)
    }

    /// Whether a frame has begun and not ended.
    pub fn mid_frame(&self) -> bool {
        self.scanner.mid_frame()
    }
}

impl Decoder for Redis {
    fn protocol(&self) -> Protocol {
        Protocol::Redis
    }

    fn caller_sent(&mut self, mut bytes: &[u8], at: Instant) {
        let mut since = self.since.take().unwrap_or(at);
        while self.matcher.state == State::Decoding {
            match self.commands.next(&mut bytes) {
                Ok(Some(frame)) => self.matcher.command(&frame, since),
                Ok(None) => break,
                Err(NotResp) => self.matcher.give_up(),
            }
            since = at;
        }
        if self.commands.mid_frame() {
            self.since = Some(since);
        }
    }

    fn service_sent(&mut self, mut bytes: &[u8], at: Instant) {
        while self.matcher.state == State::Decoding {
            match self.replies.next(&mut bytes) {
                Ok(Some(frame)) => self.matcher.reply(&frame, at),
                Ok(None) => break,
                Err(NotResp) => self.matcher.give_up(),
            }
        }
    }

    fn end(&mut self, at: Instant) {
        while let Some(p) = self.matcher.pending.pop_front() {
            let exchange = p.exchange("no reply".into(), None, at);
            self.matcher.done.push(exchange);
        }
    }

    fn take(&mut self) -> Vec<Exchange> {
        std::mem::take(&mut self.matcher.done)
    }

    fn state(&self) -> State {
        self.matcher.state
    }

    fn keep(&mut self, cap: usize) {
        self.matcher.keep = Some(cap.min(KEEP));
    }
}

/// Which subscriptions a command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Channel = 0,
    Pattern = 1,
    Shard = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    /// `(P|S)(UN)SUBSCRIBE`: answered by one confirmation per channel (`left`; None: an
    /// unsubscription from all, as many as there are, one at least).
    Subscription {
        family: Family,
        subscribe: bool,
        left: Option<usize>,
    },
    Monitor,
    Reset,
    Hello,
}

/// A command waiting for its reply.
struct Pending {
    request: String,
    group: String,
    started: Instant,
    kind: Kind,
    resend: Option<Arc<Resend>>,
}

impl Pending {
    fn exchange(self, outcome: String, error: Option<String>, at: Instant) -> Exchange {
        Exchange {
            protocol: Protocol::Redis,
            request: self.request,
            group: self.group,
            outcome,
            error,
            started: self.started,
            latency: at.saturating_duration_since(self.started),
            resend: self.resend,
        }
    }
}

/// What is matched: commands waiting, the connection's modes, the exchanges done.
struct Matcher {
    pending: VecDeque<Pending>,
    done: Vec<Exchange>,
    state: State,
    /// Hashes of the channels, patterns and shard channels subscribed to.
    subscriptions: [HashSet<u64>; 3],
    /// After `HELLO 3`: only push frames are out of band.
    resp3: bool,
    monitor: bool,
    /// `CLIENT REPLY OFF`, and `SKIP` (the next command is not answered).
    replies_off: bool,
    skip_next: bool,
    /// Keep what a replay needs of commands up to this many bytes (`Decoder::keep`).
    keep: Option<usize>,
    /// The database the last `SELECT` chose.
    db: Option<u64>,
}

impl Default for Matcher {
    fn default() -> Self {
        Matcher {
            pending: VecDeque::new(),
            done: Vec::new(),
            state: State::Decoding,
            subscriptions: Default::default(),
            resp3: false,
            monitor: false,
            replies_off: false,
            skip_next: false,
            keep: None,
            db: None,
        }
    }
}

impl Matcher {
    fn give_up(&mut self) {
        self.state = State::GaveUp;
        self.pending = VecDeque::new();
        self.subscriptions = Default::default();
    }

    fn command(&mut self, frame: &Frame, started: Instant) {
        let mut args = Vec::new();
        let Some((name, request, argc)) = command::read(frame, &mut args) else {
            return; // `*0` or an empty line: Redis answers nothing
        };
        let kind = kind_of(&name, argc);
        let mut silent = std::mem::take(&mut self.skip_next) || self.replies_off;
        if name == "CLIENT REPLY" {
            match args.get(2).map(|a| a.to_ascii_uppercase()).as_deref() {
                Some(b"ON") => (self.replies_off, silent) = (false, false),
                Some(b"OFF") => (self.replies_off, silent) = (true, true),
                Some(b"SKIP") => (self.skip_next, silent) = (true, true),
                _ => {}
            }
        }
        let resend = self.resend(frame, &name, kind);
        let pending = Pending {
            request,
            group: name,
            started,
            kind,
            resend,
        };
        if silent {
            self.done
                .push(pending.exchange("no reply".into(), None, started));
        } else if self.pending.len() >= MAX_PENDING {
            self.give_up();
        } else {
            self.pending.push_back(pending);
        }
    }

    /// What a replay needs of this command (when asked to keep it); a `SELECT`'s database is
    /// noted for the commands after it, as the server takes it (before its reply: pipelined).
    fn resend(&mut self, frame: &Frame, name: &str, kind: Kind) -> Option<Arc<Resend>> {
        let cap = self.keep?;
        let args = (frame.size <= cap as u64)
            .then(|| command::all(frame))
            .flatten();
        match (name, kind) {
            ("SELECT", _) => {
                let db = args.as_ref().and_then(|a| a.get(1)).map(|d| d.as_slice());
                self.db = db.and_then(|d| std::str::from_utf8(d).ok()?.parse().ok());
            }
            (_, Kind::Reset) => self.db = None,
            _ => {}
        }
        let resend = match args {
            _ if name == "AUTH" || kind == Kind::Hello => Resend::credential(),
            _ if frame.size > cap as u64 => Resend::cut(frame.size, cap),
            Some(args) => Resend::Redis(resend::Command { args, db: self.db }),
            None => Resend::Withheld("its arguments could not be read".into()),
        };
        Some(Arc::new(resend))
    }

    fn reply(&mut self, frame: &Frame, at: Instant) {
        if self.monitor {
            return; // MONITOR's feed: every command the server runs
        }
        let push = frame.kind == b'>';
        let subscribed = !self.resp3 && self.subscriptions.iter().any(|s| !s.is_empty());
        let subscribing = matches!(
            self.pending.front(),
            Some(Pending {
                kind: Kind::Subscription { .. },
                ..
            })
        );
        if push || (frame.kind == b'*' && (subscribed || subscribing)) {
            let word = frame.part_bytes(0).map(|w| w.to_ascii_lowercase());
            match word.as_deref().and_then(subscription_word) {
                Some((family, subscribe)) if self.expects(family, subscribe) => {
                    return self.confirm(frame, family, subscribe, at);
                }
                _ if push => return,
                _ => {}
            }
            let message = matches!(
                word.as_deref(),
                Some(b"message" | b"pmessage" | b"smessage")
            );
            if message && subscribed {
                return;
            }
        }
        let Some(pending) = self.pending.pop_front() else {
            return self.give_up(); // a reply to nothing: what follows could not be matched
        };
        let (outcome, error) = describe(frame);
        match pending.kind {
            Kind::Monitor if error.is_none() => self.monitor = true,
            Kind::Reset => {
                (self.resp3, self.replies_off) = (false, false);
                self.subscriptions = Default::default();
            }
            Kind::Hello if error.is_none() => self.resp3 = frame.kind == b'%',
            _ => {}
        }
        self.done.push(pending.exchange(outcome, error, at));
    }

    /// Whether the command waiting first is a (un)subscription of this family.
    fn expects(&self, family: Family, subscribe: bool) -> bool {
        matches!(self.pending.front(), Some(Pending { kind: Kind::Subscription { family: f, subscribe: s, .. }, .. }) if *f == family && *s == subscribe)
    }

    /// One confirmation of the (un)subscription waiting first; the last one completes it.
    fn confirm(&mut self, frame: &Frame, family: Family, subscribe: bool, at: Instant) {
        let set = &mut self.subscriptions[family as usize];
        let before = set.len();
        let channel = frame.part_bytes(1).map(hash);
        if let Some(channel) = channel {
            if subscribe {
                set.insert(channel);
            } else {
                set.remove(&channel);
            }
        }
        if set.len() > MAX_SUBSCRIPTIONS {
            return self.give_up();
        }
        let count = match frame.part(2) {
            Some(RangeFrame::Number { data, .. }) => data,
            _ => set.len() as i64,
        };
        let Some(Pending {
            kind: Kind::Subscription { left, .. },
            ..
        }) = self.pending.front_mut()
        else {
            return;
        };
        let remaining = left.unwrap_or(before.max(1)).saturating_sub(1);
        *left = Some(remaining);
        if remaining == 0 {
            let pending = self.pending.pop_front().expect("the front was just seen");
            let outcome = format::plural(count.max(0) as usize, "subscription");
            self.done.push(pending.exchange(outcome, None, at));
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// `subscribe` → (channels, true), `punsubscribe` → (patterns, false), …
fn subscription_word(word: &[u8]) -> Option<(Family, bool)> {
    Some(match word {
        b"subscribe" => (Family::Channel, true),
        b"unsubscribe" => (Family::Channel, false),
        b"psubscribe" => (Family::Pattern, true),
        b"punsubscribe" => (Family::Pattern, false),
        b"ssubscribe" => (Family::Shard, true),
        b"sunsubscribe" => (Family::Shard, false),
        _ => return None,
    })
}

fn kind_of(name: &str, argc: usize) -> Kind {
    let channels = argc.saturating_sub(1);
    let (family, subscribe) = match name {
        "MONITOR" => return Kind::Monitor,
        "RESET" => return Kind::Reset,
        "HELLO" => return Kind::Hello,
        "SUBSCRIBE" => (Family::Channel, true),
        "PSUBSCRIBE" => (Family::Pattern, true),
        "SSUBSCRIBE" => (Family::Shard, true),
        "UNSUBSCRIBE" => (Family::Channel, false),
        "PUNSUBSCRIBE" => (Family::Pattern, false),
        "SUNSUBSCRIBE" => (Family::Shard, false),
        _ => return Kind::Plain,
    };
    if subscribe && channels == 0 {
        return Kind::Plain; // answered by an error
    }
    Kind::Subscription {
        family,
        subscribe,
        left: (channels > 0).then_some(channels),
    }
}

/// A reply's outcome, and its error's text when it is one: a blob's size or an aggregate's count
/// from its first line, a value read by `redis-protocol`.
fn describe(frame: &Frame) -> (String, Option<String>) {
    let sized = matches!(frame.kind, b'$' | b'=' | b'*' | b'%' | b'~' | b'>');
    if !sized
        && frame.whole
        && let Some(value) = resp::value(frame.bytes)
        && let Some(described) = describe_value(&value, frame.bytes)
    {
        return described;
    }
    let count = frame.count.unwrap_or(0);
    let outcome = match (frame.kind, count) {
        (b'$' | b'*', -1) => "nil".into(),
        (_, STREAMED) => format!("streamed {}", format::bytes(frame.size)),
        (b'$', n) => format!("bulk {}", format::bytes(n as u64)),
        (b'=', n) => format!("verbatim {}", format::bytes(n.saturating_sub(4) as u64)),
        (b'*', n) => format!("array {n}"),
        (b'%', n) => format!("map {n}"),
        (b'~', n) => format!("set {n}"),
        (b'>', n) => format!("push {n}"),
        (b'!', _) => {
            let text = frame
                .bytes
                .splitn(2, |&b| b == b'\n')
                .nth(1)
                .unwrap_or_default();
            return ("error".into(), Some(printable(text, MAX_ERROR)));
        }
        _ => format!("reply {}", format::bytes(frame.size)),
    };
    (outcome, None)
}

fn describe_value(value: &RangeFrame, bytes: &[u8]) -> Option<(String, Option<String>)> {
    let text = |(a, b): (usize, usize)| bytes.get(a..b).unwrap_or_default();
    let outcome = match value {
        RangeFrame::SimpleString { data, .. } => printable(text(*data), MAX_NAME),
        RangeFrame::SimpleError { data, .. } | RangeFrame::BlobError { data, .. } => {
            return Some(("error".into(), Some(printable(text(*data), MAX_ERROR))));
        }
        RangeFrame::BlobString { data, .. } => {
            format!("bulk {}", format::bytes((data.1 - data.0) as u64))
        }
        RangeFrame::VerbatimString { data, .. } => {
            format!("verbatim {}", format::bytes((data.1 - data.0) as u64))
        }
        RangeFrame::Number { data, .. } => format!("integer {data}"),
        RangeFrame::Double { data, .. } => format!("double {data}"),
        RangeFrame::Boolean { data, .. } => data.to_string(),
        RangeFrame::BigNumber { data, .. } => {
            format!("bignum {}", printable(text(*data), MAX_NAME))
        }
        RangeFrame::Null => "nil".into(),
        RangeFrame::Array { data, .. } => format!("array {}", data.len()),
        RangeFrame::Push { data, .. } => format!("push {}", data.len()),
        RangeFrame::Map { data, .. } => format!("map {}", data.len()),
        RangeFrame::Set { data, .. } => format!("set {}", data.len()),
        _ => return None,
    };
    Some((outcome, None))
}

#[cfg(test)]
mod tests;
