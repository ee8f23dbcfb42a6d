//! The control socket's request parser: any line is a request or an error message, never a
//! panic; a request survives its own serialisation.
#![no_main]

use devstack::control::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Request::parse(data) {
        None => assert!(String::from_utf8_lossy(data).trim().is_empty()),
        Some(Err(e)) => assert!(e.starts_with("bad request: ")),
        Some(Ok(request)) => {
            let wire = serde_json::to_vec(&request).unwrap();
            assert_eq!(Request::parse(&wire), Some(Ok(request)));
        }
    }
});
