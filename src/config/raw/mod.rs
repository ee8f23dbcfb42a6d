//! The file as written: serde structures with spans, before validation and interpolation.

//!
//! These types are also the source of the JSON Schema that `devstack schema` prints (`schema()`):
//! the derived `JsonSchema` follows the same serde attributes as the parser, the doc comments of
//! the fields become the schema's descriptions, and the types with a hand-written `Deserialize`
//! have a hand-written `JsonSchema` beside it.

mod scenario;

pub use scenario::{RawFaultTable, RawScenario};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A value and where it was written (`toml::Spanned`); its JSON Schema is the value's own.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(transparent)]
pub struct Spanned<T>(toml::Spanned<T>);

impl<T> Spanned<T> {
    pub fn new(span: std::ops::Range<usize>, value: T) -> Self {
        Spanned(toml::Spanned::new(span, value))
    }
    pub fn span(&self) -> std::ops::Range<usize> {
        self.0.span()
    }
    pub fn get_ref(&self) -> &T {
        self.0.get_ref()
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// The JSON Schema (draft 7, as editors' TOML plugins read it) of `devstack.toml`.
pub fn schema() -> Schema {
    schemars::generate::SchemaSettings::draft07()
        .with(|s| {
            let no_null = schemars::transform::RecursiveTransform(no_null);
            s.transforms.insert(0, Box::new(no_null));
        })
        .into_generator()
        .into_root_schema_for::<RawFile>()
}

/// TOML has no null (a key left out is how a value is absent): `Option<T>` is just `T`.
fn no_null(schema: &mut Schema) {
    use serde_json::Value;
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            obj.insert("type".into(), only);
        }
    }
    let null = serde_json::json!({ "type": "null" });
    if let Some(Value::Array(any)) = obj.get("anyOf")
        && any.contains(&null)
    {
        let mut rest: Vec<Value> = any.iter().filter(|s| **s != null).cloned().collect();
        if let [Value::Object(only)] = rest.as_mut_slice() {
            let only = std::mem::take(only);
            obj.remove("anyOf");
            obj.extend(only);
        } else {
            obj.insert("anyOf".into(), Value::Array(rest));
        }
    }
}

/// devstack.toml: the services of a stack that `devstack` builds, starts, supervises and shows.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "devstack.toml")]
pub struct RawFile {
    /// Settings of the whole stack.
    #[serde(default)]
    pub stack: RawStack,
    /// Variables for every service (`${VAR}` works in them; bare numbers and booleans are allowed).
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<EnvValue>>,
    /// The services, by name: `[services.NAME]`.
    #[serde(default)]
    pub services: BTreeMap<Spanned<String>, RawService>,
    /// Named fault scenarios, by name: `[faults.NAME]`, set only when asked (`devstack fault apply NAME`, `devstack run --faults NAME`).
    #[serde(default)]
    pub faults: BTreeMap<Spanned<String>, RawScenario>,
}

/// `[stack]`: settings of the whole stack.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStack {
    /// The stack's name (default: the folder's name).
    pub name: Option<Spanned<String>>,
    /// A dotenv file (relative to devstack.toml's folder) loaded into every service.
    pub env_file: Option<Spanned<String>>,
    /// How long a service may take to stop before SIGKILL (default 5s).
    pub grace: Option<Dur>,
    /// The quiet period after a file change before a rebuild (default 200ms).
    pub debounce: Option<Dur>,
    /// Log lines kept in memory per service, the dashboard's scrollback (100 to 10000000; default 10000).
    pub scrollback: Option<Spanned<usize>>,
    /// What the traffic proxy keeps of each request, in memory only (for `devstack traffic show`, the inspector, HAR).
    #[serde(default)]
    pub capture: super::capture::RawStackCapture,
    /// The container engine that runs `image` services: "podman" or "docker" (default: the first of them on the PATH).
    pub container_engine: Option<Spanned<String>>,
}

