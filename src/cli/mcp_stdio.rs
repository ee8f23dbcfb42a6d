//! The stdio of `devstack mcp`, in front of rmcp's transport. rmcp drops a line that is not JSON,
//! and one over 16 MiB, without a word, so a client that sent one waits for an answer forever.
//! Here each line from stdin is read with a bound and checked: a line that is not JSON gets
//! JSON-RPC's parse error (-32700), one longer than [`MAX_MESSAGE`] an invalid request (-32600),
//! both with `id: null` (no id can be read from them); every other line goes on to rmcp. rmcp's
//! own output reaches stdout through the same writer, a whole message at a time, so an error
//! never lands inside one of its messages.

use devstack::ignored::Ignore;
use serde_json::json;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream, duplex,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A message longer than this is refused unread. devstack's tools take a few names, a pattern
/// and a duration; the longest message a client sends is its `initialize`.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// Buffer of each pipe to and from rmcp.
const PIPE: usize = 64 * 1024;

/// The ends rmcp reads and writes, and the task that writes stdout (it ends once rmcp closed
/// its end and everything was written).
pub struct Pipes {
    pub read: DuplexStream,
    pub write: DuplexStream,
    pub written: JoinHandle<()>,
}

/// Start reading `input` and writing `output` for rmcp.
pub fn spawn<I, O>(input: I, output: O) -> Pipes
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
{
    let (rmcp_reads, to_rmcp) = duplex(PIPE);
    let (rmcp_writes, from_rmcp) = duplex(PIPE);
    let (errors, errors_rx) = mpsc::unbounded_channel();
    tokio::spawn(read(input, to_rmcp, errors));
    let written = tokio::spawn(write(from_rmcp, errors_rx, output));
    Pipes {
        read: rmcp_reads,
        write: rmcp_writes,
        written,
    }
}

/// What one read from stdin gave.
#[derive(Debug, PartialEq)]
enum Read {
    /// A whole line (without its newline) is in the buffer; also the last one, unended.
    Line,
    /// The line is longer than the bound: what was read of it is gone, the rest will be skipped.
    TooLong,
    End,
}

/// Pass each acceptable line to rmcp; answer the rest. Ends at the end of `input`, or when
/// rmcp no longer reads; dropping `to_rmcp` then tells rmcp the input ended. Errors are queued
/// one per refused line, which the client had to send, so they are bounded by what it sends.
async fn read<I: AsyncRead + Unpin>(
    input: I,
    mut to_rmcp: DuplexStream,
    errors: mpsc::UnboundedSender<String>,
) {
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    let mut skipping = false;
    loop {
        let read = match read_line(&mut input, &mut line, &mut skipping, MAX_MESSAGE).await {
            Ok(read) => read,
            Err(_) => return,
        };
        let refusal = match read {
            Read::End => return,
            Read::TooLong => Some(answer(
                -32600,
                format!(
                    "message longer than {} KiB: not read (devstack's MCP messages are small)",
                    MAX_MESSAGE / 1024
                ),
            )),
            Read::Line => {
                let text = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&line);
                if text.iter().all(u8::is_ascii_whitespace) {
                    None // nothing sent: nothing to answer (as rmcp does)
                } else if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(text) {
                    Some(answer(-32700, format!("Parse error: not JSON: {e}")))
                } else {
                    line.push(b'\n');
                    if to_rmcp.write_all(&line).await.is_err() {
                        return;
                    }
                    None
                }
            }
        };
        line.clear();
        if let Some(refusal) = refusal
            && errors.send(refusal).is_err()
        {
            return;
        }
    }
}

/// A JSON-RPC error answer with no id, as one line.
fn answer(code: i32, message: String) -> String {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}).to_string()
}

