//! Engine bugs the targets have found and step around so that fuzzing can go on. Each has an
//! ignored test in `cow-engine/tests/fuzz_corpus.rs`; remove the workaround when the bug is fixed
//! (set the flag to `false` and run the targets: they must then pass on their own).

/// A checkpoint with no `VolumeLen` record replays into a 0-byte volume (`Ok`, `len() == 0`)
/// instead of `Corrupt`. Workaround: a volume of 0 bytes is not exercised.
pub const CHECKPOINT_WITHOUT_VOLUME_LEN: bool = false;
/// Counters read from the journal unchecked (`CheckpointEnd.next_id`, `CreateSnapshot.id`,
/// record seqs, header generations) overflow when the engine adds 1 to them. Workaround:
/// structured inputs keep them at most [`COUNTER_LIMIT`].
pub const COUNTER_OVERFLOW: bool = false;
/// The largest counter structured inputs write while [`COUNTER_OVERFLOW`] stands.
pub const COUNTER_LIMIT: u64 = 1 << 62;
/// A superblock `data_offset` near `u64::MAX` overflows slot offsets at the first
/// copy-on-write. Workaround: structured inputs keep it at most 2^40.
pub const DATA_OFFSET_OVERFLOW: bool = false;
/// A volatile volume on an origin that ends in a partial block gets snapshots whose last
/// block is not preserved. Workaround: volatile structured inputs get whole-block origins.
pub const VOLATILE_PARTIAL_BLOCK: bool = false;
/// A snapshot whose creation failed at the journal flush (the record reached the device) is not
/// in memory, so origin writes after the failure are not preserved for it; when a reopen brings
/// it back from the journal, its image holds those later writes. Workaround: after a transient
/// failure, a snapshot that reappears is not compared with its point-in-time image.
pub const PHANTOM_SNAPSHOT_AFTER_FAILED_CREATE: bool = false;
/// `grow` resizes the origin before knowing its record can be synced: after a grow that failed at
/// the journal flush (its record may be on the device), a smaller grow shrinks the origin below
/// that record's size and the next open refuses the volume as corrupt. Workaround: no grow after
/// a failed grow until the next restart.
pub const GROW_RETRY_AFTER_FAILED_GROW: bool = false;
