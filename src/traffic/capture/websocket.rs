//! A WebSocket's frames, read off the bytes of an upgraded connection as they pass (RFC 6455's
//! framing: a 2–14 byte header, a payload, masked from the caller): the last [`FRAMES`] frames
//! each way kept, each with its kind, its size and its first [`PAYLOAD`] bytes unmasked. Read
//! by hand, incrementally, in bounded memory: the crates that frame WebSockets (tungstenite)
//! own the stream they read, and this one only looks at bytes on their way.

use crate::sync::Locked;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Frames kept per connection (the newest).
pub const FRAMES: usize = 200;
/// Bytes kept of a frame's payload.
pub const PAYLOAD: usize = 1024;

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Way {
    /// Caller to service.
    Out,
    /// Service to caller.
    In,
}

/// One frame, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub way: Way,
    /// `text`, `binary`, `continuation`, `close`, `ping`, `pong` (or `opcode N`).
    pub kind: String,
    /// Its payload's length.
    pub size: u64,
    /// Its first bytes, unmasked.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Its payload as a body is shown: text when it reads as UTF-8 (a payload cut by
    /// [`PAYLOAD`], even inside a character, is still text up to the cut), else base64.
    pub fn shown(&self) -> super::Shown {
        let kept = super::Kept {
            bytes: self.payload.clone(),
            seen: self.size,
            cap: PAYLOAD,
        };
        super::view::shown(&kept, false)
    }
}

/// Where a reader is in one direction's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Reader {
    /// A header's bytes so far.
    header: Vec<u8>,
    /// The frame whose payload is passing, and how much of it is left.
    current: Option<(Frame, u64, [u8; 4], bool, u64)>,
}

/// Both directions' frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frames {
    pub kept: VecDeque<Frame>,
    /// Frames that went by beyond the kept ones.
    pub dropped: u64,
    readers: [Reader; 2],
}

fn kind(opcode: u8) -> String {
    match opcode {
        0 => "continuation".into(),
        1 => "text".into(),
        2 => "binary".into(),
        8 => "close".into(),
        9 => "ping".into(),
        10 => "pong".into(),
        n => format!("opcode {n}"),
    }
}

/// The header's length and the frame it starts, once `header` holds all of it.
fn parse_header(header: &[u8], way: Way) -> Option<(usize, Frame, u64, Option<[u8; 4]>)> {
    if header.len() < 2 {
        return None;
    }
    let masked = header[1] & 0x80 != 0;
    let (len, at) = match header[1] & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*header.get(2)?, *header.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = header.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        n => (u64::from(n), 2),
    };
    let (mask, end) = match masked {
        true => (Some(header.get(at..at + 4)?.try_into().ok()?), at + 4),
        false => (None, at),
    };
    let frame = Frame {
        way,
        kind: kind(header[0] & 0x0f),
        size: len,
        payload: Vec::new(),
    };
    Some((end, frame, len, mask))
}

impl Frames {
    /// Bytes that went `way`.
    pub fn feed(&mut self, way: Way, mut bytes: &[u8]) {
        let side = way as usize;
        while !bytes.is_empty() {
            let reader = &mut self.readers[side];
            if let Some((frame, left, mask, masked, seen)) = &mut reader.current {
                let n = (*left).min(bytes.len() as u64) as usize;
                let room = PAYLOAD.saturating_sub(frame.payload.len()).min(n);
                for (i, b) in bytes[..room].iter().enumerate() {
                    let at = (*seen as usize + i) % 4;
                    frame.payload.push(if *masked { b ^ mask[at] } else { *b });
                }
                *seen += n as u64;
                *left -= n as u64;
                bytes = &bytes[n..];
                if *left == 0 {
                    let done = reader.current.take().map(|c| c.0);
                    self.keep(done);
                }
                continue;
            }
            // A header, a byte at a time until it is whole (at most 14 bytes).
            reader.header.push(bytes[0]);
            bytes = &bytes[1..];
            if let Some((_, frame, len, mask)) = parse_header(&reader.header, way) {
                reader.header.clear();
                match len {
                    0 => self.keep(Some(frame)),
                    _ => {
                        let masked = mask.is_some();
                        reader.current = Some((frame, len, mask.unwrap_or([0; 4]), masked, 0));
                    }
                }
            } else if reader.header.len() >= 14 {
                // Not a frame header however it is read: start again.
                reader.header.clear();
            }
        }
    }

