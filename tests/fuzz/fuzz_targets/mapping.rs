//! Fuzz target `mapping`: see tests/fuzz/README.md and `tongban_fuzz::mapping`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tongban_fuzz::mapping(data);
});
