//! What a replay needs of a query (`traffic replay`), kept when the decoder is told to: its
//! text, the types `Parse` gave, the values `Bind` bound, the startup's user and database.

use super::{Conn, Query, message};
use crate::traffic::decode::resend::{self, Resend};
use std::sync::Arc;

impl Conn {
    /// `query` with what a replay needs of it (when asked to keep it): its message was `size`
    /// bytes, its text `text`.
    pub(super) fn kept(
        &self,
        mut query: Query,
        size: u64,
        text: &[u8],
        types: Vec<u32>,
        ext: bool,
    ) -> Query {
        let Some(cap) = self.keep else { return query };
        let resend = match () {
            _ if query.secret() => Resend::credential(),
            _ if size > cap as u64 => Resend::cut(size, cap),
            _ => Resend::Postgres(resend::Query {
                user: self.user.clone(),
                database: self.database.clone(),
                text: String::from_utf8_lossy(text).into_owned(),
                types,
                formats: Vec::new(),
                params: Vec::new(),
                extended: ext,
            }),
        };
        query.resend = Some(Arc::new(resend));
        query
    }

    /// A statement's `query` as a `Bind` of `size` bytes (its values `rest`) makes it a portal.
    pub(super) fn bound(&self, mut query: Query, size: u64, rest: &[u8]) -> Query {
        let Some(cap) = self.keep else { return query };
        let resend = match query.resend.as_deref() {
            Some(Resend::Postgres(_)) if size > cap as u64 => Resend::cut(size, cap),
            Some(Resend::Postgres(statement)) => match message::bound(rest) {
                Some((formats, params)) => Resend::Postgres(resend::Query {
                    formats,
                    params,
                    ..statement.clone()
                }),
                None => Resend::Withheld("its parameters could not be read".into()),
            },
            Some(other) => other.clone(),
            None => Resend::Withheld(format!(
                "its statement was prepared before the decoder saw it ({})",
                query.shown
            )),
        };
        query.resend = Some(Arc::new(resend));
        query
    }
}
