//! Where a chunked HTTP/1 body ends (RFC 9112 §7.1), found while its bytes pass through
//! unchanged: the proxy forwards the chunks as they are and only needs their boundaries and the
//! payload's size.

/// A chunked body's framing so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunked {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk's size (hex digits so far: the size, and whether there was one).
    Size {
        size: u64,
        digits: bool,
    },
    /// After the size: whitespace or an extension, up to the CR.
    Extension {
        size: u64,
    },
    /// The LF ending a size line.
    SizeLf {
        size: u64,
    },
    /// Data bytes still to come in this chunk.
    Data(u64),
    /// The CR, then the LF after a chunk's data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// In a trailer field line, up to its CR.
    Trailer,
    /// The LF ending a trailer field line.
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
    Done,
}

/// A chunked body that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct Malformed;

/// What [`Chunked::feed`] found in the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// How many of the bytes belong to the body (all of them unless it ended within them).
    pub used: usize,
    /// How many of those are payload (chunk data).
    pub payload: u64,
    /// The body ended (with its last CRLF).
    pub done: bool,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size {
                size: 0,
                digits: false,
            },
        }
    }
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Take in the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Fed, Malformed> {
        let mut at = 0;
        let mut payload = 0;
        while at < bytes.len() && self.state != State::Done {
            if let State::Data(left) = self.state {
                let n = left.min((bytes.len() - at) as u64);
                at += n as usize;
                payload += n;
                self.state = if n == left {
                    State::DataCr
                } else {
                    State::Data(left - n)
                };
                continue;
            }
            self.state = self.step(bytes[at])?;
            at += 1;
        }
        Ok(Fed {
            used: at,
            payload,
            done: self.is_done(),
        })
    }

    /// One byte of framing (anything but data).
    fn step(&self, b: u8) -> Result<State, Malformed> {
        Ok(match self.state {
            State::Size { size, digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                    let size = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(digit))
                        .ok_or(Malformed)?;
                    State::Size { size, digits: true }
                }
                b';' | b' ' | b'\t' if digits => State::Extension { size },
                b'\r' if digits => State::SizeLf { size },
                _ => return Err(Malformed),
            },
            State::Extension { size } => match b {
                b'\r' => State::SizeLf { size },
                b'\n' => return Err(Malformed),
                _ => State::Extension { size },
            },
            State::SizeLf { size } => match (b, size) {
                (b'\n', 0) => State::TrailerStart,
                (b'\n', size) => State::Data(size),
                _ => return Err(Malformed),
            },
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size {
                size: 0,
                digits: false,
            },
            State::TrailerStart if b == b'\r' => State::EndLf,
            // Lines end in CRLF, nothing else: a service may read a bare LF as a byte of the
            // line (hyper does), and then see the body end elsewhere than the relay.
            State::TrailerStart | State::Trailer if b != b'\n' && b != b'\r' => State::Trailer,
            State::Trailer if b == b'\r' => State::TrailerLf,
            State::TrailerLf if b == b'\n' => State::TrailerStart,
            State::EndLf if b == b'\n' => State::Done,
            _ => return Err(Malformed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `body` in pieces cut at `cuts`; what was used, the payload and whether it ended.
    fn fed_in_pieces(body: &[u8], cuts: &[usize]) -> Result<(usize, u64, bool), Malformed> {
        let mut c = Chunked::default();
        let (mut used, mut payload, mut start) = (0, 0, 0);
        for &end in cuts.iter().chain([&body.len()]) {
            let fed = c.feed(&body[start..end])?;
            used += fed.used;
            payload += fed.payload;
            if fed.done {
                return Ok((used, payload, true));
            }
            start = end;
        }
        Ok((used, payload, false))
    }

    const BODY: &[u8] =
        b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nGrpc-Status: 0\r\n\r\n";

    #[test]
    fn a_chunked_body_ends_after_its_trailers_whatever_the_pieces() {
        for cut in 0..=BODY.len() {
            let mut next = BODY.to_vec();
            next.extend_from_slice(b"GET / HTTP/1.1\r\n");
            assert_eq!(
                fed_in_pieces(&next, &[cut]),
                Ok((BODY.len(), 31, true)),
                "cut at {cut}"
            );
        }
        for a in 0..BODY.len() {
            for b in a..BODY.len() {
                assert_eq!(fed_in_pieces(BODY, &[a, b]), Ok((BODY.len(), 31, true)));
            }
        }
    }

    /// A chunked body of these chunks (each with an extension or not) and trailer fields.
    fn encoded(chunks: &[(Vec<u8>, bool)], trailers: &[String]) -> Vec<u8> {
        let mut body = Vec::new();
        for (data, ext) in chunks {
            let ext = if *ext { ";a=b" } else { "" };
            body.extend_from_slice(format!("{:X}{ext}\r\n", data.len()).as_bytes());
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n");
        for t in trailers {
            body.extend_from_slice(format!("X-{t}: {t}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body
    }

    /// Cut points within `len` from arbitrary numbers.
    fn cuts(raw: &[usize], len: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = raw.iter().map(|c| c % (len + 1)).collect();
        cuts.sort_unstable();
        cuts
    }

    proptest::proptest! {
        #[test]
        fn any_chunked_body_ends_exactly_at_its_end_however_it_is_cut(
            chunks in proptest::collection::vec(
                (proptest::collection::vec(proptest::num::u8::ANY, 1..300), proptest::bool::ANY),
                0..8,
            ),
            trailers in proptest::collection::vec("[a-z]{1,8}", 0..3),
            raw_cuts in proptest::collection::vec(proptest::num::usize::ANY, 0..6),
        ) {
            let body = encoded(&chunks, &trailers);
            let payload: usize = chunks.iter().map(|(d, _)| d.len()).sum();
            let mut next = body.clone();
            next.extend_from_slice(b"POST / HTTP/1.1\r\n");
            let cut = cuts(&raw_cuts, body.len());
            proptest::prop_assert_eq!(
                fed_in_pieces(&next, &cut),
                Ok((body.len(), payload as u64, true))
            );
        }

        #[test]
        fn any_bytes_get_the_same_answer_whole_or_in_pieces(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"0123456789abcdefXYZ;= \t\r\n".to_vec()),
                0..200,
            ),
            raw_cuts in proptest::collection::vec(proptest::num::usize::ANY, 0..6),
        ) {
            let cut = cuts(&raw_cuts, bytes.len());
            proptest::prop_assert_eq!(fed_in_pieces(&bytes, &cut), fed_in_pieces(&bytes, &[]));
        }
    }

    #[test]
    fn an_unfinished_chunked_body_has_not_ended() {
        assert_eq!(fed_in_pieces(b"3\r\nab", &[]), Ok((5, 2, false)));
        assert_eq!(fed_in_pieces(b"0\r\n\r", &[]), Ok((4, 0, false)));
        assert_eq!(fed_in_pieces(b"0\r\n\r\n", &[]), Ok((5, 0, true)));
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"3\nabc",
            b"0\r\n\rX",
            b"ffffffffffffffffff\r\n",
            // A trailer line ending in a bare LF, or a CR inside one.
            b"0\r\nX-T: a\n\r\n",
            b"0\r\nX-T: a\rb\r\n\r\n",
        ] {
            assert_eq!(fed_in_pieces(bad, &[]), Err(Malformed), "{bad:?}");
        }
    }
}
