//! A kept Redis command sent again (after a `SELECT` of the database its connection had chosen),
//! its one reply read with `redis-protocol` and shown as `redis-cli` does: `"value"`,
//! `(integer) 3`, `(nil)`, numbered elements; bounded in lines and characters.

use super::{MOST, Read};
use crate::traffic::decode::printable;
use crate::traffic::decode::resend::Command;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode;
use redis_protocol::resp2::types::{OwnedFrame, Resp2Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// At most this many lines of a reply are shown.
const MAX_LINES: usize = 50;
/// A value is cut to this many characters.
const MAX_VALUE: usize = 200;

/// Send `command` on `stream` and read its reply.
pub(super) async fn send(mut stream: TcpStream, command: &Command) -> Result<Read, String> {
    let mut buf = Vec::new();
    if let Some(db) = command.db.filter(|db| *db != 0) {
        let select = [b"SELECT".to_vec(), db.to_string().into_bytes()];
        write(&mut stream, &select).await?;
        if let OwnedFrame::Error(e) = read(&mut stream, &mut buf).await? {
            return Err(format!(
                "`SELECT {db}` (its connection's database) failed: {e}"
            ));
        }
    }
    write(&mut stream, &command.args).await?;
    let reply = read(&mut stream, &mut buf).await?;
    Ok(readable(&reply))
}

async fn write(stream: &mut TcpStream, args: &[Vec<u8>]) -> Result<(), String> {
    let frame = OwnedFrame::Array(args.iter().cloned().map(OwnedFrame::BulkString).collect());
    let mut bytes = vec![0; frame.encode_len(false)];
    encode(&mut bytes, &frame, false).map_err(|e| e.to_string())?;
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("can't send the command: {e}"))
}

/// One reply, read up to [`MOST`] bytes.
async fn read(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<OwnedFrame, String> {
    loop {
        let decoded = decode(buf).map_err(|e| format!("the reply is not RESP: {e}"))?;
        if let Some((frame, used)) = decoded {
            buf.drain(..used);
            return Ok(frame);
        }
        if buf.len() > MOST {
            return Err(format!("the reply is over {MOST} bytes: not shown"));
        }
        let mut chunk = [0; 16 * 1024];
        match stream.read(&mut chunk).await {
            Ok(0) => return Err("the connection closed before the reply".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("the reply broke off: {e}")),
        }
    }
}

/// A reply as lines (`redis-cli`'s way), or the error it is.
fn readable(reply: &OwnedFrame) -> Read {
    if let OwnedFrame::Error(e) = reply {
        return Read {
            lines: Vec::new(),
            failure: Some(printable(e.as_bytes(), MAX_VALUE)),
        };
    }
    let mut lines = Vec::new();
    let mut more = 0;
    walk(reply, "", &mut lines, &mut more);
    if more > 0 {
        lines.push(format!("… {more} more lines"));
    }
    Read {
        lines,
        failure: None,
    }
}

/// `frame`'s lines, the first after `lead` (an element's number), nested ones indented.
fn walk(frame: &OwnedFrame, lead: &str, lines: &mut Vec<String>, more: &mut usize) {
    let mut line = |text: String| match lines.len() < MAX_LINES {
        true => lines.push(text),
        false => *more += 1,
    };
    match frame {
        OwnedFrame::SimpleString(s) => line(format!("{lead}{}", printable(s, MAX_VALUE))),
        OwnedFrame::Error(e) => line(format!(
            "{lead}(error) {}",
            printable(e.as_bytes(), MAX_VALUE)
        )),
        OwnedFrame::Integer(i) => line(format!("{lead}(integer) {i}")),
        OwnedFrame::BulkString(b) => line(format!("{lead}\"{}\"", printable(b, MAX_VALUE))),
        OwnedFrame::Null => line(format!("{lead}(nil)")),
        OwnedFrame::Array(items) if items.is_empty() => line(format!("{lead}(empty array)")),
        OwnedFrame::Array(items) => {
            let indent = " ".repeat(lead.chars().count());
            for (i, item) in items.iter().enumerate() {
                let first = if i == 0 { lead } else { &indent };
                walk(item, &format!("{first}{}) ", i + 1), lines, more);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_redis_cli_shows_them() {
        let read = |f: OwnedFrame| readable(&f).lines;
        assert_eq!(
            read(OwnedFrame::BulkString(b"v\n1".to_vec())),
            ["\"v\\x0a1\""]
        );
        assert_eq!(read(OwnedFrame::Integer(3)), ["(integer) 3"]);
        assert_eq!(read(OwnedFrame::Null), ["(nil)"]);
        let nested = OwnedFrame::Array(vec![
            OwnedFrame::BulkString(b"0".to_vec()),
            OwnedFrame::Array(vec![
                OwnedFrame::BulkString(b"a".to_vec()),
                OwnedFrame::BulkString(b"b".to_vec()),
            ]),
        ]);
        assert_eq!(read(nested), ["1) \"0\"", "2) 1) \"a\"", "   2) \"b\""]);
        let error = readable(&OwnedFrame::Error("WRONGTYPE no".into()));
        assert_eq!(error.failure.as_deref(), Some("WRONGTYPE no"));
        let long = OwnedFrame::Array(vec![OwnedFrame::Integer(1); 60]);
        let lines = read(long);
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert_eq!(lines.last().unwrap(), "… 10 more lines");
    }
}
