//! `$` in commands and values: the references compose and process-compose expand (`${NAME}`,
//! `${NAME:-default}`, `$NAME`; `$$` a literal `$`) rewritten for devstack, which expands
//! `${NAME}` itself, and for `sh`, which expands what devstack leaves; and a command's words
//! quoted into one `sh -c` string.

use super::{Context, Svc};

/// A command for `sh -c` as devstack reads it: `${` is written `$${`, so that the shell, not
/// devstack, expands `${VAR}` (as the source's runner did).
/// (`${PORT}` is left to devstack, which gives the same port.)
pub(super) fn shell_for_devstack(cmd: &str) -> String {
    cmd.replace("${", "$${").replace("$${PORT}", "${PORT}")
}

/// A piece of a string with `$` references, as compose and process-compose read them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    /// `${NAME}`, `${NAME:-default}`, `$NAME`: the name, the default if any, and the text.
    Var {
        name: String,
        default: Option<String>,
        raw: String,
    },
}

/// Split `text` into literal text and `$` references (`$$` is a literal `$`).
fn segments(text: &str) -> Vec<Seg> {
    let mut out: Vec<Seg> = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let at = &rest[i..];
        if let Some(after) = at.strip_prefix("$$") {
            lit.push('$');
            rest = after;
        } else if let Some(body) = at.strip_prefix("${")
            && let Some(end) = body.find('}')
        {
            let inner = &body[..end];
            let cut = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, op) = inner.split_at(cut);
            let default = op
                .strip_prefix(":-")
                .or_else(|| op.strip_prefix('-'))
                .map(str::to_string);
            if !lit.is_empty() {
                out.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            out.push(Seg::Var {
                name: name.to_string(),
                default,
                raw: format!("${{{inner}}}"),
            });
            rest = &body[end + 1..];
        } else {
            let name_len = at[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(at.len() - 1);
            let name = &at[1..1 + name_len];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                lit.push('$');
                rest = &at[1..];
            } else {
                if !lit.is_empty() {
                    out.push(Seg::Lit(std::mem::take(&mut lit)));
                }
                out.push(Seg::Var {
                    name: name.to_string(),
                    default: None,
                    raw: format!("${name}"),
                });
                rest = &at[1 + name_len..];
            }
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Seg::Lit(lit));
    }
    out
}

/// An environment value for devstack, which expands `${NAME}` itself and stops on an undefined
/// one: a variable the `.env` beside the file defines (devstack's `env_file`) stays `${NAME}`;
/// another takes its default, or nothing (as compose substitutes), with a warning.
pub(super) fn env_value(cx: &Context, svc: &mut Svc, key: &str, text: &str) -> String {
    let mut out = String::new();
    for seg in segments(text) {
        match seg {
            Seg::Lit(l) => out.push_str(&l.replace("${", "$${")),
            Seg::Var { name, default, raw } => {
                if cx.dotenv_defines(&name) || name == "PORT" {
                    out.push_str(&format!("${{{name}}}"));
                } else if default.is_none() && cx.environment.contains(&name) {
                    svc.note(format!(
                        "{key}: `{raw}` is read from devstack's environment when it starts (it is set here now)"
                    ));
                    out.push_str(&format!("${{{name}}}"));
                } else if let Some(d) = default {
                    svc.note(format!(
                        "{key}: `{raw}` is written as its default; set {key} in devstack's env to change it"
                    ));
                    out.push_str(&d.replace("${", "$${"));
                } else {
                    svc.warn(format!(
                        "{key}: `{raw}` is defined in no .env beside the file, so it is written empty (compose substitutes an empty string); set it here, or in .env as `${{{name}}}`"
                    ));
                }
            }
        }
    }
    out
}

/// One shell word that keeps `$VAR` references live: single quotes when there are none,
/// double quotes around them otherwise.
fn shell_word(arg: &str) -> String {
    let segs = segments(arg);
    if !segs.iter().any(|s| matches!(s, Seg::Var { .. })) {
        let plain: String = segs
            .iter()
            .map(|s| match s {
                Seg::Lit(l) => l.as_str(),
                Seg::Var { raw, .. } => raw.as_str(),
            })
            .collect();
        return shlex::try_quote(&plain)
            .map(|c| c.into_owned())
            .unwrap_or(plain);
    }
    let mut out = String::from("\"");
    for s in segs {
        match s {
            Seg::Lit(l) => {
                for c in l.chars() {
                    if matches!(c, '"' | '\\' | '$' | '`') {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            Seg::Var { raw, .. } => out.push_str(&raw),
        }
    }
    out.push('"');
    out
}

/// A command line (exec form: program and arguments) as one `sh -c` string for devstack;
/// `sh -c SCRIPT` is the script itself.
pub(super) fn command_line(argv: &[String]) -> String {
    if argv.len() == 3 && matches!(argv[0].as_str(), "sh" | "/bin/sh") && argv[1] == "-c" {
        return shell_for_devstack(&unescape_dollars(&argv[2]));
    }
    let words: Vec<String> = argv.iter().map(|a| shell_word(a)).collect();
    shell_for_devstack(&words.join(" "))
}

/// A shell script from compose, where `$$` is a literal `$`.
pub(super) fn unescape_dollars(script: &str) -> String {
    script.replace("$$", "$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_references_as_compose_reads_them() {
        assert_eq!(
            segments("a$$b${X:-d}$Y $1"),
            vec![
                Seg::Lit("a$b".into()),
                Seg::Var {
                    name: "X".into(),
                    default: Some("d".into()),
                    raw: "${X:-d}".into()
                },
                Seg::Var {
                    name: "Y".into(),
                    default: None,
                    raw: "$Y".into()
                },
                Seg::Lit(" $1".into()),
            ]
        );
    }

    #[test]
    fn commands_are_quoted_for_sh_and_devstack() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_line(&argv(&["echo", "a b", "it's"])),
            r#"echo 'a b' "it's""#
        );
        assert_eq!(
            command_line(&argv(&["serve", "--port=${PORT}", "--x=$X\"q"])),
            r#"serve "--port=${PORT}" "--x=$X\"q""#
        );
        assert_eq!(
            command_line(&argv(&["sh", "-c", "echo $${HOME} && run"])),
            "echo $${HOME} && run"
        );
        assert_eq!(command_line(&argv(&["echo", "${A}"])), r#"echo "$${A}""#);
    }
}
