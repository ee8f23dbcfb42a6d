//! gRPC inside a kept h2 exchange: its messages (length-prefixed frames in either body) decoded
//! as protobuf's wire format without their schema, field numbers with their values, as
//! `protoc --decode_raw` shows them: `1: 42  2: "alice"  3 { 1: 7 }`. A length-delimited field
//! is taken for a nested message when its bytes read as one, else for a string when they are
//! UTF-8, else bytes (hex). Keys and varints are read with `prost::encoding`.

use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint};

/// Nested messages are followed this deep, no deeper.
const DEPTH: usize = 8;
/// A message shown at most this long.
const MOST: usize = 4096;

/// The messages of a gRPC body (as kept: possibly cut), each decoded; a frame that is cut or
/// compressed says so.
pub fn messages(mut body: &[u8]) -> Vec<String> {
    let mut shown = Vec::new();
    while body.len() >= 5 {
        let compressed = body[0] == 1;
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        body = &body[5..];
        if compressed {
            shown.push(format!("(compressed, {len} bytes)"));
        } else if len > body.len() {
            let part = decode(body, 0).unwrap_or_else(|| hex(body));
            shown.push(format!(
                "{} … (cut: {} of {len} bytes kept)",
                bounded(part),
                body.len()
            ));
            return shown;
        } else {
            let message = &body[..len];
            shown.push(bounded(decode(message, 0).unwrap_or_else(|| hex(message))));
        }
        body = &body[len.min(body.len())..];
    }
    shown
}

fn bounded(text: String) -> String {
    crate::format::cut(text, MOST)
}

/// A message's fields, or None when its bytes are not one.
pub fn decode(mut bytes: &[u8], depth: usize) -> Option<String> {
    let mut fields = Vec::new();
    while bytes.has_remaining() {
        let (number, wire) = decode_key(&mut bytes).ok()?;
        let value = match wire {
            WireType::Varint => decode_varint(&mut bytes).ok()?.to_string(),
            WireType::SixtyFourBit => {
                if bytes.remaining() < 8 {
                    return None;
                }
                format!("0x{:016x}", bytes.get_u64_le())
            }
            WireType::ThirtyTwoBit => {
                if bytes.remaining() < 4 {
                    return None;
                }
                format!("0x{:08x}", bytes.get_u32_le())
            }
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut bytes).ok()?).ok()?;
                if len > bytes.remaining() {
                    return None;
                }
                let (inner, rest) = bytes.split_at(len);
                bytes = rest;
                fields.push(format!("{number}{}", delimited(inner, depth)));
                continue;
            }
            WireType::StartGroup | WireType::EndGroup => return None,
        };
        fields.push(format!("{number}: {value}"));
    }
    Some(fields.join("  "))
}

/// A length-delimited field's value: ` { nested }`, `: "text"` or `: 0a0b…`.
fn delimited(inner: &[u8], depth: usize) -> String {
    let nested = (depth < DEPTH && !inner.is_empty())
        .then(|| decode(inner, depth + 1))
        .flatten();
    match (nested, std::str::from_utf8(inner)) {
        // Text that happens to parse as fields is still text.
        (_, Ok(text)) if !text.is_empty() && text.chars().all(|c| !c.is_control()) => {
            format!(": {text:?}")
        }
        (Some(fields), _) => format!(" {{ {fields} }}"),
        (None, Ok(text)) => format!(": {text:?}"),
        (None, Err(_)) => format!(": {}", hex(inner)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{1: 150, 2: "alice", 3: {1: 7}}` in the wire format, framed as gRPC.
    fn framed() -> Vec<u8> {
        let message = [
            0x08, 0x96, 0x01, // 1: 150
            0x12, 0x05, b'a', b'l', b'i', b'c', b'e', // 2: "alice"
            0x1a, 0x02, 0x08, 0x07, // 3 { 1: 7 }
        ];
        let mut body = vec![0, 0, 0, 0, message.len() as u8];
        body.extend_from_slice(&message);
        body
    }

    #[test]
    fn a_message_is_shown_by_field_numbers_without_its_schema() {
        let body = framed();
        assert_eq!(messages(&body), [r#"1: 150  2: "alice"  3 { 1: 7 }"#]);
        let mut two = body.clone();
        two.extend_from_slice(&body);
        assert_eq!(messages(&two).len(), 2);
    }

    #[test]
    fn a_cut_or_garbled_message_is_said_not_lost() {
        let body = framed();
        let cut = &body[..9];
        let shown = messages(cut);
        assert_eq!(shown.len(), 1);
        assert!(shown[0].contains("cut: 4 of 14 bytes kept"), "{shown:?}");
        for at in 0..body.len() {
            messages(&body[..at]); // never panics
        }
        let garbled = [0, 0, 0, 0, 2, 0xff, 0xff];
        assert_eq!(messages(&garbled), ["ffff"]);
    }
}
