//! PostgreSQL: the startup (user, database), SSL and GSS requests (accepted: the connection is
//! encrypted, nothing more to read; refused: plain goes on), each simple query (`Query`) and
//! each extended-protocol execution (`Parse`/`Bind`/`Execute`/`Sync`, prepared statements
//! reused by name) with its result (the CommandComplete's tag, rows counted from `DataRow`s)
//! or its error (SQLSTATE and message), COPY in and out, timed from the request to its answer.
//!
//! The caller's messages are queued as what each is answered by, in order; each message of the
//! server must answer the first queued one (a `ParseComplete` a `Parse`, a `ReadyForQuery` a
//! `Sync` or a `Query`, …), or the decoder gives up rather than mis-match what follows. After
//! an error in an extended batch, the server skips what follows up to the `Sync`, and so does
//! the queue: the batch's first `Execute` (or `Parse`) carries the error.

mod kept;
mod message;
mod sql;

pub use sql::{normalize, plain};

use super::resend::Resend;
use super::{Decoder, Exchange, KEEP, MAX_ERROR, MAX_PENDING, MAX_TEXT, Protocol, State, one_line};
use crate::format;
use message::{Answer, Bad, Framer, Msg};
pub use message::{error_fields, fatal, opening};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// At most this many prepared statements are remembered per connection (past it, one is
/// forgotten: its executions show its name).
const MAX_STATEMENTS: usize = 512;
/// At most this many portals.
const MAX_PORTALS: usize = 64;

/// Whether a connection opening with `first` speaks PostgreSQL: an SSL, GSS or cancel
/// request, or a version 3 startup message (8 bytes are needed to tell).
pub fn looks_like(first: &[u8]) -> bool {
    let (Some(len), Some(code)) = (message::code(first), first.get(4..).and_then(message::code))
    else {
        return false;
    };
    match code {
        message::SSL_REQUEST | message::GSS_REQUEST => len == 8,
        message::CANCEL_REQUEST => len == 16,
        version => version >> 16 == 3 && (9..=message::MAX_STARTUP).contains(&len),
    }
}

/// A passive PostgreSQL decoder of one connection.
pub struct Postgres {
    caller: Framer,
    service: Framer,
    /// When the caller's message being read began (its first bytes came in an earlier read).
    since: Option<Instant>,
    conn: Conn,
}

impl Default for Postgres {
    fn default() -> Self {
        Postgres::new()
    }
}

impl Postgres {
    pub fn new() -> Postgres {
        Postgres {
            caller: Framer::caller(),
            service: Framer::service(),
            since: None,
            conn: Conn::default(),
        }
    }
}

impl Decoder for Postgres {
    fn protocol(&self) -> Protocol {
        Protocol::Postgres
    }

    fn caller_sent(&mut self, mut bytes: &[u8], at: Instant) {
        let mut since = self.since.take().unwrap_or(at);
        while self.conn.state == State::Decoding {
            if self.conn.negotiating.is_some() && !bytes.is_empty() {
                return self.conn.give_up(); // the caller waits for the answer before it goes on
            }
            match self.caller.next(&mut bytes) {
                Ok(Some(msg)) => self.conn.frontend(&msg, since),
                Ok(None) => break,
                Err(Bad) => self.conn.give_up(),
            }
            since = at;
        }
        if self.caller.mid_message() {
            self.since = Some(since);
        }
    }

    fn service_sent(&mut self, mut bytes: &[u8], at: Instant) {
        while self.conn.state == State::Decoding && !bytes.is_empty() {
            if let Some((&answer, rest)) = bytes.split_first()
                && self.conn.negotiating.is_some()
            {
                bytes = rest;
                self.conn.negotiated(answer, at);
                continue;
            }
            match self.service.next(&mut bytes) {
                Ok(Some(msg)) => self.conn.backend(&msg, at),
                Ok(None) => break,
                Err(Bad) => self.conn.give_up(),
            }
        }
    }

    fn end(&mut self, at: Instant) {
        while let Some(item) = self.conn.items.pop_front() {
            if let Item::Asked(asked) = item {
                let error = asked.error.clone();
                self.conn.done(asked, "no reply".into(), error, at);
            }
        }
    }

    fn take(&mut self) -> Vec<Exchange> {
        std::mem::take(&mut self.conn.done)
    }

    fn state(&self) -> State {
        self.conn.state
    }

    fn keep(&mut self, cap: usize) {
        self.conn.keep = Some(cap.min(KEEP));
    }
}

/// A query as shown and as grouped.
#[derive(Clone)]
struct Query {
    shown: Arc<str>,
    group: Arc<str>,
    /// What a replay needs of it, when kept.
    resend: Option<Arc<Resend>>,
}

