//! The C ABI called from Rust: behaviours that are awkward to pin down from C — callbacks that call
//! back into the library, unsubscribing from a callback, cancelling and resuming long operations,
//! and the last error being per thread.

use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use umbra::*;

mod support;
use support::{c, last_error, ok};

const MIB: u64 = 1 << 20;

struct ArrayPtr(*mut umbra_array);
// SAFETY: array handles may be used from any thread (docs/abi.md); the tests free them last.
unsafe impl Send for ArrayPtr {}
// SAFETY: as above, concurrent use is allowed.
unsafe impl Sync for ArrayPtr {}

struct Reentrant {
    array: ArrayPtr,
    events: Mutex<Vec<(u32, String)>>,
    sub: Mutex<u64>,
}

/// Records the event; on the first LUN arrival it changes the array from inside the callback
/// (creating more events) and unsubscribes itself after the third event.
unsafe extern "C" fn reentrant_cb(
    ctx: *mut c_void,
    kind: u32,
    subject: *const c_char,
    _json: *const c_char,
) {
    // SAFETY: ctx is the &Reentrant given to subscribe, alive until the array is freed; subject is
    // a valid C string during the call.
    let (r, subject) = unsafe {
        (
            &*(ctx as *const Reentrant),
            CStr::from_ptr(subject).to_string_lossy().into_owned(),
        )
    };
    let n = {
        let mut ev = r.events.lock().unwrap();
        ev.push((kind, subject.clone()));
        ev.len()
    };
    if kind == UMBRA_EVENT_LUN_ARRIVE && subject == "first" {
        // SAFETY: the array handle is live; strings are valid C strings.
        let st = unsafe { umbra_lun_set_mask(r.array.0, c("first").as_ptr(), c("*").as_ptr()) };
        assert_eq!(st, UMBRA_OK);
    }
    if n == 3 {
        let id = *r.sub.lock().unwrap();
        // SAFETY: the array handle is live.
        let st = unsafe { umbra_array_unsubscribe(r.array.0, id) };
        assert_eq!(st, UMBRA_OK);
    }
}

#[test]
fn callbacks_may_call_back_into_the_array_and_unsubscribe_themselves() {
    let mut a = ptr::null_mut();
    // SAFETY: valid out-pointer.
    ok(unsafe { umbra_array_open(ptr::null(), &mut a) });
    let r = Box::new(Reentrant {
        array: ArrayPtr(a),
        events: Mutex::new(Vec::new()),
        sub: Mutex::new(0),
    });
    let mut id = 0;
    // SAFETY: r outlives the subscription (it is dropped after the array is freed).
    ok(unsafe {
        umbra_array_subscribe(
            a,
            Some(reentrant_cb),
            &*r as *const Reentrant as *mut c_void,
            &mut id,
        )
    });
    *r.sub.lock().unwrap() = id;
    // SAFETY: live handle, valid strings.
    unsafe {
        ok(umbra_lun_create(
            a,
            c("first").as_ptr(),
            MIB,
            c("").as_ptr(),
        ));
        // Let the callback's own change (a mask change: event 2) arrive, then more events.
        for _ in 0..200 {
            if r.events.lock().unwrap().len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        ok(umbra_lun_create(
            a,
            c("second").as_ptr(),
            MIB,
            c("").as_ptr(),
        ));
        ok(umbra_lun_create(
            a,
            c("third").as_ptr(),
            MIB,
            c("").as_ptr(),
        ));
        umbra_array_free(a);
    }
    let ev = r.events.lock().unwrap().clone();
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(ev[0], (UMBRA_EVENT_LUN_ARRIVE, "first".to_string()));
    assert_eq!(ev[1], (UMBRA_EVENT_MASK_CHANGED, "first".to_string()));
    assert_eq!(ev[2], (UMBRA_EVENT_LUN_ARRIVE, "second".to_string()));
}

static SLOW_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn slow_cb(_ctx: *mut c_void, _k: u32, _s: *const c_char, _j: *const c_char) {
    std::thread::sleep(Duration::from_millis(100));
    SLOW_CALLS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn unsubscribe_waits_for_a_running_callback() {
    let mut a = ptr::null_mut();
    // SAFETY: valid pointers and strings throughout; the handle is freed last.
    unsafe {
        ok(umbra_array_open(ptr::null(), &mut a));
        let mut id = 0;
        ok(umbra_array_subscribe(
            a,
            Some(slow_cb),
            ptr::null_mut(),
            &mut id,
        ));
        ok(umbra_lun_create(a, c("lun").as_ptr(), MIB, c("").as_ptr()));
        std::thread::sleep(Duration::from_millis(20)); // the callback is (most likely) running
        ok(umbra_array_unsubscribe(a, id));
        let after = SLOW_CALLS.load(Ordering::SeqCst);
        // Either it had not started (and never will) or it has finished.
        ok(umbra_lun_create(a, c("lun2").as_ptr(), MIB, c("").as_ptr()));
        umbra_array_free(a);
        assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), after);
        assert!(after <= 1);
    }
}

