//! A failure's message agrees with its status: after the `"function_name: "` prefix, the last
//! error starts with the label of the status's kind (docs/abi.md, "Status codes"), whether the
//! message comes from a core crate or from the C layer itself. One or more failing calls per
//! status that can be provoked through the ABI; plus the host LUN number clash and the resync
//! precondition, which docs/abi.md documents.
//!
//! Why: the C layer wrote messages of its own next to literal status codes ("argument `initiator`
//! is not valid UTF-8" with `UMBRA_E_INVALID_INITIATOR`, "cannot start a thread" with
//! `UMBRA_E_IO`) that did not say what the code says, while the core crates' texts start with
//! their kind's label.

use std::collections::BTreeSet;
use std::ffi::{c_char, CString};
use std::ptr;
use std::time::Duration;

use umbra::*;

/// The label of each status, as docs/abi.md's table gives it (written out here, not taken from
/// the library, so the test checks the library against the documentation).
fn label(status: umbra_status) -> &'static str {
    match status {
        UMBRA_E_NULL_POINTER => "null pointer",
        UMBRA_E_INVALID_ARGUMENT => "invalid argument",
        UMBRA_E_OUT_OF_RANGE => "out of range",
        UMBRA_E_BUFFER_TOO_SMALL => "buffer too small",
        UMBRA_E_NOT_FOUND => "not found",
        UMBRA_E_ALREADY_EXISTS => "already exists",
        UMBRA_E_BAD_STATE => "bad state",
        UMBRA_E_IN_PROGRESS => "in progress",
        UMBRA_E_TIMEOUT => "timed out",
        UMBRA_E_CANCELLED => "cancelled",
        UMBRA_E_BUSY => "busy",
        UMBRA_E_IO => "I/O error",
        UMBRA_E_NO_SPACE => "no space",
        UMBRA_E_CORRUPT => "corrupt",
        UMBRA_E_UNSUPPORTED_VERSION => "unsupported version",
        UMBRA_E_UNSUPPORTED => "unsupported",
        UMBRA_E_INVALID_INITIATOR => "invalid initiator",
        UMBRA_E_ACCESS_DENIED => "access denied",
        UMBRA_E_PANIC => "internal error",
        other => panic!("no label for status {other}"),
    }
}

