//! An exchange's request as a `curl` command line that sends it again (to `base`, the
//! service's public address): its method, path, header fields and body. A redacted field's
//! value is left as a shell variable to set (`Authorization: $AUTHORIZATION`); fields curl
//! makes itself from what it sends (`Content-Length`, `Transfer-Encoding`, `Connection`) are
//! left to it.

use super::view::{Inspected, REDACTED};

/// Fields curl writes itself for the body it sends.
const CURLS_OWN: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

/// The command line, for `sh`.
pub fn command(exchange: &Inspected, base: &str) -> String {
    let request = &exchange.request;
    let quote = |s: &str| shlex::try_quote(s).map_or_else(|_| "''".into(), |q| q.into_owned());
    let mut words = vec!["curl".to_string(), "--silent".into(), "--show-error".into()];
    let body = &request.body;
    let binary = body.text.is_none() && body.base64.is_some();
    if !(request.method == "GET" || request.method == "POST" && !body.is_empty()) {
        words.push(format!("-X {}", quote(&request.method)));
    }
    words.push(quote(&format!(
        "{}{}",
        base.trim_end_matches('/'),
        request.path
    )));
    if request.version == "HTTP/1.0" {
        words.push("--http1.0".into());
    }
    for (name, value) in &request.headers {
        if CURLS_OWN.iter().any(|own| name.eq_ignore_ascii_case(own)) {
            continue;
        }
        let field = if value == REDACTED {
            // Double quotes: the variable is the shell's to fill.
            format!("\"{name}: ${}\"", variable(name))
        } else if value.is_empty() {
            // `Name:` would tell curl to leave the field out; `Name;` sends it empty.
            quote(&format!("{name};"))
        } else {
            quote(&format!("{name}: {value}"))
        };
        words.push(format!("-H {field}"));
    }
    let mut prefix = String::new();
    if body.cut {
        prefix.push_str(&format!(
            "# the body was cut: its first bytes are sent, not all of its {} bytes\n",
            body.size
        ));
    }
    match (&body.text, &body.base64) {
        (Some(text), _) if !text.is_empty() => words.push(format!("--data-binary {}", quote(text))),
        (None, Some(b64)) if binary => {
            prefix.push_str(&format!("echo {} | base64 -d | ", quote(b64)));
            words.push("--data-binary @-".into());
        }
        _ => {}
    }
    format!("{prefix}{}", words.join(" "))
}

/// A shell variable's name for a header field's value: `Proxy-Authorization` →
/// `PROXY_AUTHORIZATION`.
fn variable(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => c.to_ascii_uppercase(),
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::Caller;
    use crate::traffic::capture::view::{Request, Shown, Timings};

    fn exchange(method: &str, headers: &[(&str, &str)], body: Shown) -> Inspected {
        Inspected {
            id: 1,
            time_ms: 0,
            caller: Caller::External,
            callee: "api".into(),
            request: Request {
                method: method.into(),
                path: "/a?b=c d".into(),
                version: "HTTP/1.1".into(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                body,
            },
            response: None,
            timings: Timings::default(),
            error: None,
            injected: None,
            redacted: true,
            grpc: None,
            decoded: None,
            websocket: Vec::new(),
        }
    }

    #[test]
    fn a_post_with_a_redacted_field_and_a_text_body() {
        let body = Shown {
            size: 9,
            text: Some("{\"a\":\"'\"}".into()),
            ..Shown::default()
        };
        let e = exchange(
            "POST",
            &[
                ("Host", "x"),
                ("Authorization", REDACTED),
                ("Content-Length", "9"),
            ],
            body,
        );
        assert_eq!(
            command(&e, "http://127.0.0.1:7001/"),
            "curl --silent --show-error 'http://127.0.0.1:7001/a?b=c d' -H 'Host: x' \
             -H \"Authorization: $AUTHORIZATION\" --data-binary \"{\\\"a\\\":\\\"'\\\"}\""
        );
    }

    #[test]
    fn a_delete_and_a_binary_body() {
        let e = exchange("DELETE", &[], Shown::default());
        assert!(command(&e, "http://h").starts_with("curl --silent --show-error -X DELETE "));
        let body = Shown {
            size: 2,
            base64: Some("/wA=".into()),
            ..Shown::default()
        };
        let e = exchange("PUT", &[], body);
        assert_eq!(
            command(&e, "http://h"),
            "echo '/wA=' | base64 -d | curl --silent --show-error -X PUT 'http://h/a?b=c d' --data-binary @-"
        );
    }
}
