//! Arbitrary bytes as an NBD client: the handshake and, after a valid handshake (odd first
//! byte), the request loop, through `Server::serve_connection` over an in-memory connection.
//! The checks live in `umbra_nbd::fuzzing`, which `nbd/tests/fuzz_corpus.rs` also runs over this
//! target's corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| umbra_nbd::fuzzing::session(data));
