//! A blocking client of the control socket, for the CLI: requests and answers as the types of
//! [`super`], the same the server writes.

use super::{Answer, Message, PROTOCOL, Readiness, Request, Response, WireLine, wire};
use crate::engine::ServiceView;
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// Why a request got no answer it could use.
#[derive(Debug)]
pub enum Error {
    /// The connection failed, or the stack closed it.
    Lost(io::Error),
    /// The stack answered `{"ok":false,"error":...}`.
    Stack(String),
    /// The stack answered `{"ok":false,"error":...,"lines":[...]}`: the lines tell more (the
    /// output of a build that failed).
    Failed { error: String, lines: Vec<String> },
    /// The stack's answer can't be read, or is not an answer to the request.
    Garbled(String),
    /// The stack does not know `hello`: a devstack from before protocol versions.
    NoHello,
    /// The stack does not know this request (`cmd`): an older devstack of the same protocol.
    Unknown(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Lost(e) => write!(f, "lost the connection to the stack: {e}"),
            Error::Stack(e) | Error::Failed { error: e, .. } => f.write_str(e),
            Error::Garbled(e) => write!(
                f,
                "cannot read the stack's answer ({e}); is it another devstack version?"
            ),
            Error::Unknown(cmd) => write!(
                f,
                "this stack does not know `{cmd}` (it is an older devstack): restart it with this one"
            ),
            Error::NoHello => write!(
                f,
                "this stack speaks no protocol version (it is an older devstack); this devstack speaks {PROTOCOL}: use the same devstack version"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Lost(e)
    }
}

/// What a `hello` learnt of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u32,
    /// The stack's devstack version.
    pub devstack: String,
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

    /// Say which protocol this client speaks; an error when the stack speaks another one.
    pub fn hello(&mut self) -> Result<Hello, Error> {
        match self.send(&Request::Hello { version: PROTOCOL })? {
            Response::Ok(Answer::Hello { version, devstack }) => Ok(Hello { version, devstack }),
            Response::Ok(_) => Err(Error::Garbled("not an answer to `hello`".into())),
            // What a stack from before `hello` says to it.
            Response::Error { error, .. } if error.contains("unknown variant `hello`") => {
                Err(Error::NoHello)
            }
            Response::Error { error, .. } => Err(Error::Stack(error)),
        }
    }

    /// Send one request; its answer, or the stack's error.
    pub fn call(&mut self, request: &Request) -> Result<Answer, Error> {
        match self.send(request)? {
            Response::Ok(answer) => Ok(answer),
            // A stack of the same protocol from before this request was added.
            Response::Error { error, .. }
                if error
                    .starts_with(&format!("bad request: unknown variant `{}`", request.cmd())) =>
            {
                Err(Error::Unknown(request.cmd()))
            }
            Response::Error { error, lines } if !lines.is_empty() => {
                Err(Error::Failed { error, lines })
            }
            Response::Error { error, .. } => Err(Error::Stack(error)),
        }
    }

    /// Every service's view.
    pub fn ps(&mut self) -> Result<Vec<ServiceView>, Error> {
        match self.call(&Request::Ps)? {
            Answer::Services { services } => Ok(services.into_iter().map(Into::into).collect()),
            _ => Err(Error::Garbled("not an answer to `ps`".into())),
        }
    }

    /// Wait until `services` (every wanted one when empty) are ready, one fails, or `timeout`
    /// passes (the stack says which).
    pub fn ready(&mut self, services: &[String], timeout: Duration) -> Result<Readiness, Error> {
        // The stack answers when the time is out; a little more for the answer to arrive.
        self.set_timeout(Some(timeout + Duration::from_secs(10)))
            .map_err(Error::Lost)?;
        let request = Request::Ready {
            services: services.to_vec(),
            timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
        };
        match self.call(&request)? {
            Answer::Readiness { readiness } => Ok(readiness),
            _ => Err(Error::Garbled("not an answer to `ready`".into())),
        }
    }

    /// An action on one service (`start`, `stop`, …): the service's view once it took effect, or
    /// None when the request said not to wait.
    pub fn act(&mut self, request: &Request) -> Result<Option<ServiceView>, Error> {
        match self.call(request)? {
            Answer::Service { service } => Ok(Some((*service).into())),
            Answer::Done {} => Ok(None),
            _ => Err(Error::Garbled("not an answer to an action".into())),
        }
    }