fn last_error() -> String {
    // SAFETY: a size query, then a buffer of that size plus the NUL.
    unsafe {
        let n = umbra_last_error(ptr::null_mut(), 0);
        let mut buf = vec![0u8; n + 1];
        umbra_last_error(buf.as_mut_ptr().cast(), buf.len());
        buf.truncate(n);
        String::from_utf8(buf).expect("UTF-8 message")
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Collects the statuses checked.
#[derive(Default)]
struct Seen(BTreeSet<umbra_status>);

impl Seen {
    /// `status` (what `function` returned) is `want`, and the message is `function: <label>: ...`.
    #[track_caller]
    fn check(&mut self, function: &str, status: umbra_status, want: umbra_status) -> String {
        let msg = last_error();
        assert_eq!(status, want, "{function}: {msg}");
        let rest = msg
            .strip_prefix(function)
            .and_then(|r| r.strip_prefix(": "))
            .unwrap_or_else(|| panic!("{msg:?} does not start with {function:?}"));
        let label = label(want);
        assert!(
            rest.starts_with(&format!("{label}: ")),
            "{function} returned {want} but its message does not start with {label:?}: {msg:?}"
        );
        self.0.insert(want);
        rest.to_string()
    }
}

const MIB: u64 = 1 << 20;
const BS: u32 = 4096;
const HOST1: &str = "iqn.1991-05.com.microsoft:host1";
const HOST2: &str = "iqn.1991-05.com.microsoft:host2";

#[test]
fn every_message_starts_with_its_status_label() {
    let mut seen = Seen::default();
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: every pointer below is a live handle of this test, a NUL-terminated string, or a
    // buffer of the length given; handles are freed once at the end.
    unsafe {
        // Volume calls.
        let mut vol: *mut umbra_volume = ptr::null_mut();
        let mut x = 0u64;
        let st = umbra_volume_get_size(ptr::null(), &mut x);
        seen.check("umbra_volume_get_size", st, UMBRA_E_NULL_POINTER);
        let st = umbra_volume_create_mem(MIB, 1000, &mut vol);
        seen.check("umbra_volume_create_mem", st, UMBRA_E_INVALID_ARGUMENT);
        let st = umbra_volume_create_mem_ex(MIB, BS, UMBRA_UNLIMITED, 0x80, &mut vol);
        seen.check("umbra_volume_create_mem_ex", st, UMBRA_E_INVALID_ARGUMENT);
        let st = umbra_volume_open_file(c"".as_ptr(), &mut vol);
        seen.check("umbra_volume_open_file", st, UMBRA_E_INVALID_ARGUMENT);
        let missing = c(dir.path().join("missing").to_str().unwrap());
        let st = umbra_volume_open_file(missing.as_ptr(), &mut vol);
        seen.check("umbra_volume_open_file", st, UMBRA_E_NOT_FOUND);

        // A diff area of one block that fails writes when full.
        let flags = UMBRA_VOLUME_FAIL_WRITES_WHEN_FULL;
        let st = umbra_volume_create_mem_ex(MIB, BS, u64::from(BS), flags, &mut vol);
        assert_eq!(st, UMBRA_OK, "{}", last_error());
        let mut buf = [0u8; 8192];
        let st = umbra_volume_read(vol, MIB - 4, buf.as_mut_ptr(), 8);
        seen.check("umbra_volume_read", st, UMBRA_E_OUT_OF_RANGE);
        let mut ro = 0u64;
        let st = umbra_snapshot_create_ex(vol, UMBRA_SNAPSHOT_READ_ONLY, ptr::null(), 0, &mut ro);
        assert_eq!(st, UMBRA_OK, "{}", last_error());
        let st = umbra_snapshot_write(vol, ro, 0, buf.as_ptr(), 1);
        seen.check("umbra_snapshot_write", st, UMBRA_E_BAD_STATE);
        let st = umbra_snapshot_read(vol, 999, 0, buf.as_mut_ptr(), 1);
        seen.check("umbra_snapshot_read", st, UMBRA_E_NOT_FOUND);
        let st = umbra_volume_write(vol, 0, buf.as_ptr(), buf.len());
        seen.check("umbra_volume_write", st, UMBRA_E_NO_SPACE);
        let mut ids = [0u64; 1];
        let mut n = 0usize;
        let mut two = 0u64;
        assert_eq!(umbra_snapshot_create(vol, &mut two), UMBRA_OK);
        let st = umbra_snapshot_list(vol, ids.as_mut_ptr(), 1, &mut n);
        seen.check("umbra_snapshot_list", st, UMBRA_E_BUFFER_TOO_SMALL);
        let st = umbra_volume_thaw(vol);
        seen.check("umbra_volume_thaw", st, UMBRA_E_BAD_STATE);
        assert_eq!(umbra_volume_freeze(vol, 1), UMBRA_OK, "{}", last_error());
        std::thread::sleep(Duration::from_millis(50));
        let st = umbra_volume_thaw(vol);
        seen.check("umbra_volume_thaw", st, UMBRA_E_TIMEOUT);
        let st = umbra_volume_unsubscribe(vol, 12345);
        seen.check("umbra_volume_unsubscribe", st, UMBRA_E_NOT_FOUND);
        umbra_volume_free(vol);

        // A revert held by a freeze: deterministically still running, then cancelled.
        assert_eq!(umbra_volume_create_mem(MIB, BS, &mut vol), UMBRA_OK);
        let mut snap = 0u64;
        assert_eq!(umbra_snapshot_create(vol, &mut snap), UMBRA_OK);
        let ones = vec![1u8; 4 * BS as usize];
        assert_eq!(
            umbra_volume_write(vol, 0, ones.as_ptr(), ones.len()),
            UMBRA_OK
        );
        assert_eq!(
            umbra_volume_freeze(vol, 60_000),
            UMBRA_OK,
            "{}",
            last_error()
        );
        let mut op: *mut umbra_async = ptr::null_mut();
        assert_eq!(umbra_volume_revert_async(vol, snap, &mut op), UMBRA_OK);
        let st = umbra_async_wait_timeout(op, 0);
        seen.check("umbra_async_wait_timeout", st, UMBRA_E_IN_PROGRESS);
        assert_eq!(umbra_async_cancel(op), UMBRA_OK);
        assert_eq!(umbra_volume_thaw(vol), UMBRA_OK, "{}", last_error());
        let st = umbra_async_wait(op);
        seen.check("umbra_async_wait", st, UMBRA_E_CANCELLED);
        umbra_async_free(op);
        umbra_volume_free(vol);

        // A volume directory missing one of its files.
        let vdir = c(dir.path().join("vol").to_str().unwrap());
        assert_eq!(
            umbra_volume_create_file(vdir.as_ptr(), MIB, BS, &mut vol),
            UMBRA_OK
        );
        umbra_volume_free(vol);
        std::fs::remove_file(dir.path().join("vol/diff.img")).unwrap();
        let st = umbra_volume_open_file(vdir.as_ptr(), &mut vol);
        seen.check("umbra_volume_open_file", st, UMBRA_E_CORRUPT);

        // Array calls.
        let pool = c(dir.path().join("pool").to_str().unwrap());
        let mut array: *mut umbra_array = ptr::null_mut();
        assert_eq!(umbra_array_open(pool.as_ptr(), &mut array), UMBRA_OK);
        let mut second: *mut umbra_array = ptr::null_mut();
        let st = umbra_array_open(pool.as_ptr(), &mut second);
        seen.check("umbra_array_open", st, UMBRA_E_BUSY);
        let (prod, host1) = (c("prod"), c(HOST1));
        let st = umbra_lun_create(array, prod.as_ptr(), MIB, host1.as_ptr());
        assert_eq!(st, UMBRA_OK, "{}", last_error());
        let st = umbra_lun_create(array, prod.as_ptr(), MIB, host1.as_ptr());
        seen.check("umbra_lun_create", st, UMBRA_E_ALREADY_EXISTS);
        let st = umbra_lun_create(array, c"bad name!".as_ptr(), MIB, c"".as_ptr());
        seen.check("umbra_lun_create", st, UMBRA_E_INVALID_ARGUMENT);
        let host2 = c(HOST2);
        let st = umbra_lun_write(array, prod.as_ptr(), host2.as_ptr(), 0, buf.as_ptr(), 1);
        seen.check("umbra_lun_write", st, UMBRA_E_ACCESS_DENIED);
        let st = umbra_lun_read(
            array,
            prod.as_ptr(),
            c"bogus".as_ptr(),
            0,
            buf.as_mut_ptr(),
            1,
        );
        seen.check("umbra_lun_read", st, UMBRA_E_INVALID_INITIATOR);
        // Text that is not UTF-8, checked by the C layer itself.
        let latin1: &[u8] = b"iqn.1991-05.com.microsoft:h\xe9\0";
        let st = umbra_lun_read(
            array,
            prod.as_ptr(),
            latin1.as_ptr().cast::<c_char>(),
            0,
            buf.as_mut_ptr(),
            1,
        );
        seen.check("umbra_lun_read", st, UMBRA_E_INVALID_INITIATOR);
        let st = umbra_lun_set_mask(array, prod.as_ptr(), c"iqn.bad;".as_ptr());
        seen.check("umbra_lun_set_mask", st, UMBRA_E_INVALID_INITIATOR);
        let st = umbra_lun_read(
            array,
            prod.as_ptr(),
            host1.as_ptr(),
            MIB,
            buf.as_mut_ptr(),
            1,
        );
        seen.check("umbra_lun_read", st, UMBRA_E_OUT_OF_RANGE);
        let mut small = [0 as c_char; 2];
        let mut len = 0usize;
        let st = umbra_lun_list(array, small.as_mut_ptr(), small.len(), &mut len);
        seen.check("umbra_lun_list", st, UMBRA_E_BUFFER_TOO_SMALL);
        let st = umbra_group_get(array, c"web".as_ptr(), small.as_mut_ptr(), 2, &mut len);
        seen.check("umbra_group_get", st, UMBRA_E_NOT_FOUND);
        assert_eq!(
            umbra_group_set(array, c"web".as_ptr(), host1.as_ptr()),
            UMBRA_OK
        );
        let st = umbra_lun_set_mask(array, prod.as_ptr(), c"@web".as_ptr());
        assert_eq!(st, UMBRA_OK, "{}", last_error());
        let st = umbra_group_delete(array, c"web".as_ptr());
        seen.check("umbra_group_delete", st, UMBRA_E_BAD_STATE);
        assert_eq!(umbra_lun_set_online(array, prod.as_ptr(), false), UMBRA_OK);
        let st = umbra_lun_read(array, prod.as_ptr(), host1.as_ptr(), 0, buf.as_mut_ptr(), 1);
        seen.check("umbra_lun_read", st, UMBRA_E_BAD_STATE);
        let st = umbra_array_unsubscribe(array, 777);
        seen.check("umbra_array_unsubscribe", st, UMBRA_E_NOT_FOUND);
        umbra_array_free(array);
    }
    let want: BTreeSet<umbra_status> = [
        UMBRA_E_NULL_POINTER,
        UMBRA_E_INVALID_ARGUMENT,
        UMBRA_E_OUT_OF_RANGE,
        UMBRA_E_BUFFER_TOO_SMALL,
        UMBRA_E_NOT_FOUND,
        UMBRA_E_ALREADY_EXISTS,
        UMBRA_E_BAD_STATE,
        UMBRA_E_IN_PROGRESS,
        UMBRA_E_TIMEOUT,
        UMBRA_E_CANCELLED,
        UMBRA_E_BUSY,
        UMBRA_E_NO_SPACE,
        UMBRA_E_CORRUPT,
        UMBRA_E_INVALID_INITIATOR,
        UMBRA_E_ACCESS_DENIED,
    ]
    .into();
    assert_eq!(seen.0, want);
}

/// docs/abi.md: a host LUN number that the host already uses for another LUN is
/// `UMBRA_E_ALREADY_EXISTS` from `umbra_lun_set_host_number`; a LUN masked to every host (`"*"`)
/// whose default number a host already uses for another LUN is `UMBRA_E_INVALID_ARGUMENT`; a number
/// above 16383 is `UMBRA_E_INVALID_ARGUMENT`, a host without a grant `UMBRA_E_NOT_FOUND`.
#[test]
fn host_lun_number_clashes() {
    let mut seen = Seen::default();
    // SAFETY: live handles, NUL-terminated strings and writable out-parameters only.
    unsafe {
        let mut array: *mut umbra_array = ptr::null_mut();
        assert_eq!(umbra_array_open(ptr::null(), &mut array), UMBRA_OK);
        let (a, b, star, host1) = (c("a"), c("b"), c("c"), c(HOST1));
        for lun in [&a, &b] {
            let st = umbra_lun_create(array, lun.as_ptr(), MIB, host1.as_ptr());
            assert_eq!(st, UMBRA_OK, "{}", last_error());
        }
        let (mut acc, mut num_a, mut num_b) = (0u32, 0u32, 0u32);
        let h = host1.as_ptr();
        assert_eq!(
            umbra_lun_get_access(array, a.as_ptr(), h, &mut acc, &mut num_a),
            0
        );
        assert_eq!(
            umbra_lun_get_access(array, b.as_ptr(), h, &mut acc, &mut num_b),
            0
        );
        assert_ne!(num_a, num_b);
        let st = umbra_lun_set_host_number(array, b.as_ptr(), h, num_a);
        let msg = seen.check("umbra_lun_set_host_number", st, UMBRA_E_ALREADY_EXISTS);
        assert!(msg.contains(&format!("at number {num_a}")), "{msg}");
        let st = umbra_lun_set_host_number(array, b.as_ptr(), h, 16384);
        seen.check("umbra_lun_set_host_number", st, UMBRA_E_INVALID_ARGUMENT);
        let host2 = c(HOST2);
        let st = umbra_lun_set_host_number(array, b.as_ptr(), host2.as_ptr(), 7);
        seen.check("umbra_lun_set_host_number", st, UMBRA_E_NOT_FOUND);

        // LUN "c" gets the next default number; host1 takes that number for "a"; masking "c" to
        // every host would put two LUNs at one number for host1.
        let st = umbra_lun_create(array, star.as_ptr(), MIB, c"".as_ptr());
        assert_eq!(st, UMBRA_OK, "{}", last_error());
        let mut info = umbra_lun_info::default();
        assert_eq!(
            umbra_lun_get_info(array, star.as_ptr(), &mut info),
            UMBRA_OK
        );
        let st = umbra_lun_set_host_number(array, a.as_ptr(), h, info.lun_number);
        assert_eq!(st, UMBRA_OK, "{}", last_error());
        let st = umbra_lun_set_mask(array, star.as_ptr(), c"*".as_ptr());
        let msg = seen.check("umbra_lun_set_mask", st, UMBRA_E_INVALID_ARGUMENT);
        assert!(msg.contains("already sees another LUN"), "{msg}");
        umbra_array_free(array);
    }
}

/// Resync needs two LUNs of the same size; `umbra_lun_resync_async` says so itself, with nothing
/// started (before ABI 1.3 only `umbra_async_wait` did).
#[test]
fn resync_checks_the_sizes_before_it_starts() {
    let mut seen = Seen::default();
    // SAFETY: live handles, NUL-terminated strings and writable out-parameters only.
    unsafe {
        let mut array: *mut umbra_array = ptr::null_mut();
        assert_eq!(umbra_array_open(ptr::null(), &mut array), UMBRA_OK);
        let (small, big, twin) = (c("small"), c("big"), c("twin"));
        for (lun, size) in [(&small, MIB), (&big, 2 * MIB), (&twin, MIB)] {
            let st = umbra_lun_create(array, lun.as_ptr(), size, c"".as_ptr());
            assert_eq!(st, UMBRA_OK, "{}", last_error());
        }
        let sentinel = 0x5e5e as *mut umbra_async;
        let mut op = sentinel;
        let st = umbra_lun_resync_async(array, small.as_ptr(), big.as_ptr(), &mut op);
        let msg = seen.check("umbra_lun_resync_async", st, UMBRA_E_INVALID_ARGUMENT);
        assert!(msg.contains("same size"), "{msg}");
        assert_eq!(op, sentinel, "no operation was started");
        let st = umbra_lun_resync_async(array, small.as_ptr(), small.as_ptr(), &mut op);
        seen.check("umbra_lun_resync_async", st, UMBRA_E_INVALID_ARGUMENT);
        let st = umbra_lun_resync_async(array, small.as_ptr(), c"none".as_ptr(), &mut op);
        seen.check("umbra_lun_resync_async", st, UMBRA_E_NOT_FOUND);
        assert_eq!(op, sentinel);
        // LUNs of one size resync.
        let st = umbra_lun_resync_async(array, small.as_ptr(), twin.as_ptr(), &mut op);
        assert_eq!(st, UMBRA_OK, "{}", last_error());
        assert_eq!(umbra_async_wait(op), UMBRA_OK, "{}", last_error());
        umbra_async_free(op);
        umbra_array_free(array);
    }
}
