//! What the decoder targets share: the input as a conversation, and the checks.
//!
//! The input is pieces, each a byte (its high bit: the service's side, else the caller's; its
//! other 7 bits: a length) and then that many bytes (fewer at the end of the input). They are
//! fed in order; then each piece a byte at a time to a second decoder: both must tell the same
//! exchanges and end in the same state (a decoder decides on what it has, however its bytes
//! were cut). Every text an exchange carries is one bounded line.

use devstack::traffic::decode::{Decoder, Exchange, MAX_ERROR, MAX_TEXT, State};
use std::time::{Duration, Instant};

pub fn pieces(data: &[u8]) -> Vec<(bool, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&head, tail)) = rest.split_first() {
        let len = usize::from(head & 0x7f).min(tail.len());
        out.push((head & 0x80 != 0, &tail[..len]));
        rest = &tail[len..];
    }
    out
}

type Told = (String, String, String, Option<String>);

fn run(decoder: &mut dyn Decoder, pieces: &[(bool, &[u8])], bytewise: bool) -> (Vec<Told>, State) {
    let t0 = Instant::now();
    let mut told = Vec::new();
    for (i, (service, bytes)) in pieces.iter().enumerate() {
        let at = t0 + Duration::from_millis(i as u64);
        let cuts: Vec<&[u8]> = if bytewise { bytes.chunks(1).collect() } else { vec![bytes] };
        for cut in cuts {
            if *service {
                decoder.service_sent(cut, at);
            } else {
                decoder.caller_sent(cut, at);
            }
            told.extend(decoder.take().iter().map(check));
        }
    }
    decoder.end(t0 + Duration::from_secs(1));
    told.extend(decoder.take().iter().map(check));
    (told, decoder.state())
}

fn check(e: &Exchange) -> Told {
    for (text, max) in [(&e.request, MAX_TEXT), (&e.group, MAX_TEXT), (&e.outcome, MAX_TEXT)] {
        assert!(text.chars().count() <= max, "{e:?}");
        assert!(!text.chars().any(char::is_control), "{e:?}");
    }
    if let Some(error) = &e.error {
        assert!(error.chars().count() <= MAX_ERROR, "{e:?}");
        assert!(!error.chars().any(char::is_control), "{e:?}");
    }
    (e.request.clone(), e.group.clone(), e.outcome.clone(), e.error.clone())
}

pub fn check_decoder(new: fn() -> Box<dyn Decoder>, data: &[u8]) {
    let pieces = pieces(data);
    let whole = run(&mut *new(), &pieces, false);
    let bytewise = run(&mut *new(), &pieces, true);
    assert_eq!(whole, bytewise, "fed whole, then a byte at a time");
    let _ = devstack::traffic::decode::detect(data);
}