    /// The last `lines` log lines of `services` (all when empty); with `follow`, the lines after
    /// them come from [`Client::next_message`].
    pub fn logs(
        &mut self,
        services: &[String],
        lines: usize,
        follow: bool,
    ) -> Result<Vec<WireLine>, Error> {
        self.tail(&Request::Logs {
            services: services.to_vec(),
            lines,
            follow,
            color: false,
        })
    }

    /// The traffic table and the last `recent` requests (with `follow`, the requests that end
    /// after come from [`Client::next_message`]).
    pub fn traffic(
        &mut self,
        recent: usize,
        follow: bool,
    ) -> Result<(crate::traffic::Snapshot, Vec<crate::traffic::Record>), Error> {
        match self.call(&Request::Traffic { recent, follow })? {
            Answer::Traffic { traffic, recent } => {
                Ok((traffic.into(), recent.into_iter().map(Into::into).collect()))
            }
            _ => Err(Error::Garbled("not an answer to `traffic`".into())),
        }
    }

    /// One kept exchange.
    pub fn exchange(&mut self, id: u64) -> Result<wire::Exchange, Error> {
        match self.call(&Request::Exchange { id })? {
            Answer::Exchange { exchange } => Ok(*exchange),
            _ => Err(Error::Garbled("not an answer to `exchange`".into())),
        }
    }

    /// Send the kept request `id` again (as `edited`, when given).
    pub fn replay(
        &mut self,
        id: u64,
        edited: Option<String>,
    ) -> Result<crate::traffic::replay::Replayed, Error> {
        match self.call(&Request::Replay {
            id,
            request: edited,
        })? {
            Answer::Replayed { replayed } => Ok(*replayed),
            _ => Err(Error::Garbled("not an answer to `replay`".into())),
        }
    }

    /// The last `recent` kept exchanges of `services` (all when empty), oldest first.
    pub fn exchanges(
        &mut self,
        services: &[String],
        recent: usize,
    ) -> Result<Vec<wire::Exchange>, Error> {
        let request = Request::Exchanges {
            services: services.to_vec(),
            recent,
        };
        match self.call(&request)? {
            Answer::Exchanges { exchanges } => Ok(exchanges),
            _ => Err(Error::Garbled("not an answer to `exchanges`".into())),
        }
    }

    /// Set the fault `words` say (`orders->users latency=200ms`): it as set, with its id.
    pub fn fault_add(&mut self, words: &str) -> Result<wire::Fault, Error> {
        let request = Request::FaultAdd {
            fault: words.to_string(),
        };
        match self.call(&request)? {
            Answer::Fault { fault } => Ok(fault),
            _ => Err(Error::Garbled("not an answer to `fault_add`".into())),
        }
    }

    /// The faults set, oldest first.
    pub fn faults(&mut self) -> Result<Vec<wire::Fault>, Error> {
        match self.call(&Request::Faults)? {
            Answer::Faults { faults } => Ok(faults),
            _ => Err(Error::Garbled("not an answer to `faults`".into())),
        }
    }

    /// Set every fault of the scenario `name`: the faults set.
    pub fn fault_apply(&mut self, name: &str) -> Result<Vec<wire::Fault>, Error> {
        let request = Request::FaultApply {
            name: name.to_string(),
        };
        match self.call(&request)? {
            Answer::Faults { faults } => Ok(faults),
            _ => Err(Error::Garbled("not an answer to `fault_apply`".into())),
        }
    }

    /// Remove fault `id`.
    pub fn fault_rm(&mut self, id: u64) -> Result<(), Error> {
        match self.call(&Request::FaultRm { id })? {
            Answer::Done {} => Ok(()),
            _ => Err(Error::Garbled("not an answer to `fault_rm`".into())),
        }
    }

    /// Remove every fault; how many there were.
    pub fn fault_clear(&mut self) -> Result<usize, Error> {
        match self.call(&Request::FaultClear)? {
            Answer::Cleared { cleared } => Ok(cleared),
            _ => Err(Error::Garbled("not an answer to `fault_clear`".into())),
        }
    }

