//! Notifications to C: a callback with a `void *ctx`, run on a notification thread owned by the
//! handle.
//!
//! Each volume or array handle owns a [`Notifier`]. Its thread starts with the first subscription
//! and delivers events in order, one at a time, to every callback subscribed when the event is
//! delivered. The events wait in one bounded queue (`cow_engine::events`): the library never
//! waits for a slow callback; when more than 1,024 events are waiting, the oldest are dropped and
//! the callbacks receive `UMBRA_EVENT_LAGGED` with the number missed. Volume events come straight
//! from the engine as they happen (a background revert's progress included); array events after
//! each change is persisted. Callbacks may call any umbra function (including ones that cause further events),
//! except freeing the handle they are subscribed to. `unsubscribe` returns only once no invocation
//! of any callback of that handle is running (unless it is called from a callback, where it takes
//! effect from the next event). Freeing the handle delivers the events already queued, then stops
//! and joins the thread.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;
use std::thread::JoinHandle;

use cow_engine::events::{Delivery, Hub, Subscription};
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
/// A key of a LUN's metadata was set or removed; the JSON has `"key"` and `"value"` (`null`:
/// removed). Subject: the LUN name. (ABI 1.5)
pub const UMBRA_EVENT_LUN_METADATA: u32 = 112;
/// A key of the pool's metadata was set or removed; the JSON has `"key"` and `"value"` (`null`:
/// removed). Subject: empty (no LUN). (ABI 1.5)
pub const UMBRA_EVENT_POOL_METADATA: u32 = 151;
/// The volume deleted a snapshot on its own to make room in a full diff area. Subject: the
/// snapshot id in decimal.
pub const UMBRA_EVENT_SNAPSHOT_DELETED: u32 = 201;
/// A revert copied back another 1,024 blocks, or finished (`"done"` equals `"total"` in the JSON).
/// Subject: the snapshot id in decimal. (ABI 1.3)
pub const UMBRA_EVENT_REVERT_PROGRESS: u32 = 202;
/// `umbra_snapshot_move_to_file_async` copied another 1,024 blocks, or finished (`"done"` equals
/// `"total"`; the snapshot is then gone from the volume). Subject: the snapshot id in decimal;
/// the JSON's `"event"` is `"split_progress"`, the engine's word. (ABI 1.3)
pub const UMBRA_EVENT_MOVE_PROGRESS: u32 = 203;
/// The callbacks did not keep up: this many events (the oldest waiting) were dropped. Subject:
/// the number in decimal; JSON `{"event":"lagged","missed":N}`. Rescan what you track. (ABI 1.3)
pub const UMBRA_EVENT_LAGGED: u32 = 900;

/// One event ready for C.
#[derive(Clone)]
pub(crate) struct EventMsg {
    pub(crate) kind: u32,
    pub(crate) subject: CString,
    pub(crate) json: CString,
}

impl EventMsg {
    /// An event whose JSON is `event` serialised (the core crates' event types serialise
    /// themselves; the C layer keeps no schema of its own).
    pub(crate) fn new(kind: u32, subject: &str, event: &impl serde::Serialize) -> Self {
        let json = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_string());
        // Neither string can hold a NUL: LUN names and numbers cannot, and serde_json escapes it.
        EventMsg {
            kind,
            subject: CString::new(subject.replace('\0', "")).unwrap_or_default(),
            json: CString::new(json).unwrap_or_default(),
        }
    }

    /// The engine's event as C sees it (`None` for a kind this ABI has no constant for yet).
    pub(crate) fn of_volume(event: &cow_engine::Event) -> Option<Self> {
        let kind = match event {
            cow_engine::Event::SnapshotDeleted { .. } => UMBRA_EVENT_SNAPSHOT_DELETED,
            cow_engine::Event::RevertProgress { .. } => UMBRA_EVENT_REVERT_PROGRESS,
            cow_engine::Event::SplitProgress { .. } => UMBRA_EVENT_MOVE_PROGRESS,
            _ => return None,
        };
        Some(EventMsg::new(kind, &event.snapshot().to_string(), event))
    }

    /// The array's notification as C sees it.
    pub(crate) fn of_array(n: &vds_core::Notification) -> Self {
        use vds_core::Notification as N;
        let kind = match n {
            N::LunArrive { .. } => UMBRA_EVENT_LUN_ARRIVE,
            N::LunDepart { .. } => UMBRA_EVENT_LUN_DEPART,
            N::LunModify { .. } => UMBRA_EVENT_LUN_MODIFY,
            N::MaskChanged { .. } => UMBRA_EVENT_MASK_CHANGED,
            N::LunMetadataChanged { .. } => UMBRA_EVENT_LUN_METADATA,
            N::PoolMetadataChanged { .. } => UMBRA_EVENT_POOL_METADATA,
        };
        EventMsg::new(kind, n.lun(), n)
    }

    fn lagged(missed: u64) -> Self {
        EventMsg::new(
            UMBRA_EVENT_LAGGED,
            &missed.to_string(),
            &serde_json::json!({"event": "lagged", "missed": missed}),
        )
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
    /// The queue the notification thread delivers from, once started.
    queue: Option<Arc<Subscription<EventMsg>>>,
    thread: Option<JoinHandle<()>>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    /// Feeds the queue: what the handle posts itself (array notifications).
    hub: Hub<EventMsg>,
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
        self.shared.dispatcher.lock().queue.is_some()
    }

    /// Queues `event` for delivery (dropped if no one ever subscribed or the handle is freed).
    pub(crate) fn post(&self, event: EventMsg) {
        self.shared.hub.publish(event);
    }

    /// Adds a subscription, starting the notification thread if needed; returns its id (never 0)
    /// and, when this call started the thread, its queue (to feed it events from elsewhere, e.g.
    /// the engine's hub).
    pub(crate) fn subscribe(
        &self,
        callback: unsafe extern "C" fn(*mut c_void, u32, *const c_char, *const c_char),
        ctx: *mut c_void,
    ) -> std::io::Result<(u64, Option<Arc<Subscription<EventMsg>>>)> {
        let started = {
            let mut d = self.shared.dispatcher.lock();
            if !d.closed && d.queue.is_none() {
                let queue = Arc::new(self.shared.hub.subscribe());
                let (shared, q) = (self.shared.clone(), queue.clone());
                let thread = std::thread::Builder::new()
                    .name("umbra-events".into())
                    .spawn(move || deliver_all(&shared, &q))?;
                d.thread = Some(thread);
                d.queue = Some(queue.clone());
                Some(queue)
            } else {
                None
            }
        };
        let mut subs = self.shared.subs.lock();
        subs.0 += 1;
        let id = subs.0;
        subs.1.push(Sub { id, callback, ctx });
        Ok((id, started))
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
        let thread = {
            let mut d = self.shared.dispatcher.lock();
            d.closed = true;
            // Closing the queue ends the thread's loop once what is queued is delivered.
            if let Some(q) = d.queue.take() {
                q.close();
            }
            d.thread.take()
        };
        if let Some(t) = thread {
            if !self.on_notification_thread() {
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

fn deliver_all(shared: &Arc<Shared>, queue: &Subscription<EventMsg>) {
    DELIVERING_FOR.with(|c| c.set(Arc::as_ptr(shared) as usize));
    while let Some(delivery) = queue.recv() {
        let event = match delivery {
            Delivery::Event(e) => e,
            Delivery::Lagged(n) => EventMsg::lagged(n),
        };
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
