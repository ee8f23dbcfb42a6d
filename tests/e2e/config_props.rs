//! Any config text, however broken: loading it never panics, and gives either a config or at
//! least one error; what is printed for either holds no control character a terminal acts on.
//! (The parser is called in-process: thousands of cases, where the binary would take minutes.
//! tests/config_errors.rs drives the binary on the cases found here.)

use devstack::config;
use proptest::prelude::*;

/// Valid configs to mutate.
const SEEDS: &[&str] = &[
    "[services.a]\nrun = \"serve --port $PORT ${HOME}\"\n",
    r#"
[stack]
name = "shop"
debounce = "100ms"
[env]
A = "x${HOME}"
N = 5
[services.db]
run = ["db", "--port", "${services.db.port}"]
port = 5432
[services.db.health]
tcp = true
[services.migrate]
build = """
migrate \
  --to ${services.db.port}"""
depends_on = ["db"]
[services.api]
run = 'api $${literal}'
cwd = "."
port = 7001
env = { DB = "pg://localhost:${services.db.port}/\tapp", Q = "\u00e9${A}" }
depends_on = { db = "healthy", migrate = "completed" }
watch = ["src/**"]
[services.api.health]
http = "/healthz"
interval = "1s"
"#,
];

/// Pieces that tend to break things: interpolation, escapes, quotes, multi-byte and control
/// characters, table headers.
const PIECES: &[&str] = &[
    "${",
    "}",
    "$${",
    "$",
    "\\",
    "\\t",
    "\\u00e9",
    "\\U0001F600",
    "\\x41",
    "\\e",
    "\\\n",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "\n",
    "\r\n",
    "\t",
    "é",
    "日",
    "😀",
    "\u{1b}",
    "\u{7}",
    "\u{9b}",
    "\u{202e}",
    "[",
    "]",
    "[services.",
    "[[services.x]]",
    " = ",
    "${services.a.port}",
    "${services.db.nope}",
    "${HOME",
    "${NOPE}",
    "#",
    "{",
    ",",
    ".",
    "run = \"x\"\n",
    "port = 1\n",
    "depends_on = [\"a\"]\n",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(PIECES).prop_map(String::from),
        1 => any::<char>().prop_map(String::from),
    ]
}

/// Random text made of the pieces.
fn random_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 0..40).prop_map(|p| p.concat())
}

/// A seed with a few pieces inserted, characters deleted or replaced, at random places.
fn mutated_seed() -> impl Strategy<Value = String> {
    let edit = (0..3u8, any::<proptest::sample::Index>(), 0..8usize, piece());
    (
        proptest::sample::select(SEEDS),
        proptest::collection::vec(edit, 1..6),
    )
        .prop_map(|(seed, edits)| {
            let mut chars: Vec<char> = seed.chars().collect();
            for (op, at, n, piece) in edits {
                let at = at.index(chars.len() + 1);
                match op {
                    0 => {
                        chars.splice(at..at, piece.chars());
                    }
                    1 => {
                        chars.drain(at..(at + n).min(chars.len()));
                    }
                    _ => {
                        let end = (at + piece.chars().count()).min(chars.len());
                        chars.splice(at..end, piece.chars());
                    }
                }
            }
            chars.into_iter().collect()
        })
}

/// What goes inside a string value: interpolation, escapes, multi-byte characters.
const VALUE_PIECES: &[&str] = &[
    "${",
    "}",
    "$${",
    "$",
    "\\t",
    "\\u00e9",
    "\\U0001F600",
    "\\e",
    "\\\n",
    "\\",
    "\"",
    "'",
    "\n",
    "\t",
    "é",
    "日",
    "😀",
    "a",
    " ",
    "HOME",
    "NOPE",
    "services.a.port",
    "services.b.port",
];

/// A well-formed service with one string field random inside: the errors come from
/// interpolation and validation more than from the parser.
fn random_value() -> impl Strategy<Value = String> {
    let field = proptest::sample::select(
        &[
            "run = ",
            "build = ",
            "cwd = ",
            "env.X = ",
            "health.cmd = ",
            "health.http = ",
        ][..],
    );
    let quote = proptest::sample::select(&["\"", "\"\"\"", "'", "'''"][..]);
    let body = proptest::collection::vec(proptest::sample::select(VALUE_PIECES), 0..16);
    (field, quote, body).prop_map(|(field, quote, body)| {
        let run = if field.starts_with("run") {
            ""
        } else {
            "run = \"x\"\n"
        };
        format!(
            "[services.a]\nport = 7001\n{run}{field}{quote}{}{quote}\n",
            body.concat()
        )
    })
}

fn assert_printable(text: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "control characters printed: {:?}",
        text
    );
    Ok(())
}

/// Parse and render, as `devstack check` does.
fn load(src: &str) -> Result<(), TestCaseError> {
    let env = |name: &str| (name == "HOME").then(|| "/home/me".to_string());
    // A folder that exists, so `cwd = "."` is valid.
    let file = std::env::temp_dir().join("devstack.toml");
    match config::parse(&file, src, &env) {
        Ok(cfg) => {
            prop_assert!(!cfg.services.is_empty());
            assert_printable(&config::describe(&cfg))
        }
        Err(errors) => {
            prop_assert!(!errors.0.is_empty());
            let shown = errors.to_string();
            prop_assert!(shown.starts_with("error: "), "{}", shown);
            assert_printable(&shown)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_text_loads_or_is_an_error(src in random_text()) {
        load(&src)?;
    }

    #[test]
    fn random_string_values_load_or_are_an_error(src in random_value()) {
        load(&src)?;
    }

    #[test]
    fn mutated_configs_load_or_are_an_error(src in mutated_seed()) {
        load(&src)?;
    }
}

#[test]
fn the_seeds_are_valid() {
    let env = |name: &str| (name == "HOME").then(|| "/home/me".to_string());
    for seed in SEEDS {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("devstack.toml");
        if let Err(e) = config::parse(&file, seed, &env) {
            panic!("{e}\n{seed}");
        }
    }
}
