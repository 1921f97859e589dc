//! Fuzz target `xml_decode`: see tests/fuzz/README.md and `tongban_fuzz::xml_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tongban_fuzz::xml_decode(data);
});
