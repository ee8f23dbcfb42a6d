//! What the proxy keeps of each exchange, as `devstack.toml` says it: `[stack.capture]` (the
//! bounds of the store, the default body cap, the gRPC schemas) and a service's `capture`
//! (`false`, or `{ body, redact, proto }`); with [`Size`], a byte count written as `"64KiB"`.
//! The `proto` files are read by `protos.rs`.

use super::raw::Spanned;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Bytes kept of each body unless said otherwise.
pub const BODY: usize = 64 << 10;

/// What a service's exchanges keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    pub on: bool,
    /// Bytes kept of each body.
    pub body: usize,
    /// Secrets' values shown as `…redacted…`.
    pub redact: bool,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            on: true,
            body: BODY,
            redact: true,
        }
    }
}

/// How much the stack's store of exchanges holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Exchanges kept per service.
    pub exchanges: usize,
    /// Bytes kept per service.
    pub service_bytes: usize,
    /// Bytes kept for the whole stack.
    pub total_bytes: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            exchanges: 1000,
            service_bytes: 16 << 20,
            total_bytes: 64 << 20,
        }
    }
}

/// `[stack.capture]`: what the traffic proxy keeps of each request, in memory only.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStackCapture {
    /// Bytes kept of each request and response body, for every service that does not say (default "64KiB"; the rest is counted and marked cut).
    pub body: Option<Size>,
    /// Exchanges kept per service (default 1000).
    pub exchanges: Option<usize>,
    /// Memory the kept exchanges of one service may take (default "16MiB").
    pub service_memory: Option<Size>,
    /// Memory the kept exchanges of the whole stack may take (default "64MiB").
    pub memory: Option<Size>,
    /// Schemas gRPC messages are shown with (as JSON with their field names) for every proxied service: `.proto` files (compiled when the config is loaded) or FileDescriptorSets (`protoc --descriptor_set_out`, `buf build -o`), relative to devstack.toml's folder.
    #[serde(default)]
    pub proto: Vec<Spanned<String>>,
    /// Folders a `.proto` file's imports are looked up in (relative to devstack.toml's folder), before the file's own folder.
    #[serde(default)]
    pub proto_path: Vec<Spanned<String>>,
}

impl RawStackCapture {
    pub fn bounds(&self) -> Bounds {
        let d = Bounds::default();
        Bounds {
            exchanges: self.exchanges.unwrap_or(d.exchanges),
            service_bytes: self.service_memory.map_or(d.service_bytes, |s| s.0),
            total_bytes: self.memory.map_or(d.total_bytes, |s| s.0),
        }
    }

    /// A service's capture, from its own `capture` (if it has one) and these defaults.
    pub fn of(&self, service: Option<&RawCapture>) -> Capture {
        let body = self.body.map_or(BODY, |s| s.0);
        let stack = Capture {
            body,
            ..Capture::default()
        };
        match service {
            None => stack,
            Some(RawCapture::On(on)) => Capture { on: *on, ..stack },
            Some(RawCapture::Table(t)) => Capture {
                on: true,
                body: t.body.map_or(body, |s| s.0),
                redact: t.redact.unwrap_or(true),
            },
        }
    }
}

/// A service's `capture`: `false` (keep nothing of its exchanges), or a table.
pub enum RawCapture {
    On(bool),
    Table(RawServiceCapture),
}

/// A service's `capture = { ... }`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServiceCapture {
    /// Bytes kept of each request and response body (default: the stack's, "64KiB").
    pub body: Option<Size>,
    /// false: show the values of Authorization, Proxy-Authorization, Cookie and Set-Cookie (default true: `…redacted…`).
    pub redact: Option<bool>,
    /// Schemas of this service's gRPC messages, beside `[stack.capture] proto`'s: `.proto` files or FileDescriptorSets, relative to devstack.toml's folder.
    #[serde(default)]
    pub proto: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawCapture {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCapture;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`false` (keep nothing), or a table like `{ body = \"1MiB\", redact = false }`",
                )
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawCapture, E> {
                Ok(RawCapture::On(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawCapture, A::Error> {
                RawServiceCapture::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawCapture::Table)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawCapture {
    fn schema_name() -> Cow<'static, str> {
        "Capture".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let table = generator.subschema_for::<RawServiceCapture>();
        json_schema!({
            "description": "What the proxy keeps of this service's requests: false for nothing, or { body, redact, proto }.",
            "anyOf": [{ "type": "boolean" }, table]
        })
    }
}

/// A number of bytes: an integer, or a string with a unit (`"512B"`, `"64KiB"`, `"16MiB"`,
/// `"1GiB"`; `KB`, `MB` and `GB` are powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub usize);

/// The largest size the config takes: nothing here needs more.
const MAX_SIZE: u64 = 64 << 30;

impl Size {
    fn parse(text: &str) -> Option<u64> {
        let text = text.trim();
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let n: u64 = text[..digits].parse().ok()?;
        let unit = match text[digits..].trim() {
            "" | "B" => 1,
            "KiB" | "K" | "k" => 1 << 10,
            "MiB" | "M" => 1 << 20,
            "GiB" | "G" => 1 << 30,
            "KB" | "kB" => 1000,
            "MB" => 1000 * 1000,
            "GB" => 1000 * 1000 * 1000,
            _ => return None,
        };
        n.checked_mul(unit)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size like \"64KiB\", \"16MiB\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Size, E> {
                if n > MAX_SIZE {
                    return Err(E::custom(format!(
                        "{n} bytes is over 64GiB; nothing here needs that much"
                    )));
                }
                Ok(Size(n as usize))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Size, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("a size can't be negative ({n})"))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                match Size::parse(v) {
                    Some(n) => self.visit_u64(n),
                    None => Err(E::custom(format!(
                        "invalid size `{v}`; write a number with a unit, like \"64KiB\", \"16MiB\" or \"1GiB\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number of bytes, or a size with a unit: \"512B\", \"64KiB\", \"16MiB\", \"1GiB\" (KB, MB, GB: powers of 1000).",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": r"^\s*[0-9]+\s*(B|K|k|KiB|M|MiB|G|GiB|KB|kB|MB|GB)?\s*$" }
            ],
            "examples": ["64KiB", "16MiB"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_binary_and_decimal_units() {
        assert_eq!(Size::parse("64KiB"), Some(65536));
        assert_eq!(Size::parse(" 16 MiB "), Some(16 << 20));
        assert_eq!(Size::parse("2MB"), Some(2_000_000));
        assert_eq!(Size::parse("512"), Some(512));
        assert_eq!(Size::parse("1.5MiB"), None);
        assert_eq!(Size::parse("lots"), None);
    }

    #[test]
    fn a_service_s_capture_takes_the_stack_s_defaults_where_it_says_nothing() {
        let stack = RawStackCapture {
            body: Some(Size(100)),
            ..RawStackCapture::default()
        };
        assert_eq!(
            stack.of(None),
            Capture {
                on: true,
                body: 100,
                redact: true
            }
        );
        assert!(!stack.of(Some(&RawCapture::On(false))).on);
        let own = RawCapture::Table(RawServiceCapture {
            body: None,
            redact: Some(false),
            proto: Vec::new(),
        });
        assert_eq!(
            stack.of(Some(&own)),
            Capture {
                on: true,
                body: 100,
                redact: false
            }
        );
        assert_eq!(RawStackCapture::default().bounds(), Bounds::default());
    }
}