#[test]
fn a_cancelled_revert_reports_cancelled_and_resumes() {
    let mut vol = ptr::null_mut();
    let size = 32 * MIB;
    // SAFETY: valid pointers throughout; handles freed last.
    unsafe {
        ok(umbra_volume_create_mem(size, 4096, &mut vol));
        let mut snap = 0;
        ok(umbra_snapshot_create(vol, &mut snap));
        let block = vec![0xABu8; 1 << 20];
        for off in (0..size).step_by(1 << 20) {
            ok(umbra_volume_write(vol, off, block.as_ptr(), block.len()));
        }
        // Cancelling right away stops the copy early almost always; try a few times to see it.
        let mut cancelled = false;
        for _ in 0..5 {
            let mut op = ptr::null_mut();
            ok(umbra_volume_revert_async(vol, snap, &mut op));
            ok(umbra_async_cancel(op));
            let st = umbra_async_wait(op);
            umbra_async_free(op);
            if st == UMBRA_E_CANCELLED {
                assert!(last_error().contains("cancel"), "{}", last_error());
                cancelled = true;
                break;
            }
            assert_eq!(st, UMBRA_OK, "{}", last_error());
            // It finished before the cancel: make it differ again.
            for off in (0..size).step_by(1 << 20) {
                ok(umbra_volume_write(vol, off, block.as_ptr(), block.len()));
            }
        }
        assert!(
            cancelled,
            "a cancel right after the start was never honoured"
        );
        // Resume: a new revert completes.
        let mut op = ptr::null_mut();
        ok(umbra_volume_revert_async(vol, snap, &mut op));
        let mut last = 0;
        loop {
            let mut pct = 0;
            ok(umbra_async_get_percent(op, &mut pct));
            assert!(
                pct >= last || pct == 100,
                "percent went back: {last} -> {pct}"
            );
            last = pct;
            match umbra_async_wait_timeout(op, 5) {
                UMBRA_OK => break,
                UMBRA_E_IN_PROGRESS => continue,
                other => panic!("{other}: {}", last_error()),
            }
        }
        let mut pct = 0;
        ok(umbra_async_get_percent(op, &mut pct));
        assert_eq!(pct, 100);
        umbra_async_free(op);
        let mut b = [0xFFu8; 16];
        ok(umbra_volume_read(vol, size - 16, b.as_mut_ptr(), 16));
        assert_eq!(b, [0u8; 16]);
        umbra_volume_free(vol);
    }
}

#[test]
fn last_error_is_per_thread() {
    // SAFETY: the out-pointer is NULL on purpose: the call must fail without writing.
    let st = unsafe { umbra_volume_create_mem(MIB, 4096, ptr::null_mut()) };
    assert_eq!(st, UMBRA_E_NULL_POINTER);
    let here = last_error();
    assert!(
        here.contains("umbra_volume_create_mem") && here.contains("`out`"),
        "{here}"
    );
    let there = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(there, "");
    assert_eq!(last_error(), here);
}

