//! The HTTP/1 relay's reading of a message: a head (request, or response to a GET or a HEAD)
//! and where its body ends. The relay forwards bytes as they come and decides on what it has,
//! so: more bytes never change a head already told (or refused); a body's end is the same
//! whether its bytes come whole or cut in two; a body never takes more bytes than it was given
//! or more payload than bytes; a length-framed body ends exactly at its length. And a chunked
//! body made of any chunks (the input cut at each `|`) and trailers ends exactly at its end,
//! with its payload counted, however it is cut.
#![no_main]

use devstack::traffic::h1::message::{Framing, parse_request, parse_response};
use libfuzzer_sys::fuzz_target;

/// What a head says that decides the relay's next step, comparable across prefixes.
type Told = Result<Option<(usize, Framing, bool)>, u16>;

/// Where the body framed by `framing` ends in `body`, fed whole or cut at `cut`: bytes used,
/// payload, ended; or that it is malformed.
fn body_end(mut framing: Framing, body: &[u8], cut: Option<usize>) -> Option<(usize, u64, bool)> {
    let declared = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let (mut used, mut payload) = (0, 0);
    let pieces = match cut {
        Some(c) => vec![&body[..c], &body[c..]],
        None => vec![body],
    };
    for piece in pieces {
        let (u, p, done) = framing.take(piece).ok()?;
        assert!(u <= piece.len(), "used {u} of {}", piece.len());
        assert!(p <= u as u64, "payload {p} of {u} bytes");
        used += u;
        payload += p;
        if done {
            if let Some(n) = declared {
                assert_eq!(
                    (used as u64, payload),
                    (n, n),
                    "a length body ends at its length"
                );
            }
            return Some((used, payload, true));
        }
        if framing != Framing::UntilClose {
            assert_eq!(u, piece.len(), "an unended body takes every byte");
        }
    }
    Some((used, payload, false))
}

/// `data` as a chunked body: a chunk for each `|`-separated piece that is not empty (sizes in
/// upper or lower case hex, with an extension or not), then a trailer field per `control` bit
/// pair; and its payload's size.
fn chunked_body(control: u8, data: &[u8]) -> (Vec<u8>, u64) {
    let mut body = Vec::new();
    let mut payload = 0;
    for chunk in data.split(|&b| b == b'|').filter(|c| !c.is_empty()) {
        let size = if control & 2 == 0 {
            format!("{:x}", chunk.len())
        } else {
            format!("{:X}", chunk.len())
        };
        let ext = if control & 4 == 0 { "" } else { ";name=\"v\"" };
        body.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
        payload += chunk.len() as u64;
    }
    body.extend_from_slice(b"0\r\n");
    for t in 0..(control >> 6) {
        body.extend_from_slice(format!("X-{t}: {t}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    (body, payload)
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    if control & 0x20 != 0 {
        let (body, payload) = chunked_body(control, data);
        let mut stream = body.clone();
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let framing = Framing::Chunked(Default::default());
        let cut = data.len() % (body.len() + 1);
        let want = Some((body.len(), payload, true));
        assert_eq!(body_end(framing, &stream, None), want);
        assert_eq!(body_end(framing, &stream, Some(cut)), want, "cut at {cut}");
        return;
    }
    let method = if control & 1 == 0 {
        hyper::Method::GET
    } else {
        hyper::Method::HEAD
    };
    let request = |bytes: &[u8]| -> Told {
        parse_request(bytes)
            .map(|h| h.map(|h| (h.len, h.framing, h.keep_alive)))
            .map_err(|b| b.0)
    };
    let response = |bytes: &[u8]| -> Told {
        parse_response(bytes, &method)
            .map(|h| h.map(|h| (h.len, h.framing, h.close)))
            .map_err(|b| b.0)
    };
    for parse in [&request as &dyn Fn(&[u8]) -> Told, &response] {
        let whole = parse(data);
        for end in 0..data.len() {
            match parse(&data[..end]) {
                Ok(None) => {}
                told => assert_eq!(told, whole, "told at {end} of {}", data.len()),
            }
        }
        if let Ok(Some((len, framing, _))) = whole {
            let body = &data[len..];
            let cut = usize::from(control >> 1) % (body.len() + 1);
            assert_eq!(
                body_end(framing, body, Some(cut)),
                body_end(framing, body, None),
                "cut at {cut}"
            );
        }
    }
});
