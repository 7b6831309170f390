//! The NBD wire format: constants, request and reply encoding, option parsing, and the planning
//! of structured read replies and block-status extents. Everything is big-endian.
//!
//! Public so tests and tools can speak the protocol with the same codec ([`codec`]); the server
//! itself is [`crate::Server`].

pub mod codec;

/// `NBDMAGIC`, the first 8 bytes the server sends.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: the newstyle magic, and the magic in front of every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
/// The magic in front of every option reply.
pub const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;

/// Handshake flag (server): fixed newstyle.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Handshake flag (server): the 124 zero bytes after EXPORT_NAME may be left out.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flag: fixed newstyle.
pub const CLIENT_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flag: no zeroes after EXPORT_NAME.
pub const CLIENT_NO_ZEROES: u32 = 1 << 1;

/// Option: choose the export and end the handshake (no error reply possible).
pub const OPT_EXPORT_NAME: u32 = 1;
/// Option: end the handshake without an export.
pub const OPT_ABORT: u32 = 2;
/// Option: list the exports.
pub const OPT_LIST: u32 = 3;
/// Option: upgrade to TLS.
pub const OPT_STARTTLS: u32 = 5;
/// Option: describe an export.
pub const OPT_INFO: u32 = 6;
/// Option: describe an export and enter transmission.
pub const OPT_GO: u32 = 7;
/// Option: structured replies.
pub const OPT_STRUCTURED_REPLY: u32 = 8;
/// Option: list meta contexts.
pub const OPT_LIST_META_CONTEXT: u32 = 9;
/// Option: select meta contexts.
pub const OPT_SET_META_CONTEXT: u32 = 10;
/// Option: 64-bit extended headers (refused here).
pub const OPT_EXTENDED_HEADERS: u32 = 11;

/// Option reply: done.
pub const REP_ACK: u32 = 1;
/// Option reply: one export of a LIST.
pub const REP_SERVER: u32 = 2;
/// Option reply: one piece of export information.
pub const REP_INFO: u32 = 3;
/// Option reply: one meta context.
pub const REP_META_CONTEXT: u32 = 4;
/// Option error bit.
pub const REP_FLAG_ERROR: u32 = 1 << 31;
/// Option error: unknown or unsupported option.
pub const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
/// Option error: forbidden by policy.
pub const REP_ERR_POLICY: u32 = REP_FLAG_ERROR | 2;
/// Option error: malformed option.
pub const REP_ERR_INVALID: u32 = REP_FLAG_ERROR | 3;
/// Option error: not supported on this platform.
pub const REP_ERR_PLATFORM: u32 = REP_FLAG_ERROR | 4;
/// Option error: TLS is required first.
pub const REP_ERR_TLS_REQD: u32 = REP_FLAG_ERROR | 5;
/// Option error: no such export.
pub const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;
/// Option error: the server is shutting down.
pub const REP_ERR_SHUTDOWN: u32 = REP_FLAG_ERROR | 7;
/// Option error: the request is too big.
pub const REP_ERR_TOO_BIG: u32 = REP_FLAG_ERROR | 9;

/// Info: size and transmission flags (always sent).
pub const INFO_EXPORT: u16 = 0;
/// Info: the export's canonical name.
pub const INFO_NAME: u16 = 1;
/// Info: the export's description.
pub const INFO_DESCRIPTION: u16 = 2;
/// Info: block-size constraints.
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Transmission flag: flags are sent (always).
pub const TF_HAS_FLAGS: u16 = 1 << 0;
/// Transmission flag: the export is read-only.
pub const TF_READ_ONLY: u16 = 1 << 1;
/// Transmission flag: FLUSH is supported.
pub const TF_SEND_FLUSH: u16 = 1 << 2;
/// Transmission flag: the FUA command flag is supported.
pub const TF_SEND_FUA: u16 = 1 << 3;
/// Transmission flag: TRIM is supported.
pub const TF_SEND_TRIM: u16 = 1 << 5;
/// Transmission flag: WRITE_ZEROES is supported.
pub const TF_SEND_WRITE_ZEROES: u16 = 1 << 6;
/// Transmission flag: the DF command flag is supported (structured replies only).
pub const TF_SEND_DF: u16 = 1 << 7;
/// Transmission flag: a flush on any connection covers writes completed on every connection.
pub const TF_CAN_MULTI_CONN: u16 = 1 << 8;
/// Transmission flag: CACHE is supported.
pub const TF_SEND_CACHE: u16 = 1 << 10;
/// Transmission flag: the FAST_ZERO command flag is supported.
pub const TF_SEND_FAST_ZERO: u16 = 1 << 11;