/// Read one line into `line` (without its newline), never holding more than `max` bytes of it.
/// A longer line is reported once, as soon as it passes `max`, and the rest of it is skipped
/// (`skipping` carries that over to the next call).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    input: &mut R,
    line: &mut Vec<u8>,
    skipping: &mut bool,
    max: usize,
) -> std::io::Result<Read> {
    loop {
        let available = input.fill_buf().await?;
        if available.is_empty() {
            *skipping = false;
            return Ok(if line.is_empty() {
                Read::End
            } else {
                Read::Line
            });
        }
        let newline = memchr::memchr(b'\n', available);
        let take = newline.unwrap_or(available.len());
        let consumed = newline.map_or(take, |n| n + 1);
        if *skipping {
            input.consume(consumed);
            if newline.is_some() {
                *skipping = false;
            }
            continue;
        }
        if line.len() + take > max {
            line.clear();
            input.consume(consumed);
            *skipping = newline.is_none();
            return Ok(Read::TooLong);
        }
        line.extend_from_slice(&available[..take]);
        input.consume(consumed);
        if newline.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Read::Line);
        }
    }
}

/// Copy rmcp's messages to `output` whole, with the refusals between them; ends once rmcp has
/// closed its end and the refusals queued before are written.
async fn write<O: AsyncWrite + Unpin>(
    from_rmcp: DuplexStream,
    mut errors: mpsc::UnboundedReceiver<String>,
    mut output: O,
) {
    let mut from_rmcp = BufReader::new(from_rmcp);
    let mut message = Vec::new();
    loop {
        // `read_until` keeps what it read in `message` when the other branch wins.
        let piece = tokio::select! {
            read = from_rmcp.read_until(b'\n', &mut message) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) if message.ends_with(b"\n") => std::mem::take(&mut message),
                Ok(_) => continue,
            },
            Some(error) = errors.recv() => error.into_bytes().into_iter().chain([b'\n']).collect(),
        };
        if output.write_all(&piece).await.is_err() || output.flush().await.is_err() {
            return;
        }
    }
    while let Ok(error) = errors.try_recv() {
        let refusal = format!("{error}\n");
        output
            .write_all(refusal.as_bytes())
            .await
            .or_say("stdout is closed: the client has left");
    }
    output
        .flush()
        .await
        .or_say("stdout is closed: the client has left");
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(Read, Vec<u8>)> {
        let mut input = BufReader::with_capacity(4, input);
        let (mut line, mut skipping, mut out) = (Vec::new(), false, Vec::new());
        loop {
            let read = read_line(&mut input, &mut line, &mut skipping, max)
                .await
                .unwrap();
            if read == Read::End {
                return out;
            }
            out.push((read, std::mem::take(&mut line)));
        }
    }

    #[tokio::test]
    async fn lines_are_bounded_and_a_long_one_is_skipped_to_its_end() {
        let got = lines(b"ab\r\n0123456789abc\nxy\nlast", 8).await;
        assert_eq!(
            got,
            [
                (Read::Line, b"ab".to_vec()),
                (Read::TooLong, vec![]),
                (Read::Line, b"xy".to_vec()),
                (Read::Line, b"last".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn refusals_and_messages_come_out_whole_and_the_input_ends_for_rmcp() {
        let input = format!(
            "not json\n{}\n{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}}\n",
            "x".repeat(MAX_MESSAGE + 10)
        );
        let (out, mut out_reader) = duplex(4 * MAX_MESSAGE);
        let mut pipes = spawn(std::io::Cursor::new(input.into_bytes()), out);
        let mut passed = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut pipes.read, &mut passed)
            .await
            .unwrap();
        assert_eq!(
            passed,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n"
        );
        pipes.write.write_all(b"{\"answer\":1}\n").await.unwrap();
        drop(pipes.write);
        pipes.written.await.unwrap();
        let mut written = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut out_reader, &mut written)
            .await
            .unwrap();
        let codes: Vec<i64> = written
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["error"]["code"].as_i64())
            .collect();
        assert_eq!(codes, [-32700, -32600], "{written}");
        assert!(written.contains("{\"answer\":1}\n"), "{written}");
    }
}
