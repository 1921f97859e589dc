//! Fuzz target `json_decode`: see tests/fuzz/README.md and `tongban_fuzz::json_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tongban_fuzz::json_decode(data);
});