#[test]
fn a_volume_handle_is_shared_by_threads() {
    struct VolPtr(*mut umbra_volume);
    // SAFETY: volume handles may be used from many threads at once (docs/abi.md).
    unsafe impl Send for VolPtr {}
    // SAFETY: as above.
    unsafe impl Sync for VolPtr {}
    let mut v = ptr::null_mut();
    // SAFETY: valid out-pointer.
    ok(unsafe { umbra_volume_create_mem(4 * MIB, 4096, &mut v) });
    let vol = VolPtr(v);
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let vol = &vol;
            s.spawn(move || {
                let data = [t; 4096];
                for i in 0..64u64 {
                    let off = (u64::from(t) * 64 + i) * 4096;
                    // SAFETY: live handle, valid buffer.
                    ok(unsafe { umbra_volume_write(vol.0, off, data.as_ptr(), data.len()) });
                    if i % 16 == 0 {
                        let mut id = 0;
                        // SAFETY: live handle, valid out-pointer.
                        ok(unsafe { umbra_snapshot_create(vol.0, &mut id) });
                    }
                }
            });
        }
    });
    let mut count = 0;
    // SAFETY: live handle; (NULL, 0) asks the count.
    let st = unsafe { umbra_snapshot_list(vol.0, ptr::null_mut(), 0, &mut count) };
    assert_eq!(st, UMBRA_E_BUFFER_TOO_SMALL);
    assert_eq!(count, 16);
    // SAFETY: the last use of the handle.
    unsafe { umbra_volume_free(vol.0) };
}

/// Why: a size query `(NULL, 0)` is how every string and list output is sized; it used to record
/// "buffer too small" as the last error, so the message of the failure a caller was about to
/// read was gone.
#[test]
fn a_size_query_leaves_the_last_error_alone() {
    let mut a = ptr::null_mut();
    // SAFETY: NULL pool (in memory), valid out-pointer.
    ok(unsafe { umbra_array_open(ptr::null(), &mut a) });
    let name = c("prod");
    // SAFETY: live handle, NUL-terminated strings.
    ok(unsafe { umbra_lun_create(a, name.as_ptr(), 4 * MIB, c("*").as_ptr()) });
    // A real failure first: an unknown LUN.
    let mut len = 0usize;
    // SAFETY: live handle; valid pointers.
    let st = unsafe { umbra_lun_get_mask(a, c("nope").as_ptr(), ptr::null_mut(), 0, &mut len) };
    assert_eq!(st, UMBRA_E_NOT_FOUND);
    let failure = last_error();
    assert!(failure.contains("nope"), "{failure}");
    // The size query answers BUFFER_TOO_SMALL with the length, and the message stays.
    // SAFETY: live handle; (NULL, 0) is a size query.
    let st = unsafe { umbra_lun_get_mask(a, name.as_ptr(), ptr::null_mut(), 0, &mut len) };
    assert_eq!(st, UMBRA_E_BUFFER_TOO_SMALL);
    assert_eq!(len, 1);
    assert_eq!(last_error(), failure);
    // A buffer that is really too small is a failure and says so.
    let mut one = [0 as c_char; 1];
    // SAFETY: live handle; `one` has 1 writable byte.
    let st = unsafe { umbra_lun_get_mask(a, name.as_ptr(), one.as_mut_ptr(), 1, &mut len) };
    assert_eq!(st, UMBRA_E_BUFFER_TOO_SMALL);
    assert!(last_error().contains("cannot hold"), "{}", last_error());
    // A name list: the same.
    // SAFETY: live handle; valid pointers.
    let st = unsafe { umbra_lun_get_mask(a, c("nope").as_ptr(), ptr::null_mut(), 0, &mut len) };
    assert_eq!(st, UMBRA_E_NOT_FOUND);
    let mut count = 0usize;
    // SAFETY: live handle; (NULL, 0) asks the count.
    let st = unsafe { umbra_lun_list(a, ptr::null_mut(), 0, &mut count) };
    assert_eq!(st, UMBRA_E_BUFFER_TOO_SMALL);
    assert_eq!(last_error(), failure);
    // SAFETY: the last use of the handle.
    unsafe { umbra_array_free(a) };
}

struct Recorded {
    events: Mutex<Vec<(u32, String, String)>>,
    /// While held, the callback waits: the subscriber "does not keep up".
    gate: Mutex<()>,
}