/// `[services.NAME]`: one service (with `run`), or a one-shot task (`build` only).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Run before each start (a one-shot task without `run`: completed on exit 0); a failed build keeps the old process. A string runs through `sh -c`, an array is executed as is.
    pub build: Option<Spanned<CommandLine>>,
    /// The service's command. A string runs through `sh -c`, an array is executed as is. Listen on $PORT. With `image`: the command inside the container (a string split as a shell splits words), instead of the image's.
    pub run: Option<Spanned<CommandLine>>,
    /// Run the service from a container image (podman or docker from the PATH, pulled when missing): its `port` is the container's, published on the private port behind the proxy; its `env` is the container's.
    pub image: Option<Spanned<String>>,
    /// A service served elsewhere (`https://staging.example.com`, `http://host:port`, `tcp://host:port`): devstack forwards its `port` here to it, never runs it; with a `run` too, `devstack use NAME local|remote` switches between them.
    pub url: Option<Spanned<String>>,
    /// true: the `url`'s TLS certificate is not checked (a development certificate).
    pub insecure: Option<Spanned<bool>>,
    /// With `image`: `name:/path` (a named volume of the stack, kept until `devstack down --volumes`) or `./folder:/path` (a folder bound in).
    #[serde(default)]
    pub volumes: Vec<Spanned<String>>,
    /// The folder the service runs in, relative to devstack.toml's folder (default: that folder).
    pub cwd: Option<Spanned<String>>,
    /// Where the others reach the service (as NAME_URL): devstack listens here and forwards to a private port it gives the service in $PORT.
    pub port: Option<Spanned<Port>>,
    /// false: the service binds `port` itself (PORT = port) and no traffic is seen (default true).
    pub proxy: Option<bool>,
    /// How the proxy reads this service's traffic (default "auto": sniffed).
    pub protocol: Option<Spanned<Protocol>>,
    /// Variables for this service (`${VAR}` and `${services.NAME.port}` work in them).
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<EnvValue>>,
    /// Services that must be ready first: a list of names, or a table of name → "started" | "healthy" | "completed" | { condition, restart }.
    #[serde(default)]
    pub depends_on: Deps,
    /// Globs (relative to cwd) whose changes rebuild and restart the service.
    #[serde(default)]
    pub watch: Vec<Spanned<String>>,
    /// Globs of files whose changes are ignored.
    #[serde(default)]
    pub ignore: Vec<Spanned<String>>,
    /// When the service is started again after it exits (default "on-failure"), with exponential backoff.
    pub restart: Option<Restart>,
    /// false: started only by name (`devstack up NAME`, `devstack start NAME`) or as a dependency (default true).
    pub autostart: Option<bool>,
    /// The signal that stops the service's process group (default "TERM").
    pub stop_signal: Option<StopSignal>,
    /// How long the service may take to stop before SIGKILL (default: the stack's grace).
    pub grace: Option<Dur>,
    /// How a rebuild or restart replaces the process of a proxied service: "blue-green" (the default: the new one starts on a port of its own and serves once ready, the old one drains) or "restart" (the old one stops first: for a service that cannot run twice).
    pub rollout: Option<Spanned<Rollout>>,
    /// After a blue-green switch, how long the old process may finish what it serves before it is stopped (default 30s); it stops sooner once nothing is connected to it.
    pub drain: Option<Dur>,
    /// How devstack knows the service is healthy: exactly one of http, tcp, cmd, log.
    pub health: Option<Spanned<RawHealth>>,
    /// What the proxy keeps of this service's requests: false for nothing, or { body, redact } (default: the stack's `[stack.capture]`, secrets redacted).
    pub capture: Option<super::capture::RawCapture>,
}

/// `[services.NAME.health]`: exactly one of http, tcp, cmd, log, and the timings.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// GET on the service's port (a path like "/healthz", or a full http:// URL); 2xx/3xx is healthy.
    pub http: Option<Spanned<String>>,
    /// true: a connection to the service's port is accepted.
    pub tcp: Option<Spanned<bool>>,
    /// A command (through `sh -c`, in the service's cwd and env): exit 0 is healthy.
    pub cmd: Option<Spanned<String>>,
    /// true: `cmd` runs inside the service's container (`image` services), through the engine's exec.
    pub exec: Option<Spanned<bool>>,
    /// A regex over the service's output: healthy once it matches.
    pub log: Option<Spanned<String>>,
    /// Time between probes (default 1s).
    pub interval: Option<Dur>,
    /// How long a probe may take (default 1s).
    pub timeout: Option<Dur>,
    /// Consecutive failures before unhealthy (default 3).
    pub retries: Option<u32>,
    /// Failures in this time after a start don't count (default 30s).
    pub start_period: Option<Dur>,
}

/// `restart = "no" | "on-failure" | "always"`
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never.
    No,
    /// When it exits with a failure (the default).
    #[default]
    OnFailure,
    /// Whenever it exits.
    Always,
}