impl Query {
    fn of(text: &[u8]) -> Query {
        let text = String::from_utf8_lossy(text);
        let group = normalize(&text);
        // A password set in a query is not shown: the normalised query is.
        let secret = Query::secret_text(&group);
        let shown = if secret {
            group.clone()
        } else {
            one_line(&text, MAX_TEXT)
        };
        Query {
            shown: shown.into(),
            group: group.into(),
            resend: None,
        }
    }

    /// It sets a password: it is not shown, nor kept.
    fn secret(&self) -> bool {
        Query::secret_text(&self.group)
    }

    fn secret_text(group: &str) -> bool {
        group.to_ascii_uppercase().contains("PASSWORD")
    }

    fn named(shown: String, group: &str) -> Query {
        Query {
            shown: shown.into(),
            group: group.into(),
            resend: None,
        }
    }
}

/// What is asked: a startup and a simple query are answered by the ReadyForQuery that ends
/// them, an `Execute` by its CommandComplete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ask {
    Startup,
    Simple,
    Execute,
}

/// An exchange waiting for its answer.
struct Asked {
    query: Query,
    started: Instant,
    ask: Ask,
    rows: u64,
    /// The last CommandComplete's tag, and how many came (a simple query may hold several).
    tag: Option<String>,
    error: Option<String>,
}

/// A caller's message waiting for its answer.
enum Item {
    Asked(Asked),
    /// `Parse` (its query, should it fail), `Bind`, `Close`: answered by `1`, `2`, `3`.
    Step {
        answer: u8,
        query: Query,
        started: Instant,
    },
    /// `Describe`: of a statement (`t` first), or of a portal; then `T` or `n`.
    Describe,
    Sync,
}

/// SSL or GSS encryption asked for, waiting for the server's one byte.
#[derive(Clone, Copy)]
struct Negotiation {
    ssl: bool,
    started: Instant,
}

struct Conn {
    items: VecDeque<Item>,
    done: Vec<Exchange>,
    state: State,
    statements: HashMap<Box<[u8]>, Query>,
    portals: HashMap<Box<[u8]>, Query>,
    negotiating: Option<Negotiation>,
    /// After an error in an extended batch: the server skips all up to the `Sync`.
    skip_to_sync: bool,
    /// Keep what a replay needs of queries up to this many bytes (`Decoder::keep`).
    keep: Option<usize>,
    /// The startup's user and database.
    user: String,
    database: String,
}

impl Default for Conn {
    fn default() -> Self {
        Conn {
            items: VecDeque::new(),
            done: Vec::new(),
            state: State::Decoding,
            statements: HashMap::new(),
            portals: HashMap::new(),
            negotiating: None,
            skip_to_sync: false,
            keep: None,
            user: String::new(),
            database: String::new(),
        }
    }
}

impl Asked {
    fn new(query: Query, started: Instant, ask: Ask) -> Asked {
        Asked {
            query,
            started,
            ask,
            rows: 0,
            tag: None,
            error: None,
        }
    }
}

impl Conn {
    fn give_up(&mut self) {
        self.state = State::GaveUp;
        self.items = VecDeque::new();
        self.statements = HashMap::new();
        self.portals = HashMap::new();
    }

    fn done(&mut self, asked: Asked, outcome: String, error: Option<String>, at: Instant) {
        let resend = asked.query.resend.clone().or_else(|| {
            let why = format!("`{}` is not a query: only queries are", asked.query.shown);
            self.keep.map(|_| Arc::new(Resend::Withheld(why)))
        });
        self.done.push(Exchange {
            protocol: Protocol::Postgres,
            request: asked.query.shown.to_string(),
            group: asked.query.group.to_string(),
            outcome,
            error,
            started: asked.started,
            latency: at.saturating_duration_since(asked.started),
            resend,
        });
    }

    fn push(&mut self, item: Item) {
        if self.items.len() >= MAX_PENDING {
            return self.give_up();
        }
        self.items.push_back(item);
    }

    fn ask(&mut self, query: Query, started: Instant, ask: Ask) {
        self.push(Item::Asked(Asked::new(query, started, ask)));
    }