unsafe extern "C" fn record_cb(
    ctx: *mut c_void,
    kind: u32,
    subject: *const c_char,
    json: *const c_char,
) {
    // SAFETY: ctx is the &Recorded given to subscribe, alive until the handle is freed; both
    // strings are valid C strings during the call.
    let (r, subject, json) = unsafe {
        (
            &*(ctx as *const Recorded),
            CStr::from_ptr(subject).to_string_lossy().into_owned(),
            CStr::from_ptr(json).to_string_lossy().into_owned(),
        )
    };
    drop(r.gate.lock().unwrap());
    r.events.lock().unwrap().push((kind, subject, json));
}

fn recorded() -> Box<Recorded> {
    Box::new(Recorded {
        events: Mutex::new(Vec::new()),
        gate: Mutex::new(()),
    })
}

/// Why: volume events used to reach C only when the C layer pumped them after its next call on
/// the volume, so a background revert's events waited for the next write. Now they come as they
/// happen: here nothing is called on the volume after the revert starts.
#[test]
fn a_background_revert_reports_progress_without_further_calls() {
    let r = recorded();
    let mut vol = ptr::null_mut();
    let size = 16 * MIB; // 4,096 blocks: progress at 1,024, 2,048, 3,072 and the end
                         // SAFETY: valid pointers throughout; the handle is freed last, before `r`.
    unsafe {
        ok(umbra_volume_create_mem(size, 4096, &mut vol));
        let mut s = 0;
        ok(umbra_snapshot_create(vol, &mut s));
        let data = vec![9u8; size as usize];
        ok(umbra_volume_write(vol, 0, data.as_ptr(), data.len()));
        let mut id = 0;
        ok(umbra_volume_subscribe(
            vol,
            Some(record_cb),
            &*r as *const Recorded as *mut c_void,
            &mut id,
        ));
        let mut op = ptr::null_mut();
        ok(umbra_volume_revert_async(vol, s, &mut op));
        ok(umbra_async_wait(op));
        umbra_async_free(op);
        for _ in 0..400 {
            if r.events.lock().unwrap().len() >= 4 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let ev = r.events.lock().unwrap().clone();
        let expect: Vec<_> = [1024u64, 2048, 3072, 4096]
            .iter()
            .map(|done| {
                (
                    UMBRA_EVENT_REVERT_PROGRESS,
                    s.to_string(),
                    format!(
                        r#"{{"event":"revert_progress","snapshot":{s},"done":{done},"total":4096}}"#
                    ),
                )
            })
            .collect();
        assert_eq!(ev, expect);
        umbra_volume_free(vol);
    }
}

/// Why: the queue between the library and a callback used to be unbounded, so a callback that
/// stopped returning made the process grow without limit. It holds 1,024 events; past that the
/// oldest are dropped and the callback hears how many it missed.
#[test]
fn a_callback_that_does_not_keep_up_hears_how_many_it_missed() {
    let r = recorded();
    let mut a = ptr::null_mut();
    // SAFETY: valid pointers and strings; the handle is freed last, before `r`.
    unsafe {
        ok(umbra_array_open(ptr::null(), &mut a));
        let mut id = 0;
        ok(umbra_array_subscribe(
            a,
            Some(record_cb),
            &*r as *const Recorded as *mut c_void,
            &mut id,
        ));
        let held = r.gate.lock().unwrap();
        // Each LUN created with a mask raises two events (arrive, mask changed): 1,400 events,
        // at most one of them in the callback (blocked) and 1,024 queued.
        for i in 0..700 {
            ok(umbra_lun_create(
                a,
                c(&format!("l{i}")).as_ptr(),
                MIB,
                c("*").as_ptr(),
            ));
        }
        drop(held);
        umbra_array_free(a);
    }
    let ev = r.events.lock().unwrap().clone();
    let lagged: Vec<_> = ev.iter().filter(|e| e.0 == UMBRA_EVENT_LAGGED).collect();
    assert_eq!(lagged.len(), 1, "{:?}", &ev[..3.min(ev.len())]);
    let missed: usize = lagged[0].1.parse().unwrap();
    assert_eq!(
        lagged[0].2,
        format!(r#"{{"event":"lagged","missed":{missed}}}"#)
    );
    // Everything is accounted for: delivered + missed = raised.
    assert_eq!(ev.len() - 1 + missed, 1400);
    assert!(
        ev.len() - 1 <= 1025,
        "at most the queue plus the event in the callback"
    );
    // What was kept is the newest, in order.
    assert_eq!(ev.last().unwrap().1, "l699");
}