    /// The last `lines` log lines of `services` (all when empty), each handed to `each` as it is
    /// read off the socket: a caller that keeps a few holds only those, never the whole answer
    /// (20,000 lines of 64 KiB would be 1.3 GB).
    pub fn logs_each(
        &mut self,
        services: &[String],
        lines: usize,
        each: impl FnMut(WireLine),
    ) -> Result<(), Error> {
        let mut request = serde_json::to_vec(&Request::Logs {
            services: services.to_vec(),
            lines,
            follow: false,
            color: false,
        })
        .map_err(io::Error::other)?;
        request.push(b'\n');
        self.writer.write_all(&request)?;
        let mut each = each;
        let mut answer = serde_json::Deserializer::from_reader(&mut self.reader);
        let read =
            serde::de::DeserializeSeed::deserialize(streamed::Answer(&mut each), &mut answer);
        let read = match read {
            // A timeout keeps its kind (`WouldBlock`, `TimedOut`) through the conversion.
            Err(e) if e.is_io() || e.is_eof() => return Err(Error::Lost(e.into())),
            read => read,
        };
        // The rest of the answer's line (its newline): the next answer starts after it.
        let mut rest = Vec::new();
        self.reader.read_until(b'\n', &mut rest)?;
        match read {
            Err(e) => Err(Error::Garbled(e.to_string())),
            Ok(Err(refusal)) => Err(Error::Stack(refusal)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// A `logs` request as it is: its tail (with `follow`, then [`Client::next_message`]).
    pub fn tail(&mut self, request: &Request) -> Result<Vec<WireLine>, Error> {
        match self.call(request)? {
            Answer::Lines { lines } => Ok(lines),
            _ => Err(Error::Garbled("not an answer to `logs`".into())),
        }
    }

    fn send(&mut self, request: &Request) -> Result<Response, Error> {
        let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        self.read()?.ok_or_else(|| {
            Error::Lost(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stack closed the connection",
            ))
        })
    }

    /// Give up waiting for the stack's next line after this long (None: wait for ever); a read
    /// that gives up is `Error::Lost` with `WouldBlock` or `TimedOut`.
    pub fn set_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.writer.set_read_timeout(timeout)
    }

    /// Has more of what the stack sent already arrived (a next message reads without waiting)?
    pub fn has_buffered(&self) -> bool {
        !self.reader.buffer().is_empty()
    }

    /// The next message of a stream (`logs` with `follow`, `subscribe`); None when it ends.
    pub fn next_message(&mut self) -> Result<Option<Message>, Error> {
        self.read()
    }

    fn read<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>, Error> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| Error::Garbled(e.to_string()))
    }
}

