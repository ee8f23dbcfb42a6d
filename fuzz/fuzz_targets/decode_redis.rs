//! The Redis decoder fed any conversation (see `decode_common.rs`): never a panic, the same
//! exchanges however the bytes are cut, every text one bounded line.
#![no_main]

#[path = "decode_common.rs"]
mod common;

use devstack::traffic::decode::{Decoder, Redis};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::check_decoder(|| Box::new(Redis::new()) as Box<dyn Decoder>, data);
});
