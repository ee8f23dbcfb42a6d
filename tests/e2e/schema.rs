//! `devstack schema`: the JSON Schema of devstack.toml, generated from the parser's own types.
//! It accepts every config the parser accepts (the demo, the starter, the tests' configs, and
//! generated ones) and rejects the broken ones the parser rejects.

use assert_cmd::Command;
use devstack::config;
use proptest::prelude::*;
use serde_json::Value;
use std::path::Path;
use std::sync::LazyLock;

/// The schema as the binary prints it.
fn printed_schema() -> Value {
    let out = Command::cargo_bin("devstack")
        .unwrap()
        .arg("schema")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("the schema is JSON")
}

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema = serde_json::to_value(config::schema()).unwrap();
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
});

/// TOML text as the JSON value a TOML editor plugin validates.
fn as_json(src: &str) -> Value {
    toml::from_str(src).unwrap_or_else(|e| panic!("not TOML: {e}\n{src}"))
}

fn errors(src: &str) -> Vec<String> {
    let value = as_json(src);
    VALIDATOR
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn parses(src: &str) -> bool {
    parses_at(&std::env::temp_dir().join("devstack.toml"), src)
}

/// As the parser reads the file at `file` (whose folder `cwd`s are relative to).
fn parses_at(file: &Path, src: &str) -> bool {
    let env = |name: &str| (name == "HOME").then(|| "/home/me".to_string());
    config::parse(file, src, &env).is_ok()
}

#[test]
fn the_binary_prints_a_draft_7_schema_with_descriptions() {
    let schema = printed_schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema, serde_json::to_value(config::schema()).unwrap());
    jsonschema::draft7::new(&schema).expect("a valid draft 7 schema");
    // Doc comments of the parser's types are the descriptions editors show.
    let service = &schema["definitions"]["RawService"];
    assert_eq!(service["additionalProperties"], false);
    let run = service["properties"]["run"]["description"]
        .as_str()
        .unwrap();
    assert!(run.contains("sh -c"), "{run}");
    let restart = service["properties"]["restart"]["description"].as_str();
    assert!(
        restart.is_some_and(|d| d.contains("on-failure")),
        "{service}"
    );
    let text = schema.to_string();
    assert!(!text.contains("\"null\""), "TOML has no null: {text}");
}

#[test]
fn the_demo_and_the_starter_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = std::fs::read_to_string(root.join("devstack.toml")).unwrap();
    assert!(parses_at(&root.join("devstack.toml"), &demo));
    assert_eq!(errors(&demo), Vec::<String>::new());
    let starter = std::fs::read_to_string(root.join("src/cli/starter.toml"))
        .unwrap()
        .replace("{name}", "demo");
    assert!(parses(&starter));
    assert_eq!(errors(&starter), Vec::<String>::new());
    // Every commented example of the starter too, uncommented.
    let uncommented: String = starter
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.contains(" = ") || rest.starts_with('[') => {
                rest.split(" #").next().unwrap().to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    if let Ok(value) = toml::from_str::<Value>(&uncommented) {
        let errs: Vec<String> = VALIDATOR
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errs.is_empty(), "{errs:?}\n{uncommented}");
    }
}

