//! A kept PostgreSQL query sent again on a fresh connection, as the original's user to its
//! database, inside `BEGIN READ ONLY` … `ROLLBACK`: a simple query as a `Query`, an extended
//! one as `Parse`/`Bind`/`Describe`/`Execute`/`Sync` with the original's parameter types,
//! formats and values byte for byte, results asked as text; the rows (column names, the first
//! [`MAX_ROWS`]) and the command tag, or the error (SQLSTATE and message).
//!
//! Spoken with `postgres-protocol` (the decoder's crate already) rather than `tokio-postgres`:
//! its client encodes parameters from Rust values and asks for binary results, where a replay
//! sends the kept bytes as they were (text or binary) and shows any column as the server's
//! text, whatever its type. The password, when the server asks for one, is `PGPASSWORD` from
//! devstack's environment (cleartext, MD5 or SCRAM-SHA-256).

use super::{MOST, Read};
use crate::traffic::decode::resend::Query;
use crate::traffic::decode::{error_fields, printable};
use bytes::{BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::IsNull;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// At most this many rows are shown (the rest are counted).
const MAX_ROWS: usize = 20;
/// A row's line is cut to this many characters.
const MAX_LINE: usize = 200;

/// Send `query` on `stream` (a fresh connection to the server) and read its result.
pub(super) async fn send(stream: TcpStream, query: &Query) -> Result<Read, String> {
    let mut conn = Conn {
        stream,
        buf: BytesMut::new(),
        out: BytesMut::new(),
    };
    conn.startup(&query.user, &query.database).await?;
    conn.out_with(|b| frontend::query("BEGIN READ ONLY", b))?;
    if let Some(e) = conn.result().await?.failure {
        return Err(format!("`BEGIN READ ONLY` failed: {e}"));
    }
    if query.extended {
        conn.extended(query)?;
    } else {
        conn.out_with(|b| frontend::query(&query.text, b))?;
    }
    let read = conn.result().await?;
    conn.out_with(|b| frontend::query("ROLLBACK", b))?;
    conn.result().await?;
    frontend::terminate(&mut conn.out);
    conn.flush().await.ok(); // it is done: the server may go first
    Ok(read)
}

struct Conn {
    stream: TcpStream,
    /// Read, not yet parsed.
    buf: BytesMut,
    /// To send.
    out: BytesMut,
}

impl Conn {
    /// Writes a message and sends what waits.
    fn out_with(
        &mut self,
        m: impl FnOnce(&mut BytesMut) -> std::io::Result<()>,
    ) -> Result<(), String> {
        m(&mut self.out).map_err(|e| format!("can't write the message: {e}"))
    }

    async fn flush(&mut self) -> Result<(), String> {
        let out = self.out.split();
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| format!("can't send to the server: {e}"))
    }

    /// The next message from the server (what waits to be sent is sent first).
    async fn next(&mut self) -> Result<Message, String> {
        if !self.out.is_empty() {
            self.flush().await?;
        }
        loop {
            let parsed = Message::parse(&mut self.buf);
            if let Some(message) = parsed.map_err(|e| format!("not PostgreSQL: {e}"))? {
                return Ok(message);
            }
            if self.buf.len() > MOST {
                return Err(format!("a message over {MOST} bytes: not shown"));
            }
            let read = self.stream.read_buf(&mut self.buf).await;
            match read.map_err(|e| format!("the connection broke off: {e}"))? {
                0 => return Err("the server closed the connection".into()),
                _ => continue,
            }
        }
    }

    /// The startup as `user` to `database`, authenticated, until the server is ready.
    async fn startup(&mut self, user: &str, database: &str) -> Result<(), String> {
        let params = [("user", user), ("database", database)];
        self.out_with(|b| frontend::startup_message(params, b))?;
        let password = std::env::var("PGPASSWORD").ok();
        let asked = || match &password {
            Some(p) => Ok(p.as_bytes()),
            None => Err(format!(
                "the server asks for {user}'s password: set PGPASSWORD in devstack's \
                 environment to replay"
            )),
        };
        let mut scram = None;
        loop {
            match self.next().await? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    let password = asked()?;
                    self.out_with(|b| frontend::password_message(password, b))?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = md5_hash(user.as_bytes(), asked()?, body.salt());
                    self.out_with(|b| frontend::password_message(hash.as_bytes(), b))?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    if !matches!(mechanisms.find(|m| Ok(*m == SCRAM_SHA_256)), Ok(Some(_))) {
                        return Err("the server asks for a SASL mechanism devstack lacks".into());
                    }
                    let s = ScramSha256::new(asked()?, ChannelBinding::unsupported());
                    self.out_with(|b| {
                        frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), b)
                    })?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or("SCRAM out of turn")?;
                    s.update(body.data()).map_err(|e| format!("SCRAM: {e}"))?;
                    self.out_with(|b| frontend::sasl_response(s.message(), b))?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let mut s = scram.take().ok_or("SCRAM out of turn")?;
                    s.finish(body.data()).map_err(|e| format!("SCRAM: {e}"))?;
                }
                Message::ErrorResponse(e) => {
                    return Err(format!("the server refused the connection: {}", error(&e)));
                }
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ParameterStatus(_)
                | Message::BackendKeyData(_)
                | Message::NoticeResponse(_) => {}
                _ => return Err("the server asks for an authentication devstack lacks".into()),
            }
        }
    }

    /// The query as the extended protocol sends it, its parameters as they were bound.
    fn extended(&mut self, query: &Query) -> Result<(), String> {
        let types = query.types.iter().copied();
        self.out_with(|b| frontend::parse("", &query.text, types, b))?;
        let formats = query.formats.iter().copied();
        let values = query.params.iter();
        let value = |v: &Option<Vec<u8>>, b: &mut BytesMut| {
            Ok(match v {
                Some(v) => {
                    b.put_slice(v);
                    IsNull::No
                }
                None => IsNull::Yes,
            })
        };
        frontend::bind("", "", formats, values, value, [0], &mut self.out)
            .map_err(|_| "can't write its parameters".to_string())?;
        self.out_with(|b| frontend::describe(b'P', "", b))?;
        self.out_with(|b| frontend::execute("", 0, b))?;
        frontend::sync(&mut self.out);
        Ok(())
    }

    /// What the server answers, up to its ReadyForQuery.
    async fn result(&mut self) -> Result<Read, String> {
        let mut lines = Vec::new();
        let (mut rows, mut tag, mut failure) = (0usize, None, None);
        loop {
            match self.next().await? {
                Message::RowDescription(body) => {
                    let names: Vec<String> = body
                        .fields()
                        .map(|f| Ok(f.name().to_string()))
                        .collect()
                        .map_err(|e| format!("a bad row description: {e}"))?;
                    lines.push(line(&names));
                }
                Message::DataRow(body) if rows < MAX_ROWS => {
                    rows += 1;
                    let values: Vec<String> = body
                        .ranges()
                        .map(|r| {
                            Ok(r.map_or("NULL".into(), |r| printable(&body.buffer()[r], MAX_LINE)))
                        })
                        .collect()
                        .map_err(|e| format!("a bad row: {e}"))?;
                    lines.push(line(&values));
                }
                Message::DataRow(_) => rows += 1,
                Message::CommandComplete(body) => {
                    tag = body.tag().ok().map(str::to_string);
                }
                Message::EmptyQueryResponse => tag = Some("empty query".into()),
                Message::ErrorResponse(e) => failure = Some(error(&e)),
                Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        if rows > MAX_ROWS {
            lines.push(format!("… {} more rows", rows - MAX_ROWS));
        }
        lines.extend(tag);
        Ok(Read { lines, failure })
    }
}

/// Values as one line: `a | b | c`, cut.
fn line(values: &[String]) -> String {
    crate::format::cut(values.join(" | "), MAX_LINE)
}

fn error(e: &ErrorResponseBody) -> String {
    let (code, message) = error_fields(e);
    format!("SQLSTATE {code}: {message}")
}
