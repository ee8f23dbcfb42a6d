//! gRPC inside a kept h2 exchange: its messages (length-prefixed frames in either body). With
//! the service's schemas (`proto` in `capture`), a message is decoded as its method's input or
//! output type (`prost-reflect`'s `DynamicMessage`) and shown as JSON with its field names as
//! written in the `.proto`: `{"id":150,"name":"alice"}`. Without them (or when the method is not
//! in them, or a message does not decode as its type) it is shown as protobuf's wire format
//! reads without a schema, field numbers with their values, as `protoc --decode_raw` shows them:
//! `1: 42  2: "alice"  3 { 1: 7 }`. There, a length-delimited field is taken for a nested message
//! when its bytes read as one, else for a string when they are UTF-8, else bytes (hex). Keys
//! and varints are read with `prost::encoding`.

use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use serde_json::Value;

/// Nested messages are followed this deep, no deeper.
const DEPTH: usize = 8;
/// A message shown at most this long.
const MOST: usize = 4096;

/// The method `/pkg.Service/Method` in `pool`.
pub fn method(pool: &DescriptorPool, path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let service = pool.get_service_by_name(service)?;
    service.methods().find(|m| m.name() == method)
}

/// The messages of a gRPC body (as kept: possibly cut), each decoded: as `schema` when given
/// (a JSON object), else without it (a string). A compressed one is decompressed first, as
/// `encoding` (`grpc-encoding`) says; one that is cut, or compressed otherwise, says so.
pub fn messages(
    mut body: &[u8],
    schema: Option<&MessageDescriptor>,
    encoding: Option<&str>,
) -> Vec<Value> {
    let mut shown = Vec::new();
    while body.len() >= 5 {
        let compressed = body[0] == 1;
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        body = &body[5..];
        if compressed {
            let frame = &body[..len.min(body.len())];
            let whole = encoding
                .and_then(|e| super::body::decompress(e, frame))
                .filter(|(_, whole)| *whole && len <= body.len());
            shown.push(match whole {
                Some((message, _)) => self::message(&message, schema),
                None => Value::String(format!(
                    "(compressed ({}), {len} bytes{})",
                    encoding.unwrap_or("no grpc-encoding"),
                    if len > body.len() { ", cut" } else { "" }
                )),
            });
        } else if len > body.len() {
            let part = decode(body, 0).unwrap_or_else(|| hex(body));
            shown.push(Value::String(format!(
                "{} … (cut: {} of {len} bytes kept)",
                bounded(part),
                body.len()
            )));
            return shown;
        } else {
            shown.push(message(&body[..len], schema));
        }
        body = &body[len.min(body.len())..];
    }
    shown
}

/// One whole message: as JSON when it decodes as `schema`, else without it.
fn message(bytes: &[u8], schema: Option<&MessageDescriptor>) -> Value {
    let raw = || bounded(decode(bytes, 0).unwrap_or_else(|| hex(bytes)));
    let Some(schema) = schema else {
        return Value::String(raw());
    };
    let options = prost_reflect::SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false);
    let json = DynamicMessage::decode(schema.clone(), bytes)
        .map_err(|e| e.to_string())
        .and_then(|m| {
            m.serialize_with_options(serde_json::value::Serializer, &options)
                .map_err(|e| e.to_string())
        });
    match json {
        Ok(json) if json.to_string().len() <= MOST => json,
        Ok(json) => Value::String(bounded(json.to_string())),
        Err(e) => Value::String(format!(
            "(not a {}: {}) {}",
            schema.full_name(),
            e.trim_start_matches("failed to decode Protobuf message: "),
            raw()
        )),
    }
}

fn bounded(text: String) -> String {
    crate::format::cut(text, MOST)
}

