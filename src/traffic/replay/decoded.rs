//! A kept Redis command or PostgreSQL query sent again through the proxy, only when it reads
//! (`readonly`), as it was: `--edit` is for HTTP requests (a decoded record's text is cut for
//! display, and what is kept holds bytes an editor would mangle: run the changed command in
//! `redis-cli` or `psql`). Its answer comes back readable, beside the outcome the proxy decoded
//! off the replay's own record (`replay → SERVICE`).

use super::{Replayed, WAIT, own_record, readonly, through};
use crate::traffic::decode::Resend;
use crate::traffic::{Kind, Record, Stats};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// A decoded replay's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answered {
    /// What the proxy decoded off the replay's own record (`bulk 3B`, `2 rows`), as it did the
    /// original's; None when that record was not found in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The answer, readable, bounded: Redis' value as `redis-cli` shows it; Postgres' column
    /// names, first rows (`a | b`) and command tag.
    #[serde(default)]
    pub lines: Vec<String>,
    /// The error the service answered: `ERR …`, `SQLSTATE 42P01: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// What a client read of an answer.
pub(super) struct Read {
    pub lines: Vec<String>,
    pub failure: Option<String>,
}

/// Why `--edit` is refused for a decoded exchange.
pub const NO_EDIT: &str = "--edit is for HTTP requests: a Redis command or Postgres query is \
                           replayed as it was (run a changed one in redis-cli or psql)";

/// Replay `original` (its kept `resend`) through the proxy on `port`; Err (nothing sent) when
/// it is not kept whole or does not only read.
pub(super) async fn replay(
    stats: &Stats,
    original: &Record,
    resend: &Resend,
    port: u16,
    edited: Option<&str>,
) -> Result<Replayed, String> {
    if edited.is_some() {
        return Err(NO_EDIT.into());
    }
    match resend {
        Resend::Redis(command) => readonly::redis(&command.args)?,
        Resend::Postgres(query) => readonly::postgres(&query.text)?,
        Resend::Withheld(why) => return Err(format!("it can't be replayed: {why}")),
    }
    let before = stats.last_id();
    let start = Instant::now();
    let sent = through(stats, port, |stream| async move {
        match resend {
            Resend::Redis(command) => super::redis::send(stream, command).await,
            Resend::Postgres(query) => super::postgres::send(stream, query).await,
            Resend::Withheld(_) => Err("not kept".into()),
        }
    });
    let sent = tokio::time::timeout(WAIT, sent).await;
    let took_us = crate::traffic::stats::micros(start.elapsed());
    let (read, error) = match sent {
        Ok(Ok(read)) => (Some(read), None),
        Ok(Err(e)) => (None, Some(e)),
        Err(_) => (None, Some(format!("no answer within {}s", WAIT.as_secs()))),
    };
    let group = group(original);
    let own = own_record(stats, before, |r| {
        group.is_some() && self::group(r) == group
    })
    .await;
    let outcome = own.as_deref().and_then(|r| match &r.kind {
        Kind::Redis(d) | Kind::Postgres(d) => Some(d.outcome.clone()),
        _ => None,
    });
    Ok(Replayed {
        id: own.map(|r| r.id),
        response: None,
        error,
        took_us,
        decoded: read.map(|read| Answered {
            outcome,
            lines: read.lines,
            failure: read.failure,
        }),
    })
}

/// A decoded record's group: the replay's own record is the one grouped as the original.
fn group(record: &Record) -> Option<&str> {
    match &record.kind {
        Kind::Redis(d) | Kind::Postgres(d) => Some(&d.group),
        _ => None,
    }
}