/// A `logs` answer read as it arrives: `{"ok":true,"lines":[...]}`, each line handed on, or
/// `{"ok":false,"error":"..."}`.
mod streamed {
    use super::WireLine;
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    pub struct Answer<'f, F>(pub &'f mut F);

    impl<'de, F: FnMut(WireLine)> DeserializeSeed<'de> for Answer<'_, F> {
        /// Err: the stack's refusal.
        type Value = Result<(), String>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, F: FnMut(WireLine)> Visitor<'de> for Answer<'_, F> {
        type Value = Result<(), String>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an answer to `logs`")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut lines, mut error) = (false, None);
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "lines" => {
                        map.next_value_seed(Lines(&mut *self.0))?;
                        lines = true;
                    }
                    "error" => error = Some(map.next_value::<String>()?),
                    _ => drop(map.next_value::<IgnoredAny>()?),
                }
            }
            match (error, lines) {
                (Some(error), _) => Ok(Err(error)),
                (None, true) => Ok(Ok(())),
                (None, false) => Err(serde::de::Error::custom("not an answer to `logs`")),
            }
        }
    }

    struct Lines<'f, F>(&'f mut F);

    impl<'de, F: FnMut(WireLine)> DeserializeSeed<'de> for Lines<'_, F> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de, F: FnMut(WireLine)> Visitor<'de> for Lines<'_, F> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("log lines")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(line) = seq.next_element::<WireLine>()? {
                (self.0)(line);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ignored::Ignore;
    use std::os::unix::net::UnixListener;

    /// A stack that answers each request line with the next of `answers`.
    fn fake_stack(answers: &[&str]) -> (Client, std::thread::JoinHandle<Vec<String>>) {
        let answers: Vec<String> = answers.iter().map(|a| a.to_string()).collect();
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("devstack-client-{}-{n}", std::process::id()));
        std::fs::remove_dir_all(&dir).or_say("there may be none from an earlier run");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut writer = conn;
            let mut heard = Vec::new();
            for answer in answers {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                heard.push(line.trim_end().to_string());
                writer.write_all(format!("{answer}\n").as_bytes()).unwrap();
            }
            std::fs::remove_dir_all(dir).or_say("the temporary folder is the system's to clean");
            heard
        });
        let client = Client::connect(&path).unwrap();
        (client, server)
    }

    #[test]
    fn hello_says_the_protocol_and_reads_the_stacks_version() {
        let (mut client, server) = fake_stack(&[r#"{"ok":true,"version":1,"devstack":"9.9.9"}"#]);
        let hello = client.hello().unwrap();
        assert_eq!(hello.devstack, "9.9.9");
        let heard = server.join().unwrap();
        assert_eq!(
            heard,
            [format!(r#"{{"cmd":"hello","version":{PROTOCOL}}}"#)]
        );
    }

    /// A stack of this protocol from before a request was added says it does not know it.
    #[test]
    fn a_request_an_older_stack_does_not_know_is_a_clear_error() {
        let refusal = r#"{"ok":false,"error":"bad request: unknown variant `fault_add`, expected one of `hello`, `ps`"}"#;
        let (mut client, server) = fake_stack(&[refusal]);
        let e = client.fault_add("users reset").unwrap_err();
        assert_eq!(
            e.to_string(),
            "this stack does not know `fault_add` (it is an older devstack): restart it with this one"
        );
        let heard = server.join().unwrap();
        assert_eq!(heard, [r#"{"cmd":"fault_add","fault":"users reset"}"#]);
    }

    #[test]
    fn a_stack_of_another_protocol_is_a_clear_error() {
        let refusal = r#"{"ok":false,"error":"this stack speaks protocol 7; this devstack speaks 1: use the same devstack version (stack pid 42)"}"#;
        let (mut client, server) = fake_stack(&[refusal]);
        let e = client.hello().unwrap_err();
        assert!(matches!(e, Error::Stack(_)));
        assert_eq!(
            e.to_string(),
            "this stack speaks protocol 7; this devstack speaks 1: use the same devstack version (stack pid 42)"
        );
        server
            .join()
            .or_say("what the fake stack heard is not what this test asserts");
    }

    #[test]
    fn a_stack_from_before_hello_is_a_clear_error() {
        let (mut client, server) = fake_stack(&[
            r#"{"ok":false,"error":"bad request: unknown variant `hello`, expected one of `ps`, `start`"}"#,
        ]);
        let e = client.hello().unwrap_err();
        assert!(matches!(e, Error::NoHello), "{e:?}");
        assert!(
            e.to_string().contains("use the same devstack version"),
            "{e}"
        );
        server
            .join()
            .or_say("what the fake stack heard is not what this test asserts");
    }

    #[test]
    fn an_unreadable_answer_is_an_error_not_another_answer() {
        // A state this version does not know: the view can't be read.
        let (mut client, server) =
            fake_stack(&[r#"{"ok":true,"services":[{"name":"api","state":"hibernating"}]}"#]);
        let e = client.ps().unwrap_err();
        assert!(matches!(e, Error::Garbled(_)), "{e:?}");
        assert!(e.to_string().contains("another devstack version"), "{e}");
        server
            .join()
            .or_say("what the fake stack heard is not what this test asserts");
    }

    #[test]
    fn a_logs_answer_is_handed_on_line_by_line_and_the_connection_reads_on() {
        let line = |t: &str| {
            format!(
                r#"{{"service":"api","stream":"out","time":"2026-01-01T00:00:00.000Z","text":"{t}"}}"#
            )
        };
        let answer = format!(r#"{{"ok":true,"lines":[{},{}]}}"#, line("one"), line("two"));
        let (mut client, server) = fake_stack(&[
            &answer,
            r#"{"ok":false,"error":"unknown service `x`"}"#,
            r#"{"ok":true,"version":1,"devstack":"9.9.9"}"#,
        ]);
        let mut texts = Vec::new();
        client.logs_each(&[], 2, |l| texts.push(l.text)).unwrap();
        assert_eq!(texts, ["one", "two"]);
        let e = client.logs_each(&["x".into()], 2, |_| {}).unwrap_err();
        assert_eq!(e.to_string(), "unknown service `x`");
        assert_eq!(client.hello().unwrap().devstack, "9.9.9");
        server
            .join()
            .or_say("what the fake stack heard is not what this test asserts");
    }
}
