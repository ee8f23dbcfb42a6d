//! How the YAML importers (compose, process-compose) read their file: its top mapping, merge
//! keys applied, and scalars as text.

use super::{Context, Stack, SyntaxError};
use crate::ignored::Ignore;

/// How a YAML importer starts: the file's top mapping (None, said as a warning, when the file is
/// not one: `key` names what it should hold), and the stack, whose `env_file` is the `.env` beside
/// the file, with `dotenv` saying who reads it.
pub(super) fn open_yaml(
    src: &str,
    cx: &Context,
    source: &'static str,
    key: &str,
    dotenv: &str,
) -> Result<(Stack, Option<serde_norway::Mapping>), SyntaxError> {
    let mut stack = Stack::new(source, cx);
    let serde_norway::Value::Mapping(top) = parse_yaml(src)? else {
        stack.warn(format!(
            "the file is not a mapping with `{key}`: nothing to translate"
        ));
        return Ok((stack, None));
    };
    if let Some((path, _)) = &cx.dotenv {
        stack.env_file = Some(path.clone());
        stack.env_file_notes.push(format!("{path}: {dotenv}"));
    }
    Ok((stack, Some(top)))
}

/// A YAML scalar as text (numbers and booleans too).
pub(super) fn yaml_text(v: &serde_norway::Value) -> Option<String> {
    use serde_norway::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parse YAML into a value with merge keys (`<<: *base`) applied; a syntax error with its place.
fn parse_yaml(text: &str) -> Result<serde_norway::Value, SyntaxError> {
    let mut value: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let mut message = e.to_string();
        // The position is said by the caller, as FILE:LINE:COL.
        if let Some(at) = message.find(" at line ") {
            message.truncate(at);
        }
        SyntaxError {
            line,
            column,
            message,
        }
    })?;
    value
        .apply_merge()
        .or_say("a merge key that cannot be merged is left as written, for the importer to read");
    Ok(value)
}
