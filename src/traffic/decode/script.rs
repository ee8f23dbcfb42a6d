//! Scripted conversations for the decoders' tests: both sides' bytes in order, fed whole, a
//! byte at a time, and cut in two at every byte of every message.

use super::{Decoder, Exchange};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Caller,
    Service,
}
pub use Side::{Caller, Service};

/// An exchange as tests compare it: request, group, outcome, error.
pub type Seen = (String, String, String, Option<String>);

pub fn seen(exchanges: &[Exchange]) -> Vec<Seen> {
    exchanges
        .iter()
        .map(|e| {
            (
                e.request.clone(),
                e.group.clone(),
                e.outcome.clone(),
                e.error.clone(),
            )
        })
        .collect()
}

/// Feeds each piece one millisecond after the one before (the first at `t0`); the exchanges.
pub fn feed(decoder: &mut dyn Decoder, t0: Instant, pieces: &[(Side, &[u8])]) -> Vec<Exchange> {
    let mut out = Vec::new();
    for (i, (side, bytes)) in pieces.iter().enumerate() {
        let at = t0 + Duration::from_millis(i as u64);
        match side {
            Caller => decoder.caller_sent(bytes, at),
            Service => decoder.service_sent(bytes, at),
        }
        out.extend(decoder.take());
    }
    out
}

/// The exchanges of `script` fed whole, after checking that feeding it a byte at a time, and
/// with any one message cut in two anywhere, gives the same.
pub fn every_cut(new: fn() -> Box<dyn Decoder>, script: &[(Side, Vec<u8>)]) -> Vec<Seen> {
    let script: Vec<(Side, &[u8])> = script.iter().map(|(s, b)| (*s, &b[..])).collect();
    let t0 = Instant::now();
    let whole = seen(&feed(&mut *new(), t0, &script));
    let bytes: Vec<(Side, &[u8])> = script
        .iter()
        .flat_map(|(side, b)| b.chunks(1).map(move |c| (*side, c)))
        .collect();
    assert_eq!(
        seen(&feed(&mut *new(), t0, &bytes)),
        whole,
        "a byte at a time"
    );
    for (m, (side, message)) in script.iter().enumerate() {
        for at in 1..message.len() {
            let mut pieces = script[..m].to_vec();
            pieces.push((*side, &message[..at]));
            pieces.push((*side, &message[at..]));
            pieces.extend_from_slice(&script[m + 1..]);
            let got = seen(&feed(&mut *new(), t0, &pieces));
            assert_eq!(got, whole, "message {m} cut at {at}");
        }
    }
    whole
}

/// `(request, group, outcome, error)` from string slices.
pub fn ex(request: &str, group: &str, outcome: &str, error: Option<&str>) -> Seen {
    (
        request.into(),
        group.into(),
        outcome.into(),
        error.map(Into::into),
    )
}
