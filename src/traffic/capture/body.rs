//! A kept body made readable: de-chunked, as text (UTF-8) or base64, and when it went compressed
//! (`content-encoding: gzip`, `deflate` or `br`) decompressed beside it, within [`MOST`] bytes:
//! what is shown reads the decompressed payload, while a replay or `curl` sends the bytes as they
//! went. gRPC's compressed messages (`grpc-encoding`) are decompressed here too.

use super::Kept;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::io::Read;

/// A body is decompressed this far, no further (the rest is said to be cut).
pub const MOST: usize = 1 << 20;

/// A body as kept: its payload as text or base64, and how much of it there was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    /// Bytes of the body as they went through (chunked framing included).
    pub size: u64,
    /// Only its first bytes were kept.
    pub cut: bool,
    /// The payload kept, when it reads as UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The payload kept, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// A compressed body's payload, decompressed: what is shown of it (boxed: most bodies are
    /// not compressed, and every answer on the socket holds two of these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decompressed: Option<Box<Decompressed>>,
}

/// A compressed body's payload, decompressed (at most [`MOST`] bytes of it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decompressed {
    /// `gzip`, `deflate` or `br`, as `content-encoding` said.
    pub encoding: String,
    /// Bytes it decompressed to.
    pub size: u64,
    /// Only part of it: the kept bytes were cut, or it decompressed past [`MOST`].
    pub cut: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

impl Shown {
    /// The payload's bytes, as kept (compressed when it went compressed).
    pub fn bytes(&self) -> Vec<u8> {
        bytes(&self.text, &self.base64)
    }

    pub fn is_empty(&self) -> bool {
        self.text.as_deref().is_none_or(str::is_empty) && self.base64.is_none()
    }

    /// The payload's bytes as they read: decompressed when it went compressed.
    pub fn content(&self) -> Vec<u8> {
        match &self.decompressed {
            Some(d) => d.bytes(),
            None => self.bytes(),
        }
    }

    /// Its text as it is shown: decompressed when it went compressed (None: binary).
    pub fn shown_text(&self) -> Option<&str> {
        match &self.decompressed {
            Some(d) => d.text.as_deref(),
            None => self.text.as_deref(),
        }
    }
}

impl Decompressed {
    pub fn bytes(&self) -> Vec<u8> {
        bytes(&self.text, &self.base64)
    }
}

fn bytes(text: &Option<String>, base64: &Option<String>) -> Vec<u8> {
    match (text, base64) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default(),
        (None, None) => Vec::new(),
    }
}

/// A payload as text, or base64 when it is not UTF-8 (a `cut` one cut inside a character is
/// still text up to it).
fn readable(payload: &[u8], cut: bool) -> (Option<String>, Option<String>) {
    let (text, base64) = match std::str::from_utf8(payload) {
        Ok(text) => (Some(text.to_string()), None),
        Err(e) if cut && e.error_len().is_none() => (
            Some(String::from_utf8_lossy(&payload[..e.valid_up_to()]).into_owned()),
            None,
        ),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(payload)),
        ),
    };
    (
        text.filter(|t| !t.is_empty() || !payload.is_empty()),
        base64,
    )
}

/// A kept body, de-chunked when it was chunked, as text or base64.
pub fn shown(kept: &Kept, chunked: bool) -> Shown {
    encoded(kept, chunked, None)
}

/// … decompressed beside it when `encoding` (its `content-encoding`) is one devstack reads.
pub fn encoded(kept: &Kept, chunked: bool, encoding: Option<&str>) -> Shown {
    let payload = if chunked {
        dechunk(&kept.bytes)
    } else {
        kept.bytes.clone()
    };
    let cut = kept.cut();
    let (text, base64) = readable(&payload, cut);
    let decompressed = encoding
        .and_then(|e| decompress(e, &payload).map(|d| (e, d)))
        .map(|(encoding, (bytes, whole))| {
            let cut = !whole || cut;
            let (text, base64) = readable(&bytes, cut);
            Box::new(Decompressed {
                encoding: encoding.trim().to_ascii_lowercase(),
                size: bytes.len() as u64,
                cut,
                text,
                base64,
            })
        });
    Shown {
        size: kept.seen,
        cut,
        text,
        base64,
        decompressed,
    }
}

/// `bytes` decompressed as `encoding` says (`gzip`, `deflate`, `br`), at most [`MOST`] of them,
/// and whether that is all of it; None for another encoding, or bytes that do not decompress.
/// Bytes cut short give what they hold.
pub fn decompress(encoding: &str, bytes: &[u8]) -> Option<(Vec<u8>, bool)> {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "gzip" | "x-gzip" => inflate(flate2::read::MultiGzDecoder::new(bytes)),
        // Meant as zlib's format; some servers send raw deflate.
        "deflate" => inflate(flate2::read::ZlibDecoder::new(bytes))
            .or_else(|| inflate(flate2::read::DeflateDecoder::new(bytes))),
        "br" => inflate(brotli_decompressor::Decompressor::new(bytes, 4096)),
        _ => None,
    }
}