/// Request magic.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Simple reply magic.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Structured reply chunk magic.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Command: read.
pub const CMD_READ: u16 = 0;
/// Command: write (payload follows the request).
pub const CMD_WRITE: u16 = 1;
/// Command: disconnect (no reply).
pub const CMD_DISC: u16 = 2;
/// Command: flush.
pub const CMD_FLUSH: u16 = 3;
/// Command: trim (discard).
pub const CMD_TRIM: u16 = 4;
/// Command: cache (prefetch; a no-op here).
pub const CMD_CACHE: u16 = 5;
/// Command: write zeroes.
pub const CMD_WRITE_ZEROES: u16 = 6;
/// Command: block status.
pub const CMD_BLOCK_STATUS: u16 = 7;

/// Command flag: force unit access.
pub const CMD_FLAG_FUA: u16 = 1 << 0;
/// Command flag (WRITE_ZEROES): do not punch a hole.
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;
/// Command flag (READ): one data chunk, do not fragment.
pub const CMD_FLAG_DF: u16 = 1 << 2;
/// Command flag (BLOCK_STATUS): one extent only.
pub const CMD_FLAG_REQ_ONE: u16 = 1 << 3;
/// Command flag (WRITE_ZEROES): fail at once if zeroing is not fast.
pub const CMD_FLAG_FAST_ZERO: u16 = 1 << 4;
/// Every command flag the server understands.
pub const CMD_FLAGS_KNOWN: u16 =
    CMD_FLAG_FUA | CMD_FLAG_NO_HOLE | CMD_FLAG_DF | CMD_FLAG_REQ_ONE | CMD_FLAG_FAST_ZERO;

/// Reply chunk flag: the last chunk of the reply.
pub const REPLY_FLAG_DONE: u16 = 1 << 0;
/// Chunk type: nothing (a reply without data).
pub const REPLY_TYPE_NONE: u16 = 0;
/// Chunk type: data at an offset.
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
/// Chunk type: zeros at an offset.
pub const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
/// Chunk type: block-status extents of one meta context.
pub const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
/// Chunk type: an error.
pub const REPLY_TYPE_ERROR: u16 = 32769;

/// `base:allocation` flag: the extent is a hole.
pub const STATE_HOLE: u32 = 1 << 0;
/// `base:allocation` flag: the extent reads as zeros.
pub const STATE_ZERO: u32 = 1 << 1;
/// The only meta context served.
pub const BASE_ALLOCATION: &str = "base:allocation";
/// The id the server gives `base:allocation`.
pub const BASE_ALLOCATION_ID: u32 = 1;

/// NBD error: operation not permitted (read-only, masked, revoked).
pub const EPERM: u32 = 1;
/// NBD error: I/O error.
pub const EIO: u32 = 5;
/// NBD error: out of memory.
pub const ENOMEM: u32 = 12;
/// NBD error: invalid argument (out-of-range read, unknown command or flag).
pub const EINVAL: u32 = 22;
/// NBD error: no space (write past the end).
pub const ENOSPC: u32 = 28;
/// NBD error: request larger than the maximum.
pub const EOVERFLOW: u32 = 75;
/// NBD error: not supported (FAST_ZERO that would not be fast).
pub const ENOTSUP: u32 = 95;
/// NBD error: the server is shutting down.
pub const ESHUTDOWN: u32 = 108;

/// The longest export name or meta-context query accepted (the protocol's string limit).
pub const MAX_STRING: usize = 4096;
/// Block size advertised: minimum.
pub const BLOCK_MIN: u32 = 1;
/// Block size advertised: preferred.
pub const BLOCK_PREFERRED: u32 = 4096;
