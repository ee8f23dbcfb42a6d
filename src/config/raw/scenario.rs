//! `[faults.NAME]` as written: each key a scope (`"orders->users"`, `users`,
//! `"external->users"`) with its fault as a table (`{ latency = "200ms", jitter = "50ms" }`,
//! `{ error = 503, rate = 0.2 }`, `{ reset = true }`), and `faults`, a list of faults each as
//! `devstack fault add` takes them (for two faults on one scope). Read by hand, so that every
//! key and value keeps its place for errors.

use super::{EnvValue, Spanned};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// A fault as a table: each key a word of `devstack fault add` (`latency`, `jitter`, `error`,
/// `body`, `reset`, `timeout`, `bandwidth`, `cut`, `slow_close`, `rate`, `first`, `for`,
/// `method`, `path`), `true` for a word without a value (`reset = true`).
pub type RawFaultTable = BTreeMap<Spanned<String>, Spanned<EnvValue>>;

/// `[faults.NAME]`: a fault scenario, set only when asked for by name.
#[derive(Default)]
pub struct RawScenario {
    /// `faults = ["users latency=2s", …]`.
    pub faults: Vec<Spanned<String>>,
    /// `"orders->users" = { latency = "200ms" }`: a scope and its fault, in file order.
    pub scopes: Vec<(Spanned<String>, Spanned<RawFaultTable>)>,
}

impl<'de> Deserialize<'de> for RawScenario {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawScenario;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a table of faults: `\"orders->users\" = { latency = \"200ms\" }`, or `faults = [\"users latency=2s\"]`",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawScenario, A::Error> {
                let mut scenario = RawScenario::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    if key.get_ref() == "faults" {
                        scenario.faults = map.next_value()?;
                    } else {
                        scenario.scopes.push((key, map.next_value()?));
                    }
                }
                Ok(scenario)
            }
        }
        d.deserialize_map(V)
    }
}

impl JsonSchema for RawScenario {
    fn schema_name() -> Cow<'static, str> {
        "RawScenario".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let duration =
            json_schema!({ "type": "string", "description": "a time: \"200ms\", \"2s\"" });
        json_schema!({
            "type": "object",
            "description": "A fault scenario, set only when asked for by name (`devstack fault apply NAME`, `devstack run --faults NAME`): each key a scope (`\"orders->users\"`, `users` for every caller, `\"external->users\"`) with its fault, and/or `faults`, a list of faults as `devstack fault add` takes them.",
            "properties": {
                "faults": {
                    "type": "array",
                    "items": { "type": "string" },
                    "description": "Faults as `devstack fault add` takes them: `users latency=2s`, `orders->users error=503 rate=0.5`."
                }
            },
            "additionalProperties": {
                "type": "object",
                "description": "One effect and any triggers.",
                "additionalProperties": false,
                "properties": {
                    "latency": duration.clone(),
                    "jitter": duration.clone(),
                    "error": { "type": ["integer", "string"], "description": "an HTTP status (503) or a gRPC one (\"grpc:14\", \"grpc:unavailable\")" },
                    "body": { "type": "string" },
                    "reset": { "const": true },
                    "timeout": { "const": true },
                    "cut": { "const": true },
                    "bandwidth": { "type": "string", "description": "bytes per second: \"100KB\", \"1MiB\"" },
                    "slow_close": duration.clone(),
                    "rate": { "type": "number", "minimum": 0, "maximum": 1 },
                    "first": { "type": "integer", "minimum": 1 },
                    "for": duration,
                    "method": { "type": "string", "description": "an HTTP method, or a Redis command" },
                    "path": { "type": "string", "description": "a path prefix, or a gRPC method (`/pkg.Service/Method`)" }
                }
            }
        })
    }
}