fn inflate(reader: impl Read) -> Option<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    // On an error, what was read before it is in `out`.
    let read = reader.take(MOST as u64 + 1).read_to_end(&mut out);
    let over = out.len() > MOST;
    out.truncate(MOST);
    match read {
        Ok(_) => Some((out, !over)),
        Err(_) if !out.is_empty() => Some((out, false)),
        Err(_) => None,
    }
}

/// The payload of a chunked body's first bytes (as much as they hold whole or in part).
pub fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(bytes.len());
    loop {
        let Some(eol) = memchr::memchr(b'\n', bytes) else {
            return payload;
        };
        let line = &bytes[..eol];
        let digits = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let Some(size) = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| usize::from_str_radix(d, 16).ok())
        else {
            return payload;
        };
        bytes = &bytes[eol + 1..];
        if size == 0 {
            return payload;
        }
        let take = size.min(bytes.len());
        payload.extend_from_slice(&bytes[..take]);
        if take < size {
            return payload;
        }
        bytes = &bytes[take..];
        // The chunk's CRLF.
        bytes = bytes
            .strip_prefix(b"\r\n")
            .or(bytes.strip_prefix(b"\n"))
            .unwrap_or(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn kept(cap: usize, bytes: &[u8]) -> Kept {
        let mut kept = Kept::new(cap);
        kept.add(bytes);
        kept
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn binary_bodies_are_base64_and_a_cut_one_says_so() {
        let body = encoded(&kept(2, &[0xff, 0x00, 0x10, 0x80]), false, None);
        assert!(body.cut && body.size == 4 && body.text.is_none());
        assert_eq!(body.bytes(), [0xff, 0x00]);
        // Text cut inside a character stays text up to it.
        let body = encoded(&kept(2, "añb".as_bytes()), false, None);
        assert_eq!(body.text.as_deref(), Some("a"));
    }

    #[test]
    fn a_chunked_body_cut_anywhere_gives_what_it_holds() {
        let whole = b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n";
        for cut in 0..whole.len() {
            let got = dechunk(&whole[..cut]);
            assert!(b"wikipedia".starts_with(&got), "{cut}: {got:?}");
        }
        assert_eq!(dechunk(whole), b"wikipedia");
    }

    #[test]
    fn a_compressed_body_is_shown_decompressed_beside_the_bytes_it_went_as() {
        let text = "hello, world; ".repeat(100);
        let gz = gzip(text.as_bytes());
        let body = encoded(&kept(1 << 16, &gz), false, Some("gzip"));
        assert_eq!(body.bytes(), gz, "the bytes as they went, for a replay");
        let d = body.decompressed.unwrap();
        assert_eq!((d.encoding.as_str(), d.size, d.cut), ("gzip", 1400, false));
        assert_eq!(d.text.as_deref(), Some(text.as_str()));
        // deflate: zlib's format, or raw.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(b"zlib").unwrap();
        let (got, whole) = decompress("deflate", &z.finish().unwrap()).unwrap();
        assert_eq!((got.as_slice(), whole), (&b"zlib"[..], true));
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(b"raw").unwrap();
        assert_eq!(
            decompress("Deflate", &raw.finish().unwrap()).unwrap().0,
            b"raw"
        );
        // br: `printf hello | brotli`.
        let br = [0x0b, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x03];
        assert_eq!(decompress("br", &br), Some((b"hello".to_vec(), true)));
        // Another encoding, or bytes that are not what it says: shown as they went.
        assert!(
            encoded(&kept(64, b"plain"), false, Some("zstd"))
                .decompressed
                .is_none()
        );
        assert!(
            encoded(&kept(64, b"plain"), false, Some("gzip"))
                .decompressed
                .is_none()
        );
    }

    #[test]
    fn a_cut_or_huge_compressed_body_decompresses_what_it_can_within_the_bound() {
        let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        let gz = gzip(text.as_bytes());
        let body = encoded(&kept(gz.len() / 2, &gz), false, Some("gzip"));
        let d = body.decompressed.unwrap();
        assert!(body.cut && d.cut && d.size > 0, "{d:?}");
        assert!(text.starts_with(d.text.as_deref().unwrap()));
        let zeros = gzip(&vec![0; 3 * MOST]);
        let (got, whole) = decompress("gzip", &zeros).unwrap();
        assert_eq!((got.len(), whole), (MOST, false));
    }
}