    /// A caller's message.
    fn frontend(&mut self, msg: &Msg, at: Instant) {
        if self.skip_to_sync && msg.tag != b'S' {
            return;
        }
        let mut body = msg.body;
        match msg.tag {
            0 => self.opening(body, at),
            b'Q' => {
                let text = message::string(&mut body);
                let query = self.kept(Query::of(text), msg.size, text, Vec::new(), false);
                self.ask(query, at, Ask::Simple)
            }
            b'F' => self.ask(
                Query::named("function call".into(), "function call"),
                at,
                Ask::Simple,
            ),
            b'P' => {
                let name = message::string(&mut body);
                let text = message::string(&mut body);
                let types = message::types(body);
                let query = self.kept(Query::of(text), msg.size, text, types, true);
                remember(&mut self.statements, name, query.clone(), MAX_STATEMENTS);
                self.push(Item::Step {
                    answer: b'1',
                    query,
                    started: at,
                });
            }
            b'B' => {
                let portal = message::string(&mut body);
                let name = message::string(&mut body);
                let query = self.statements.get(name).cloned().unwrap_or_else(|| {
                    let shown = format!("EXECUTE {}", String::from_utf8_lossy(name));
                    Query::named(one_line(&shown, MAX_TEXT), "EXECUTE")
                });
                let query = self.bound(query, msg.size, body);
                remember(&mut self.portals, portal, query.clone(), MAX_PORTALS);
                self.push(Item::Step {
                    answer: b'2',
                    query,
                    started: at,
                });
            }
            b'E' => {
                let portal = message::string(&mut body);
                let query = self.portals.get(portal).cloned();
                let query = query.unwrap_or_else(|| Query::named("EXECUTE".into(), "EXECUTE"));
                self.ask(query, at, Ask::Execute);
            }
            b'C' => {
                let (kind, mut name) = body.split_first().map_or((0, &[][..]), |(k, n)| (*k, n));
                let name = message::string(&mut name);
                match kind {
                    b'S' => self.statements.remove(name),
                    _ => self.portals.remove(name),
                };
                let query = Query::named("Close".into(), "Close");
                self.push(Item::Step {
                    answer: b'3',
                    query,
                    started: at,
                });
            }
            b'D' => self.push(Item::Describe),
            b'S' => {
                self.skip_to_sync = false;
                self.push(Item::Sync);
            }
            // Flush, Terminate, CopyData/Done/Fail, a password or SASL answer: nothing waits.
            b'H' | b'X' | b'd' | b'c' | b'f' | b'p' => {}
            _ => self.give_up(),
        }
    }