/// The configs the other tests run: each raw string in tests/**/*.rs that holds a `[services.`
/// table, with its `format!` arguments filled in; every one the parser accepts, the schema does.
#[test]
fn the_tests_configs_are_valid() {
    let mut sources = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("schema.rs") {
                sources.push(path);
            }
        }
    }
    let arg = regex::Regex::new(r"(^|[^$])\{[A-Za-z0-9_.:?]*\}").unwrap();
    let mut checked = 0;
    for path in sources {
        let source = std::fs::read_to_string(&path).unwrap();
        for literal in source.split("r#\"").skip(1) {
            let Some((text, _)) = literal.split_once("\"#") else {
                continue;
            };
            if !text.contains("[services.") {
                continue;
            }
            let filled = arg.replace_all(text, "${1}1");
            for src in [
                filled.to_string(),
                filled.replace("{{", "{").replace("}}", "}"),
            ] {
                if toml::from_str::<Value>(&src).is_ok() && parses(&src) {
                    assert_eq!(
                        errors(&src),
                        Vec::<String>::new(),
                        "{}:\n{src}",
                        path.display()
                    );
                    checked += 1;
                    break;
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} configs found in tests/");
}

/// Broken configs: the parser refuses each, and so does the schema (an editor underlines it).
#[test]
fn broken_configs_are_rejected() {
    let cases: &[(&str, &str)] = &[
        ("unknown top-level table", "[servics.a]\nrun = \"x\""),
        (
            "unknown service key",
            "[services.a]\nrun = \"x\"\nrunn = \"y\"",
        ),
        (
            "unknown stack key",
            "[stack]\nnmae = \"x\"\n[services.a]\nrun = \"x\"",
        ),
        (
            "unknown health key",
            "[services.a]\nrun = \"x\"\n[services.a.health]\nhttps = \"/\"",
        ),
        ("run of a wrong type", "[services.a]\nrun = 5"),
        (
            "unknown scenario key",
            "[services.a]\nrun = \"x\"\nport = 8000\n[faults.s]\nfault = [\"a reset\"]",
        ),
        (
            "scenario faults as a string",
            "[services.a]\nrun = \"x\"\nport = 8000\n[faults.s]\nfaults = \"a reset\"",
        ),
        ("an empty run array", "[services.a]\nrun = []"),
        ("a blank run", "[services.a]\nrun = \"  \""),
        ("run array of numbers", "[services.a]\nrun = [1, 2]"),
        (
            "port as a string",
            "[services.a]\nrun = \"x\"\nport = \"80\"",
        ),
        ("port 0", "[services.a]\nrun = \"x\"\nport = 0"),
        ("port too large", "[services.a]\nrun = \"x\"\nport = 70000"),
        (
            "bad restart",
            "[services.a]\nrun = \"x\"\nrestart = \"sometimes\"",
        ),
        (
            "bad protocol",
            "[services.a]\nrun = \"x\"\nprotocol = \"udp\"",
        ),
        (
            "proxy as a string",
            "[services.a]\nrun = \"x\"\nproxy = \"no\"",
        ),
        (
            "duration without unit",
            "[stack]\ngrace = \"5\"\n[services.a]\nrun = \"x\"",
        ),
        (
            "duration as a number",
            "[stack]\ngrace = 5\n[services.a]\nrun = \"x\"",
        ),
        (
            "duration of an unknown unit",
            "[services.a]\nrun = \"x\"\ngrace = \"5 parsecs\"",
        ),
        (
            "unknown signal",
            "[services.a]\nrun = \"x\"\nstop_signal = \"TERMINATE\"",
        ),
        (
            "bad dependency condition",
            "[services.a]\nrun = \"x\"\ndepends_on = { b = \"ready\" }\n[services.b]\nrun = \"y\"",
        ),
        (
            "unknown dependency option",
            "[services.a]\nrun = \"x\"\ndepends_on = { b = { when = \"healthy\" } }\n[services.b]\nrun = \"y\"",
        ),
        (
            "depends_on as a string",
            "[services.a]\nrun = \"x\"\ndepends_on = \"b\"\n[services.b]\nrun = \"y\"",
        ),
        (
            "watch as a string",
            "[services.a]\nrun = \"x\"\nwatch = \"src\"",
        ),
        (
            "env value as an array",
            "[env]\nA = [1]\n[services.a]\nrun = \"x\"",
        ),
        (
            "service env as a table",
            "[services.a]\nrun = \"x\"\nenv = { A = { b = 1 } }",
        ),
        (
            "negative retries",
            "[services.a]\nrun = \"x\"\n[services.a.health]\ntcp = true\nretries = -1",
        ),
        (
            "tcp probe as a string",
            "[services.a]\nrun = \"x\"\nport = 80\n[services.a.health]\ntcp = \"yes\"",
        ),
        (
            "autostart as a number",
            "[services.a]\nrun = \"x\"\nautostart = 1",
        ),
        (
            "scrollback as a string",
            "[stack]\nscrollback = \"lots\"\n[services.a]\nrun = \"x\"",
        ),
    ];
    for (what, src) in cases {
        assert!(!parses(src), "the parser accepts {what}:\n{src}");
        assert!(!errors(src).is_empty(), "the schema accepts {what}:\n{src}");
    }
}

#[test]
fn the_variants_the_parser_accepts_are_valid() {
    let ok = [
        "[services.a]\nrun = [\"srv\", \"--port\", \"$PORT\"]\nstop_signal = \"sigint\"",
        "[services.a]\nrun = \"x\"\nstop_signal = \"SIGUSR1\"\ngrace = \"1m 30s\"",
        "[services.a]\nrun = \"x\"\ngrace = \"0\"",
        "[services.a]\nrun = \"x\"\ngrace = \"1.5s\"",
        "[env]\nN = 5\nF = 1.5\nB = true\n[services.a]\nrun = \"x\"",
        "[services.a]\nrun = \"x\"\ndepends_on = { b = { condition = \"started\", restart = true } }\n[services.b]\nrun = \"y\"",
        "[services.a]\nrun = \"x\"\ndepends_on = { b = { restart = true } }\n[services.b]\nrun = \"y\"",
        "[services.t]\nbuild = [\"make\"]",
        "[services.a]\nrun = \"x\"\nport = 8000\n[faults.slow-a]\nfaults = [\"a latency=1s\", \"external->a error=503 rate=0.5\"]",
        "[services.a]\nrun = \"x\"\nport = 8000\n[faults.slow-a]\na = { latency = \"1s\", jitter = \"10ms\" }\n\"external->a\" = { error = 503, rate = 0.5, first = 2 }",
    ];
    for src in ok {
        assert!(parses(src), "{src}");
        assert_eq!(errors(src), Vec::<String>::new(), "{src}");
    }
}

/// A config made of valid and invalid values for every key.
fn generated() -> impl Strategy<Value = String> {
    let duration = prop::sample::select(vec![
        "\"250ms\"",
        "\"5s\"",
        "\"1m\"",
        "\"2h\"",
        "\"1m 30s\"",
        "\"0\"",
        "\"1.5s\"",
        "\"3 secs\"",
        "\"5\"",
        "5",
        "\"1w\"",
        "\"8d\"",
        "\"x\"",
    ]);
    let command = prop::sample::select(vec![
        "\"serve --port $PORT\"",
        "[\"serve\", \"a b\"]",
        "\"\"",
        "[]",
        "5",
        "\"echo ${HOME}\"",
    ]);
    let key = prop::sample::select(vec![
        "build",
        "run",
        "cwd",
        "port",
        "proxy",
        "protocol",
        "env",
        "depends_on",
        "watch",
        "ignore",
        "restart",
        "autostart",
        "stop_signal",
        "grace",
    ]);
    let value = prop::sample::select(vec![
        "\"x\"",
        "7001",
        "0",
        "70000",
        "true",
        "false",
        "\"auto\"",
        "\"http\"",
        "\"tcp\"",
        "\"no\"",
        "\"always\"",
        "\"on-failure\"",
        "\"TERM\"",
        "\"hup\"",
        "\"SIGKILL\"",
        "[\"b\"]",
        "[\"src/**\"]",
        "{ b = \"started\" }",
        "{ b = { condition = \"healthy\" } }",
        "{ A = \"1\", B = 2 }",
        "\".\"",
        "[]",
        "{}",
    ]);
    let field = prop_oneof![
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        command.clone().prop_map(|c| format!("run = {c}")),
        command.prop_map(|c| format!("build = {c}")),
        duration.clone().prop_map(|d| format!("grace = {d}")),
    ];
    let probe = prop::sample::select(vec![
        "http = \"/healthz\"",
        "tcp = true",
        "cmd = \"true\"",
        "log = \"ready\"",
        "retries = 2",
        "retries = -1",
        "https = \"/\"",
    ]);
    let health = (
        prop::collection::vec(probe, 0..3),
        prop::collection::vec(duration.clone(), 0..2),
    )
        .prop_map(|(probes, durations)| {
            let mut lines = probes.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            for (d, k) in durations
                .iter()
                .zip(["interval", "timeout", "start_period"])
            {
                lines.push(format!("{k} = {d}"));
            }
            lines
        });
    let service = (
        prop::collection::vec(field, 0..6),
        prop::option::of(health),
        any::<bool>(),
    );
    (
        prop::option::of(duration),
        prop::collection::vec(service, 1..3),
    )
        .prop_map(|(debounce, services)| {
            let mut src = String::from("[stack]\nname = \"gen\"\n");
            if let Some(d) = debounce {
                src += &format!("debounce = {d}\n");
            }
            for (i, (fields, health, runs)) in services.iter().enumerate() {
                let name = ["a", "b"][i];
                src += &format!("[services.{name}]\n");
                let mut seen = std::collections::HashSet::new();
                // Most services get a valid `run` first, so that more configs are valid.
                if *runs {
                    src += "run = \"serve\"\n";
                    seen.insert("run".to_string());
                }
                for f in fields {
                    // A key twice is a TOML error, not what this tests.
                    if seen.insert(f.split(' ').next().unwrap().to_string()) {
                        src += &format!("{f}\n");
                    }
                }
                if let Some(lines) = health {
                    src += &format!("[services.{name}.health]\n");
                    let mut seen = std::collections::HashSet::new();
                    for l in lines {
                        if seen.insert(l.split(' ').next().unwrap().to_string()) {
                            src += &format!("{l}\n");
                        }
                    }
                }
            }
            src
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn what_the_parser_accepts_the_schema_accepts(src in generated()) {
        let value: Value = toml::from_str(&src).unwrap();
        if parses(&src) {
            let errs: Vec<String> = VALIDATOR.iter_errors(&value).map(|e| e.to_string()).collect();
            prop_assert!(errs.is_empty(), "{:?}\n{}", errs, src);
        }
    }
}