    fn keep(&mut self, frame: Option<Frame>) {
        let Some(frame) = frame else { return };
        if self.kept.len() == FRAMES {
            self.kept.pop_front();
            self.dropped += 1;
        }
        self.kept.push_back(frame);
    }

    /// Memory held, for the store's bounds.
    pub fn size(&self) -> usize {
        self.kept.iter().map(|f| 64 + f.payload.capacity()).sum()
    }
}

/// A stream whose reads are fed to `frames` as going `way` (writes pass untouched).
pub struct Tap<S> {
    pub inner: S,
    way: Way,
    frames: Arc<Mutex<Frames>>,
}

impl<S> Tap<S> {
    pub fn new(inner: S, way: Way, frames: Arc<Mutex<Frames>>) -> Tap<S> {
        Tap { inner, way, frames }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.frames.locked().feed(this.way, &buf.filled()[before..]);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text frame as a browser sends it: masked.
    fn masked(text: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | text.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    #[test]
    fn frames_each_way_are_read_in_any_chunking() {
        let mut out = masked(b"hello");
        out.extend(masked(b"again"));
        let mut back = vec![0x82, 126, 0x01, 0x2c]; // binary, 300 bytes, unmasked
        back.extend(std::iter::repeat_n(7u8, 300));
        for step in [1, 3, out.len()] {
            let mut frames = Frames::default();
            for chunk in out.chunks(step) {
                frames.feed(Way::Out, chunk);
            }
            for chunk in back.chunks(step) {
                frames.feed(Way::In, chunk);
            }
            let kept: Vec<(Way, &str, u64)> = frames
                .kept
                .iter()
                .map(|f| (f.way, f.kind.as_str(), f.size))
                .collect();
            assert_eq!(
                kept,
                [
                    (Way::Out, "text", 5),
                    (Way::Out, "text", 5),
                    (Way::In, "binary", 300)
                ]
            );
            assert_eq!(frames.kept[0].payload, b"hello");
            assert_eq!(frames.kept[1].payload, b"again");
            assert_eq!(frames.kept[2].payload.len(), 300);
        }
    }

    #[test]
    fn the_newest_frames_are_kept_and_a_payload_is_cut() {
        let mut frames = Frames::default();
        for _ in 0..FRAMES + 5 {
            frames.feed(Way::In, &[0x89, 0]); // ping, empty
        }
        assert_eq!((frames.kept.len(), frames.dropped), (FRAMES, 5));
        let mut big = vec![0x82, 127];
        big.extend_from_slice(&(100_000u64).to_be_bytes());
        big.extend(std::iter::repeat_n(1u8, 100_000));
        let mut frames = Frames::default();
        frames.feed(Way::Out, &big);
        assert_eq!(frames.kept[0].size, 100_000);
        assert_eq!(frames.kept[0].payload.len(), PAYLOAD);
        // Garbage never panics.
        frames.feed(Way::Out, &[0xff; 64]);
    }

    #[test]
    fn a_cut_text_frame_shows_its_text_up_to_the_cut_even_inside_a_character() {
        // 1023 bytes of `a`, then `é` (2 bytes) split by the cut at PAYLOAD.
        let text = format!("{}é and more", "a".repeat(PAYLOAD - 1));
        let mut frame = vec![0x81, 126];
        frame.extend_from_slice(&(text.len() as u16).to_be_bytes());
        frame.extend_from_slice(text.as_bytes());
        let mut frames = Frames::default();
        frames.feed(Way::In, &frame);
        let shown = frames.kept[0].shown();
        assert!(shown.cut && shown.base64.is_none(), "{shown:?}");
        assert_eq!(shown.text.as_deref(), Some(&text[..PAYLOAD - 1]));
        assert_eq!(shown.size, text.len() as u64);
        // Whole, it is all of it; binary that is not UTF-8 stays base64.
        frames.feed(Way::Out, &masked("héllo".as_bytes()));
        let whole = frames.kept[1].shown();
        assert_eq!((whole.text.as_deref(), whole.cut), (Some("héllo"), false));
        frames.feed(Way::In, &[0x82, 2, 0xff, 0xfe]);
        assert_eq!(frames.kept[2].shown().base64.as_deref(), Some("//4="));
    }
}