    /// The caller's untyped first messages: startup, SSL, GSS or cancel request.
    fn opening(&mut self, body: &[u8], at: Instant) {
        match message::code(body) {
            Some(message::SSL_REQUEST) => {
                self.negotiating = Some(Negotiation {
                    ssl: true,
                    started: at,
                })
            }
            Some(message::GSS_REQUEST) => {
                self.negotiating = Some(Negotiation {
                    ssl: false,
                    started: at,
                })
            }
            Some(message::CANCEL_REQUEST) => {
                let query = Query::named("cancel request".into(), "cancel request");
                self.done(Asked::new(query, at, Ask::Simple), "sent".into(), None, at);
            }
            Some(version) if version >> 16 == 3 => {
                let params = message::parameters(body);
                let param = |name: &[u8]| {
                    params
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| String::from_utf8_lossy(v))
                };
                let user = param(b"user").unwrap_or_default();
                let database = param(b"database").unwrap_or_else(|| user.clone());
                (self.user, self.database) = (user.to_string(), database.to_string());
                let shown = format!("startup user={user} database={database}");
                let query = Query::named(one_line(&shown, MAX_TEXT), "startup");
                self.ask(query, at, Ask::Startup);
            }
            _ => self.give_up(),
        }
    }

    /// The server's one-byte answer to an SSL or GSS request.
    fn negotiated(&mut self, answer: u8, at: Instant) {
        let Some(asked) = self.negotiating.take() else {
            return;
        };
        let name = if asked.ssl {
            "SSLRequest"
        } else {
            "GSSENCRequest"
        };
        let query = Query::named(name.into(), "startup");
        let exchange = Asked::new(query, asked.started, Ask::Startup);
        match (answer, asked.ssl) {
            (b'S', true) | (b'G', false) => {
                self.done(exchange, "encrypted".into(), None, at);
                self.state = State::Encrypted;
            }
            (b'N', _) => self.done(exchange, "refused".into(), None, at),
            _ => self.give_up(),
        }
    }

    /// A server's message: it must answer the first item waiting.
    fn backend(&mut self, msg: &Msg, at: Instant) {
        let Some(answer) = message::answer(msg.tag, msg.body) else {
            return self.give_up();
        };
        let ok = match (msg.tag, answer) {
            // Out of band at any time: notices, notifications, parameters, authentication.
            (b'N' | b'A' | b'S' | b'R' | b'K' | b'v', _) => true,
            (_, Answer::Error { code, message }) => {
                let error = format!("SQLSTATE {code}: {message}");
                self.error(one_line(&error, MAX_ERROR), at);
                true
            }
            (_, Answer::ReadyForQuery) => self.ready(at),
            (_, Answer::Complete(tag)) => self.complete(Some(tag), at),
            (b'I', _) => self.complete(Some("empty query".into()), at),
            (b's', _) => self.complete(None, at),
            (b'1' | b'2' | b'3', _) => match self.items.front() {
                Some(Item::Step { answer, .. }) if *answer == msg.tag => {
                    self.items.pop_front();
                    true
                }
                _ => false,
            },
            (b't', _) => matches!(self.items.front(), Some(Item::Describe)),
            (b'T' | b'n', _) => match self.items.front() {
                Some(Item::Describe) => {
                    self.items.pop_front();
                    true
                }
                Some(Item::Asked(_)) => msg.tag == b'T',
                _ => false,
            },
            (b'D' | b'G' | b'H' | b'W' | b'd' | b'c' | b'V', _) => match self.items.front_mut() {
                Some(Item::Asked(asked)) => {
                    asked.rows += u64::from(msg.tag == b'D');
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !ok {
            self.give_up();
        }
    }

    /// A ReadyForQuery: it ends a startup, a simple query, or a `Sync`.
    fn ready(&mut self, at: Instant) -> bool {
        match self.items.pop_front() {
            Some(Item::Sync) => true,
            Some(Item::Asked(asked)) if asked.ask != Ask::Execute => {
                let outcome = match (&asked.error, &asked.tag) {
                    (Some(_), _) => "error".to_string(),
                    (None, Some(tag)) => outcome(tag, asked.rows),
                    (None, None) if asked.ask == Ask::Startup => "ready".into(),
                    (None, None) => format::plural(asked.rows as usize, "row"),
                };
                let error = asked.error.clone();
                self.done(asked, outcome, error, at);
                true
            }
            _ => false,
        }
    }

    /// A CommandComplete (or EmptyQueryResponse; None: PortalSuspended).
    fn complete(&mut self, tag: Option<String>, at: Instant) -> bool {
        match self.items.front_mut() {
            Some(Item::Asked(asked)) if asked.ask == Ask::Execute => {
                let Some(Item::Asked(asked)) = self.items.pop_front() else {
                    return false;
                };
                let outcome = match &tag {
                    Some(tag) => outcome(tag, asked.rows),
                    None => format!("{}, suspended", format::plural(asked.rows as usize, "row")),
                };
                self.done(asked, outcome, None, at);
                true
            }
            Some(Item::Asked(asked)) if tag.is_some() => {
                asked.tag = tag;
                true
            }
            _ => false,
        }
    }

    /// An ErrorResponse: of the startup or simple query waiting, or of an extended batch (the
    /// server skips the rest of it, up to its `Sync`).
    fn error(&mut self, error: String, at: Instant) {
        match self.items.front_mut() {
            Some(Item::Asked(asked)) if asked.ask != Ask::Execute => {
                if asked.ask == Ask::Startup {
                    let Some(Item::Asked(asked)) = self.items.pop_front() else {
                        return;
                    };
                    self.done(asked, "error".into(), Some(error), at);
                } else {
                    asked.error = Some(error);
                }
                return;
            }
            None => return, // a FATAL error on an idle connection
            _ => {}
        }
        let end = self.items.iter().position(|i| matches!(i, Item::Sync));
        self.skip_to_sync = end.is_none();
        let batch: Vec<Item> = self
            .items
            .drain(..end.unwrap_or(self.items.len()))
            .collect();
        let failed = batch.iter().find_map(|i| match i {
            Item::Asked(a) => Some((a.query.clone(), a.started)),
            _ => None,
        });
        let failed = failed.or_else(|| {
            batch.iter().find_map(|i| match i {
                Item::Step { query, started, .. } => Some((query.clone(), *started)),
                _ => None,
            })
        });
        if let Some((query, started)) = failed {
            self.done(
                Asked::new(query, started, Ask::Execute),
                "error".into(),
                Some(error),
                at,
            );
        }
    }
}

/// A CommandComplete's tag as an outcome: `SELECT 3` is `3 rows`; others as they are
/// (`INSERT 0 1`, `COPY 3`, `CREATE TABLE`).
fn outcome(tag: &str, rows: u64) -> String {
    match tag.strip_prefix("SELECT ").map(str::parse::<u64>) {
        Some(Ok(n)) => format::plural(n as usize, "row"),
        _ if tag == "SELECT" => format::plural(rows as usize, "row"),
        _ => one_line(tag, MAX_TEXT),
    }
}

/// Remembers `name` → `query`, forgetting one other when `max` are remembered.
fn remember(map: &mut HashMap<Box<[u8]>, Query>, name: &[u8], query: Query, max: usize) {
    if map.len() >= max && !map.contains_key(name) {
        let forget = map.keys().next().cloned();
        if let Some(forget) = forget {
            map.remove(&forget);
        }
    }
    map.insert(name.into(), query);
}

#[cfg(test)]
mod tests;