/// A message's fields, or None when its bytes are not one.
fn decode(mut bytes: &[u8], depth: usize) -> Option<String> {
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
        assert_eq!(
            messages(&body, None, None),
            [r#"1: 150  2: "alice"  3 { 1: 7 }"#]
        );
        let mut two = body.clone();
        two.extend_from_slice(&body);
        assert_eq!(messages(&two, None, None).len(), 2);
    }

    #[test]
    fn a_cut_or_garbled_message_is_said_not_lost() {
        let body = framed();
        let cut = &body[..9];
        let shown = messages(cut, None, None);
        assert_eq!(shown.len(), 1);
        assert!(
            shown[0]
                .as_str()
                .unwrap()
                .contains("cut: 4 of 14 bytes kept"),
            "{shown:?}"
        );
        for at in 0..body.len() {
            messages(&body[..at], None, None); // never panics
        }
        let garbled = [0, 0, 0, 0, 2, 0xff, 0xff];
        assert_eq!(messages(&garbled, None, None), ["ffff"]);
    }

    /// `users.v1.Users/Get`: `GetUser { id, name }` → `User { id, display_name, tags }`.
    fn pool() -> DescriptorPool {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users.proto");
        std::fs::write(
            &file,
            "syntax = \"proto3\";\npackage users.v1;\n\
             message GetUser { int32 id = 1; string name = 2; }\n\
             message User { int64 id = 1; string display_name = 2; Tag tag = 3; }\n\
             message Tag { int32 id = 1; }\n\
             service Users { rpc Get(GetUser) returns (User); }\n",
        )
        .unwrap();
        let mut pool = DescriptorPool::new();
        crate::config::protos::add(&mut pool, &file, &[]).unwrap();
        pool
    }

    #[test]
    fn with_its_schema_a_message_is_json_with_the_field_names_of_its_method_s_types() {
        let pool = pool();
        assert!(method(&pool, "/users.v1.Users/Nope").is_none());
        assert!(method(&pool, "/users.v1.Nope/Get").is_none());
        let get = method(&pool, "/users.v1.Users/Get").unwrap();
        let body = framed();
        let asked = messages(&body, Some(&get.input()), None);
        assert_eq!(asked, [serde_json::json!({"id": 150, "name": "alice"})]);
        let answered = messages(&body, Some(&get.output()), None);
        assert_eq!(
            answered,
            [serde_json::json!({"id": 150, "display_name": "alice", "tag": {"id": 7}})]
        );
    }

    #[test]
    fn a_message_that_is_not_its_type_or_is_cut_is_shown_without_the_schema_and_says_why() {
        let pool = pool();
        let get = method(&pool, "/users.v1.Users/Get").unwrap();
        // Field 2 as a varint where GetUser has a string.
        let wrong = [0, 0, 0, 0, 2, 0x10, 0x01];
        let shown = messages(&wrong, Some(&get.input()), None);
        let text = shown[0].as_str().unwrap();
        assert!(text.starts_with("(not a users.v1.GetUser: "), "{text}");
        assert!(text.ends_with(") 2: 1"), "{text}");
        let body = framed();
        let cut = messages(&body[..9], Some(&get.input()), None);
        assert!(cut[0].as_str().unwrap().contains("cut: 4 of 14 bytes kept"));
    }

    #[test]
    fn a_compressed_message_is_decompressed_as_grpc_encoding_says_then_decoded() {
        use std::io::Write;
        let message = &framed()[5..];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(message).unwrap();
        let gz = gz.finish().unwrap();
        let mut body = vec![1];
        body.extend_from_slice(&(gz.len() as u32).to_be_bytes());
        body.extend_from_slice(&gz);
        let pool = pool();
        let get = method(&pool, "/users.v1.Users/Get").unwrap();
        assert_eq!(
            messages(&body, Some(&get.input()), Some("gzip")),
            [serde_json::json!({"id": 150, "name": "alice"})]
        );
        assert_eq!(
            messages(&body, None, Some("gzip")),
            [r#"1: 150  2: "alice"  3 { 1: 7 }"#]
        );
        let unread = format!("(compressed (no grpc-encoding), {} bytes)", gz.len());
        assert_eq!(messages(&body, None, None), [unread.as_str()]);
        let cut = messages(&body[..body.len() - 3], None, Some("gzip"));
        assert!(cut[0].as_str().unwrap().ends_with("bytes, cut)"), "{cut:?}");
    }
}