/// `rollout = "blue-green" | "restart"`: how a rebuild or restart replaces a proxied service's
/// process.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Rollout {
    /// The new process starts on a port of its own beside the old one; callers are switched to
    /// it once it is ready; the old one drains, then stops (the default for a proxied service).
    #[default]
    BlueGreen,
    /// The old process stops first, then the new one starts; callers wait meanwhile (for a
    /// service that cannot run twice: a lock, a data directory, a fixed second port).
    Restart,
}

/// What a dependent waits for.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// The dependency's process has started.
    Started,
    /// The dependency's health probe succeeded.
    Healthy,
    /// The one-shot task exited 0.
    Completed,
}

/// How a listener reads its connections.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Sniff the first bytes: HTTP/1.x, h2c (HTTP/2 with prior knowledge) or raw TCP.
    #[default]
    Auto,
    /// HTTP/1.x or h2c, never TCP.
    Http,
    /// Raw TCP: connections and bytes only.
    Tcp,
}

impl Protocol {
    /// As written in `devstack.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Auto => "auto",
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
        }
    }
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

impl JsonSchema for CommandLine {
    fn schema_name() -> Cow<'static, str> {
        "CommandLine".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A command: a string runs through `sh -c`, an array is executed as is.",
            "anyOf": [
                { "type": "string", "pattern": "\\S" },
                { "type": "array", "items": { "type": "string" }, "minItems": 1 }
            ]
        })
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

impl JsonSchema for EnvValue {
    fn schema_name() -> Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
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

/// The units `humantime::parse_duration` reads.
const DURATION_UNITS: &str = "nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y";

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let pattern = format!(r"^\s*(0|([0-9]+(\.[0-9]*)?\s*({DURATION_UNITS})\s*)+)$");
        json_schema!({
            "description": "A duration: a number with a unit, like \"250ms\", \"5s\", \"1m\" or \"1m 30s\" (at most a week).",
            "type": "string",
            "pattern": pattern,
            "examples": ["250ms", "5s", "1m"]
        })
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

impl JsonSchema for StopSignal {
    fn schema_name() -> Cow<'static, str> {
        "Signal".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Every name nix knows, with or without SIG, in any case (as the parser reads them).
        let names: Vec<String> = nix::sys::signal::Signal::iterator()
            .map(|s| {
                s.as_str()
                    .trim_start_matches("SIG")
                    .chars()
                    .map(|c| match c.is_ascii_alphabetic() {
                        true => format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()),
                        false => c.to_string(),
                    })
                    .collect()
            })
            .collect();
        let pattern = format!("^([Ss][Ii][Gg])?({})$", names.join("|"));
        json_schema!({
            "description": "A signal name, with or without SIG: \"TERM\", \"INT\", \"QUIT\", \"HUP\"…",
            "type": "string",
            "pattern": pattern,
            "examples": ["TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2"]
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

/// A dependency with its options.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DepTable {
    /// What to wait for (default: "healthy" with a probe, "completed" for a task, else "started").
    condition: Option<Condition>,
    /// true: restart this service when the dependency is rebuilt or restarted.
    #[serde(default)]
    restart: bool,
}

impl JsonSchema for Deps {
    fn schema_name() -> Cow<'static, str> {
        "DependsOn".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let condition = generator.subschema_for::<Condition>();
        let table = generator.subschema_for::<DepTable>();
        json_schema!({
            "anyOf": [
                { "type": "array", "items": { "type": "string" } },
                {
                    "type": "object",
                    "additionalProperties": { "anyOf": [condition, table] }
                }
            ]
        })
    }
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

impl JsonSchema for Port {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 1, "maximum": 65535 })
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Port;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a port number (1-65535), e.g. `port = 8201`")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Port, E> {
                match u16::try_from(n) {
                    Ok(p) if p > 0 => Ok(Port(p)),
                    _ => Err(E::custom(format!("port {n} is out of range; use 1-65535"))),
                }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Port, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
            // A port written in quotes is the likeliest slip: say how to write it.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                Err(match v.trim().parse::<u16>() {
                    Ok(n) => E::custom(format!(
                        "a port is a number, not a string: write `port = {n}` (no quotes)"
                    )),
                    Err(_) => E::invalid_type(de::Unexpected::Str(v), &self),
                })
            }
        }
        d.deserialize_any(V)
    }
}
