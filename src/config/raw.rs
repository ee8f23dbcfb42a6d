//! The file as written: serde structures with spans, before validation and interpolation.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    #[serde(default)]
    pub stack: RawStack,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<EnvValue>>,
    #[serde(default)]
    pub services: BTreeMap<Spanned<String>, RawService>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStack {
    pub name: Option<Spanned<String>>,
    pub env_file: Option<Spanned<String>>,
    pub grace: Option<Dur>,
    pub debounce: Option<Dur>,
    pub scrollback: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub build: Option<Spanned<CommandLine>>,
    pub run: Option<Spanned<CommandLine>>,
    pub cwd: Option<Spanned<String>>,
    pub port: Option<Spanned<Port>>,
    pub proxy: Option<bool>,
    pub protocol: Option<Spanned<crate::traffic::Protocol>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<EnvValue>>,
    #[serde(default)]
    pub depends_on: Deps,
    #[serde(default)]
    pub watch: Vec<Spanned<String>>,
    #[serde(default)]
    pub ignore: Vec<Spanned<String>>,
    pub restart: Option<Restart>,
    pub autostart: Option<bool>,
    pub stop_signal: Option<StopSignal>,
    pub grace: Option<Dur>,
    pub health: Option<Spanned<RawHealth>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub http: Option<Spanned<String>>,
    pub tcp: Option<Spanned<bool>>,
    pub cmd: Option<Spanned<String>>,
    pub log: Option<Spanned<String>>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub retries: Option<u32>,
    pub start_period: Option<Dur>,
}

/// `restart = "no" | "on-failure" | "always"`
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    No,
    #[default]
    OnFailure,
    Always,
}

/// What a dependent waits for.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    Started,
    Healthy,
    Completed,
}

/// A command: a string runs through `sh -c`, an array is executed as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    Shell(String),
    Exec(Vec<String>),
}

/// As the user wrote it: the shell string, or the arguments joined by spaces.
impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CommandLine::Shell(s) => f.write_str(s),
            CommandLine::Exec(argv) => f.write_str(&argv.join(" ")),
        }
    }
}

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CommandLine;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command string (run by `sh -c`) or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CommandLine, E> {
                if v.trim().is_empty() {
                    return Err(E::custom("the command is empty"));
                }
                Ok(CommandLine::Shell(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandLine, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                if argv.is_empty() {
                    return Err(de::Error::custom("the command array is empty"));
                }
                Ok(CommandLine::Exec(argv))
            }
        }
        d.deserialize_any(V)
    }
}

/// An environment value: strings, and numbers or booleans written bare (`PORT = 8080`).
#[derive(Debug, Clone)]
pub struct EnvValue(pub String);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// No duration in the config needs to be longer (and instants far off overflow).
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A duration written as `"250ms"`, `"5s"`, `"1m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string like \"250ms\", \"5s\" or \"1m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                let d = humantime::parse_duration(v).map_err(|e| {
                    E::custom(format!(
                        "invalid duration `{v}` ({e}); write a number with a unit, like \"250ms\", \"5s\" or \"1m\""
                    ))
                })?;
                if d > MAX_DURATION {
                    return Err(E::custom(format!(
                        "duration `{v}` is longer than a week; nothing here needs that long"
                    )));
                }
                Ok(Dur(d))
            }
        }
        d.deserialize_any(V)
    }
}

/// A signal name: `TERM`, `SIGTERM`, `INT`, `HUP`, `QUIT`, `KILL`, `USR1`, `USR2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSignal(pub nix::sys::signal::Signal);

impl<'de> Deserialize<'de> for StopSignal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        full.parse::<nix::sys::signal::Signal>()
            .map(StopSignal)
            .map_err(|_| {
                de::Error::custom(format!(
                    "unknown signal `{name}`; use a name like \"TERM\", \"INT\", \"QUIT\" or \"HUP\""
                ))
            })
    }
}

/// `depends_on`: a list of names, or a table of name → condition / { condition, restart }.
#[derive(Default)]
pub struct Deps(pub Vec<RawDep>);

pub struct RawDep {
    pub name: Spanned<String>,
    pub condition: Option<Condition>,
    pub restart: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepTable {
    condition: Option<Condition>,
    #[serde(default)]
    restart: bool,
}

struct DepSpec(DepTable);

impl<'de> Deserialize<'de> for DepSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DepSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition (\"started\", \"healthy\", \"completed\") or a table { condition, restart }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DepSpec, E> {
                let condition = Condition::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(DepSpec(DepTable {
                    condition: Some(condition),
                    restart: false,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DepSpec, A::Error> {
                DepTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(DepSpec)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Deps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Deps;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of service names or a table of service name → condition")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Deps, A::Error> {
                let mut deps = Vec::new();
                while let Some(name) = seq.next_element::<Spanned<String>>()? {
                    deps.push(RawDep {
                        name,
                        condition: None,
                        restart: false,
                    });
                }
                Ok(Deps(deps))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Deps, A::Error> {
                let mut deps = Vec::new();
                while let Some((name, spec)) = map.next_entry::<Spanned<String>, DepSpec>()? {
                    deps.push(RawDep {
                        name,
                        condition: spec.0.condition,
                        restart: spec.0.restart,
                    });
                }
                Ok(Deps(deps))
            }
        }
        d.deserialize_any(V)
    }
}

/// A TCP port, 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(Port(p)),
            _ => Err(de::Error::custom(format!(
                "port {n} is out of range; use 1-65535"
            ))),
        }
    }
}
