//! The proxy's protocol sniffing: any first bytes get an answer, and more bytes never change
//! an answer already given (the proxy decides on a prefix and replays it).
#![no_main]

use devstack::traffic::sniff::detect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let full = detect(data);
    let mut decided = None;
    for end in 0..=data.len() {
        let now = detect(&data[..end]);
        if let Some(first) = decided {
            assert_eq!(now, Some(first), "{:?} then {:?}", &data[..end], now);
        } else if now.is_some() {
            decided = now;
        }
    }
    assert_eq!(full, decided);
});
