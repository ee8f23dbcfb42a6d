//! Scripted streams for the relay's tests: each end of a connection (the caller, the service)
//! plays its script step by step, as pingora's tests do with tokio-test's mock: what it sends
//! is read by the relay one step per read (so a message arrives in exactly the pieces the
//! script cuts), and what it is to receive must be exactly what the relay writes next (a
//! different byte panics, naming both). A step to receive holds back the steps after it, so a
//! caller's next request waits for its answer. Past its last step a script has closed: reads
//! see the end, and what is written to it is kept as lost (a TCP peer that closed still takes
//! a write or two), which [`Script::assert_done`] refuses.

use super::io::{Dial, Stream};
use crate::sync::Locked;
use crate::traffic::stats::ErrorKind;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

enum Step {
    /// The peer sends these bytes: the relay reads them in one read (or more, if its buffer
    /// is smaller).
    Send(Vec<u8>),
    /// The peer is to receive exactly these bytes next, in writes of any size.
    Receive(Vec<u8>),
}

/// Who did what, in order, across the scripts sharing it: `caller> …` when the caller sent,
/// `service< …` when the service received.
pub(super) type Log = Arc<Mutex<Vec<String>>>;

struct State {
    name: &'static str,
    steps: VecDeque<Step>,
    /// The relay's read waiting for a step to receive to be done.
    reader: Option<Waker>,
    /// Written after the script ended.
    lost: Vec<u8>,
    /// The relay shut its writing side.
    shut: bool,
    log: Option<Log>,
}

/// One end of a connection, scripted (cloned: the same end).
#[derive(Clone)]
pub(super) struct Script(Arc<Mutex<State>>);

/// Bytes as text in messages, escaped.
pub(super) fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

impl Script {
    pub fn new(name: &'static str) -> Script {
        Script(Arc::new(Mutex::new(State {
            name,
            steps: VecDeque::new(),
            reader: None,
            lost: Vec::new(),
            shut: false,
            log: None,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.locked()
    }

    /// Then the peer sends `bytes`.
    pub fn sends(self, bytes: impl AsRef<[u8]>) -> Script {
        let step = Step::Send(bytes.as_ref().to_vec());
        self.state().steps.push_back(step);
        self
    }

    /// Then the peer is to receive exactly `bytes`.
    pub fn receives(self, bytes: impl AsRef<[u8]>) -> Script {
        let step = Step::Receive(bytes.as_ref().to_vec());
        self.state().steps.push_back(step);
        self
    }

    /// What it sends and receives goes into `log` too.
    pub fn logged(self, log: &Log) -> Script {
        self.state().log = Some(log.clone());
        self
    }

    /// Whether the relay closed its side of the connection (after its last answer).
    pub fn was_shut(&self) -> bool {
        self.state().shut
    }

    /// Every step played, and nothing written past the end.
    pub fn assert_done(&self) {
        let state = self.state();
        let left: Vec<String> = state
            .steps
            .iter()
            .map(|step| match step {
                Step::Send(b) => format!("send {}", show(b)),
                Step::Receive(b) => format!("receive {}", show(b)),
            })
            .collect();
        assert!(
            left.is_empty(),
            "{}: steps not played: {left:?}",
            state.name
        );
        let lost = show(&state.lost);
        assert!(
            lost.is_empty(),
            "{}: written after it closed: {lost}",
            state.name
        );
    }
}

impl State {
    fn note(&self, what: char, bytes: &[u8]) {
        if let Some(log) = &self.log {
            let entry = format!("{}{what} {}", self.name, show(bytes));
            log.locked().push(entry);
        }
    }
}

impl AsyncRead for Script {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = self.state();
        let state = &mut *state;
        match state.steps.front_mut() {
            Some(Step::Send(bytes)) => {
                let n = bytes.len().min(buf.remaining());
                buf.put_slice(&bytes[..n]);
                let sent: Vec<u8> = bytes.drain(..n).collect();
                if bytes.is_empty() {
                    state.steps.pop_front();
                }
                state.note('>', &sent);
                Poll::Ready(Ok(()))
            }
            Some(Step::Receive(_)) => {
                state.reader = Some(cx.waker().clone());
                Poll::Pending
            }
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Script {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.state();
        let state = &mut *state;
        let name = state.name;
        match state.steps.front_mut() {
            Some(Step::Receive(expected)) => {
                let n = expected.len().min(buf.len());
                assert_eq!(
                    show(&buf[..n]),
                    show(&expected[..n]),
                    "{name} received other bytes than its script says"
                );
                expected.drain(..n);
                if expected.is_empty() {
                    state.steps.pop_front();
                    if let Some(reader) = state.reader.take() {
                        reader.wake();
                    }
                }
                state.note('<', &buf[..n]);
                Poll::Ready(Ok(n))
            }
            Some(Step::Send(next)) => panic!(
                "{name} was written {} while its script has it send {}",
                show(buf),
                show(next)
            ),
            None => {
                state.lost.extend_from_slice(buf);
                Poll::Ready(Ok(buf.len()))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.state().shut = true;
        Poll::Ready(Ok(()))
    }
}

impl Stream for Script {
    type Reader<'a> = Script;
    type Writer<'a> = Script;

    fn halves(&mut self) -> (Script, Script) {
        (self.clone(), self.clone())
    }
}

/// The service's side: each connection the relay opens is the next script (none left: the
/// service refuses).
pub(super) struct Dialer {
    scripts: VecDeque<Script>,
    /// How many connections the relay opened.
    pub dialed: Arc<AtomicUsize>,
}

impl Dialer {
    pub fn new(scripts: &[Script]) -> Dialer {
        Dialer {
            scripts: scripts.iter().cloned().collect(),
            dialed: Arc::default(),
        }
    }
}

impl Dial for Dialer {
    type Stream = Script;

    fn dial(&mut self) -> impl Future<Output = Result<Script, ErrorKind>> + Send {
        self.dialed.fetch_add(1, Ordering::Relaxed);
        std::future::ready(self.scripts.pop_front().ok_or(ErrorKind::Refused))
    }
}
