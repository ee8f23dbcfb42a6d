//! A blocking client of the control socket, for the CLI.

use super::Request;
use serde_json::Value;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connect to a running stack; an error means none runs (or the socket is stale).
    pub fn connect(socket: &Path) -> io::Result<Client> {
        let writer = UnixStream::connect(socket)?;
        Ok(Client {
            reader: BufReader::new(writer.try_clone()?),
            writer,
        })
    }

    /// Send one request; return its first answer line.
    pub fn request(&mut self, request: &Request) -> io::Result<Value> {
        let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        self.next_message()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stack closed the connection",
            )
        })
    }

    /// The next line of a stream (`logs` with `follow`, `subscribe`); None when it ends.
    pub fn next_message(&mut self) -> io::Result<Option<Value>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(io::Error::other)
    }
}
