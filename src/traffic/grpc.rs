//! gRPC's status: its codes by number and name, the code a client reads off an HTTP status
//! (gRPC's `http-grpc-status-mapping`), and `grpc-message`'s percent-encoding, both ways.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// gRPC's status codes, by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A code's name (`UNAVAILABLE`); empty for a code gRPC does not define.
pub fn name(code: u32) -> &'static str {
    CODES.get(code as usize).copied().unwrap_or("")
}

/// A code as written: its number (`14`) or its name in any case (`unavailable`).
pub fn code(said: &str) -> Option<u32> {
    match said.parse::<u32>() {
        Ok(n) => (n < CODES.len() as u32).then_some(n),
        Err(_) => (CODES.iter().position(|c| c.eq_ignore_ascii_case(said))).map(|n| n as u32),
    }
}

/// The code a gRPC client reads when the answer's HTTP status is `status` (gRPC's mapping:
/// 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429, 502,
/// 503 and 504 UNAVAILABLE, any other UNKNOWN).
pub fn from_http(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

/// The HTTP status that says most nearly what a code does, for a caller that does not
/// speak gRPC (its code told by the `grpc-status` field beside it).
pub fn to_http(code: u32) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// What `grpc-message` escapes: every byte outside printable ASCII, and `%`.
const ESCAPED: &AsciiSet = &CONTROLS.add(b'%');

/// A message as `grpc-message` carries it (UTF-8, percent-encoded).
pub fn message_encoded(text: &str) -> String {
    utf8_percent_encode(text, ESCAPED).to_string()
}

/// A `grpc-message` as it was meant (any bytes that are not UTF-8 shown replaced).
pub fn message_decoded(field: &str) -> String {
    percent_decode_str(field).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_read_by_number_or_name() {
        assert_eq!(code("14"), Some(14));
        assert_eq!(code("unavailable"), Some(14));
        assert_eq!(code("DEADLINE_EXCEEDED"), Some(4));
        assert_eq!(code("17"), None);
        assert_eq!(code("nope"), None);
        assert_eq!(name(14), "UNAVAILABLE");
        assert_eq!(name(99), "");
    }

    #[test]
    fn http_statuses_map_as_grpc_says_and_back() {
        assert_eq!(from_http(503), 14);
        assert_eq!(from_http(404), 12);
        assert_eq!(from_http(500), 2);
        for code in 1..17 {
            let back = from_http(to_http(code));
            // Each status a code maps to is one a client reads as an error.
            assert_ne!(back, 0, "{code}");
        }
        assert_eq!(to_http(14), 503);
    }

    #[test]
    fn a_message_survives_its_encoding() {
        let text = "users is down: 100% ünavailable\n";
        let field = message_encoded(text);
        assert!(field.is_ascii() && !field.contains('\n'), "{field}");
        assert!(field.contains("%25"), "{field}");
        assert_eq!(message_decoded(&field), text);
    }
}
