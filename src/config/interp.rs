//! `${VAR}` and `${services.NAME.port}` interpolation. `$VAR` is left for the shell; `$${` is a literal `${`.

/// Why a reference could not be expanded: the byte offset of its `${` in the input, and the message.
#[derive(Debug, PartialEq, Eq)]
pub struct InterpError {
    pub offset: usize,
    pub len: usize,
    pub message: String,
}

/// Expand every `${...}` in `input`; `lookup` answers a name or says why it cannot.
pub fn interpolate(
    input: &str,
    lookup: impl Fn(&str) -> Result<String, String>,
) -> Result<String, InterpError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        if let Some(after) = at.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            offset += i + 3;
        } else if let Some(body) = at.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                return Err(InterpError {
                    offset: offset + i,
                    len: at.len(),
                    message: "unclosed `${`; close it with `}` or write `$${` for a literal `${`"
                        .into(),
                });
            };
            let name = body[..end].trim();
            let value = lookup(name).map_err(|message| InterpError {
                offset: offset + i,
                len: end + 3,
                message,
            })?;
            out.push_str(&value);
            rest = &body[end + 1..];
            offset += i + end + 3;
        } else {
            out.push('$');
            rest = &at[1..];
            offset += i + 1;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Result<String, String> {
        match name {
            "HOME" => Ok("/home/me".into()),
            "services.db.port" => Ok("5432".into()),
            _ => Err(format!("undefined variable `{name}`")),
        }
    }

    #[test]
    fn expands_braced_names_and_service_ports() {
        assert_eq!(
            interpolate("${HOME}/x:${services.db.port}", env).unwrap(),
            "/home/me/x:5432"
        );
    }

    #[test]
    fn leaves_shell_variables_and_escapes_literal() {
        assert_eq!(
            interpolate("serve --port $PORT $${HOME}", env).unwrap(),
            "serve --port $PORT ${HOME}"
        );
    }

    #[test]
    fn undefined_variable_is_an_error_with_its_offset() {
        let err = interpolate("a ${NOPE} b", env).unwrap_err();
        assert_eq!((err.offset, err.len), (2, 7));
        assert!(err.message.contains("NOPE"));
    }

    #[test]
    fn unclosed_reference_is_an_error() {
        assert!(interpolate("x ${HOME", env).is_err());
    }
}
