//! Volume operations against a model, on devices that fail I/O on a countdown and lose unflushed
//! writes in crashes. The logic is `umbra_fuzz::volume_ops::run`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| umbra_fuzz::volume_ops::run(data));
