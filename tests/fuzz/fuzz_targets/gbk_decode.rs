//! Fuzz target `gbk_decode`: see tests/fuzz/README.md and `tongban_fuzz::gbk_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tongban_fuzz::gbk_decode(data);
});
