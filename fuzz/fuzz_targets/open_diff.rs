//! Opening a volume on a diff area and journals built from the input: `Ok` or a documented
//! error, never a panic or a hang. The logic is `umbra_fuzz::open_diff::run`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| umbra_fuzz::open_diff::run(data));
