//! Notifications to C: a callback with a `void *ctx`, run on a notification thread owned by the
//! handle.
//!
//! Each volume or array handle owns a [`Notifier`]. Its thread starts with the first subscription
//! and delivers events in order, one at a time, to every callback subscribed when the event is
//! delivered. Callbacks may call any umbra function (including ones that cause further events),
//! except freeing the handle they are subscribed to. `unsubscribe` returns only once no invocation
//! of any callback of that handle is running (unless it is called from a callback, where it takes
//! effect from the next event). Freeing the handle delivers the events already queued, then stops
//! and joins the thread.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

/// An event callback: `ctx` as given to the subscribe call, `kind` one of the `UMBRA_EVENT_*`
/// constants, `subject` the LUN name (array events) or the snapshot id in decimal (volume events),
/// and `json` the whole event as a JSON object (for example
/// `{"event":"mask_changed","lun":"data","gained":["iqn.1991-05.com.microsoft:host1"],...}`).
/// Both strings are valid only during the call. It runs on the handle's notification thread.
pub type umbra_event_callback = Option<
    unsafe extern "C" fn(ctx: *mut c_void, kind: u32, subject: *const c_char, json: *const c_char),
>;

/// A LUN was created (VDS `VDS_NF_LUN_ARRIVE`). Subject: the LUN name.
pub const UMBRA_EVENT_LUN_ARRIVE: u32 = 108;
/// A LUN was deleted (`VDS_NF_LUN_DEPART`). Subject: the LUN name.
pub const UMBRA_EVENT_LUN_DEPART: u32 = 109;
/// A LUN's properties changed: size, status, split from its source (`VDS_NF_LUN_MODIFY`).
/// Subject: the LUN name.
pub const UMBRA_EVENT_LUN_MODIFY: u32 = 110;
/// Who sees a LUN changed; hosts in `gained`, `lost` and `modified` (access or LUN number) should
/// rescan. Subject: the LUN name.
pub const UMBRA_EVENT_MASK_CHANGED: u32 = 111;
/// The volume deleted a snapshot on its own to make room in a full diff area. Subject: the
/// snapshot id in decimal.
pub const UMBRA_EVENT_SNAPSHOT_DELETED: u32 = 201;

/// One event ready for C.
pub(crate) struct EventMsg {
    pub(crate) kind: u32,
    pub(crate) subject: CString,
    pub(crate) json: CString,
}

impl EventMsg {
    pub(crate) fn new(kind: u32, subject: &str, json: serde_json::Value) -> Self {
        // Neither string can hold a NUL: LUN names and numbers cannot, and serde_json escapes it.
        EventMsg {
            kind,
            subject: CString::new(subject.replace('\0', "")).unwrap_or_default(),
            json: CString::new(json.to_string()).unwrap_or_default(),
        }
    }
}

#[derive(Clone, Copy)]
struct Sub {
    id: u64,
    callback: unsafe extern "C" fn(*mut c_void, u32, *const c_char, *const c_char),
    ctx: *mut c_void,
}

// SAFETY: `ctx` is an opaque pointer the C caller hands us to pass back on the notification
// thread; the subscribe functions document that it must be usable from that thread. We never
// dereference it.
unsafe impl Send for Sub {}

#[derive(Default)]
struct Dispatcher {
    tx: Option<Sender<EventMsg>>,
    thread: Option<JoinHandle<()>>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    subs: Mutex<(u64, Vec<Sub>)>,
    dispatcher: Mutex<Dispatcher>,
    /// Held while one event is delivered, so `unsubscribe` can wait out a running callback.
    delivering: Mutex<()>,
}

/// The notification machinery of one handle.
#[derive(Clone, Default)]
pub(crate) struct Notifier {
    shared: Arc<Shared>,
}

impl Notifier {
    /// True once someone subscribed (until the handle is freed): events are worth building.
    pub(crate) fn is_active(&self) -> bool {
        self.shared.dispatcher.lock().tx.is_some()
    }

    /// Queues `event` for delivery (dropped if no one ever subscribed or the handle is freed).
    pub(crate) fn post(&self, event: EventMsg) {
        if let Some(tx) = &self.shared.dispatcher.lock().tx {
            let _ = tx.send(event);
        }
    }

    /// Adds a subscription, starting the notification thread if needed; returns its id (never 0).
    pub(crate) fn subscribe(
        &self,
        callback: unsafe extern "C" fn(*mut c_void, u32, *const c_char, *const c_char),
        ctx: *mut c_void,
    ) -> std::io::Result<u64> {
        {
            let mut d = self.shared.dispatcher.lock();
            if !d.closed && d.tx.is_none() {
                let (tx, rx) = channel();
                let shared = self.shared.clone();
                let thread = std::thread::Builder::new()
                    .name("umbra-events".into())
                    .spawn(move || deliver_all(&shared, rx))?;
                d.thread = Some(thread);
                d.tx = Some(tx);
            }
        }
        let mut subs = self.shared.subs.lock();
        subs.0 += 1;
        let id = subs.0;
        subs.1.push(Sub { id, callback, ctx });
        Ok(id)
    }

    /// Removes subscription `id`; false if there is none. Waits out a delivery in progress unless
    /// called from the notification thread itself.
    pub(crate) fn unsubscribe(&self, id: u64) -> bool {
        let found = {
            let mut subs = self.shared.subs.lock();
            let before = subs.1.len();
            subs.1.retain(|s| s.id != id);
            subs.1.len() != before
        };
        if found && !self.on_notification_thread() {
            drop(self.shared.delivering.lock());
        }
        found
    }

    fn on_notification_thread(&self) -> bool {
        // Not `std::thread::current()`: on a thread the library did not start (a C program's
        // main thread) it allocates a handle that is never freed, which valgrind reports.
        DELIVERING_FOR.with(Cell::get) == Arc::as_ptr(&self.shared) as usize
    }

    /// Delivers what is queued, then stops and joins the thread. Idempotent.
    pub(crate) fn shutdown(&self) {
        let (thread, on_it) = {
            let mut d = self.shared.dispatcher.lock();
            d.closed = true;
            // Dropping the sender ends the thread's loop once the queue is empty.
            d.tx = None;
            (d.thread.take(), self.on_notification_thread())
        };
        if let Some(t) = thread {
            if !on_it {
                let _ = t.join();
            }
            // Freed from its own callback (documented as not allowed): the thread cannot join
            // itself; it finishes on its own.
        }
    }
}

thread_local! {
    /// On a notification thread: the address of the `Shared` it delivers for; 0 elsewhere.
    static DELIVERING_FOR: Cell<usize> = const { Cell::new(0) };
}

fn deliver_all(shared: &Arc<Shared>, rx: Receiver<EventMsg>) {
    DELIVERING_FOR.with(|c| c.set(Arc::as_ptr(shared) as usize));
    for event in rx {
        let _guard = shared.delivering.lock();
        let subs: Vec<Sub> = shared.subs.lock().1.clone();
        for s in subs {
            // SAFETY: `callback` is a non-NULL C function pointer given to a subscribe call, with
            // the signature of `umbra_event_callback`; `ctx` is the caller's value, passed back
            // unchanged; both strings are NUL-terminated and outlive the call. A C function cannot
            // unwind into Rust (doing so is undefined behaviour the header documents).
            unsafe {
                (s.callback)(
                    s.ctx,
                    event.kind,
                    event.subject.as_ptr(),
                    event.json.as_ptr(),
                )
            };
        }
    }
}
