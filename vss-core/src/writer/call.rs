//! One writer event on a thread of its own, with a deadline.
//!
//! A call runs on a fresh thread ([`Call::start`], [`Call::identify`]) or on a writer's
//! [`Lane`]: one thread kept for every call of that writer in a session, fed calls over a
//! channel, so the events of a set (a freeze and thaw of 64 writers above all) start no thread.
//! A lane whose call hung past its deadline is abandoned with the call (the session gives the
//! writer a fresh lane if it ever calls it again), so a hung writer never holds up another call.
//!
//! The coordinator starts the event on every writer at once ([`Call::start`]) and then waits for
//! each ([`Call::wait`]); since all of them share the event's deadline, waiting for them one after
//! the other never waits longer than the deadline. A writer that panics has failed the event
//! ([`FailureKind::NonRetryable`], the panic's message in the failure's); one that has not
//! answered by the deadline has timed out ([`FailureKind::Timeout`]). Its thread cannot be
//! stopped: it is left to finish, and what it returns then is reported as a late return through
//! the [`LateCall`] the timeout hands over, so the coordinator can keep a hung writer out of new
//! sets until its call returns and answer a call that returns after its set was aborted with
//! abort.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{dispatch, EventContext, FailureKind, Writer, WriterEvent, WriterFailure};
use crate::document::WriterMetadata;

type LateHook<T> = Box<dyn FnOnce(LateReturn<T>) + Send>;

/// What a thread runs for one call.
type Job = Box<dyn FnOnce() + Send>;

/// One thread for every call of one writer in a session (see the module documentation).
///
/// The thread starts with the first call and ends when the lane is dropped and its calls have
/// returned. Calls on a lane run one after the other: the coordinator sends a writer its next
/// event only once the last one answered, and abandons the lane ([`Lane::abandon`]) when a call
/// passes its deadline.
///
/// Dropping a lane whose calls have all answered waits for its thread to end (a moment: the
/// thread only finishes the last call's bookkeeping), so no writer thread outlives the session
/// that ran it — a C program that frees its session and exits leaves none behind.
#[derive(Default)]
pub(crate) struct Lane {
    /// The thread's feed; `None` until the first call (or after [`Lane::abandon`]).
    feed: Option<mpsc::Sender<Job>>,
    /// The thread and its token, joined when the lane is dropped; `None` when there is none, or
    /// it was abandoned to a hung call.
    thread: Option<(std::thread::JoinHandle<()>, u64)>,
}

/// Lane threads' tokens, so a lane knows whether it is dropped on its own thread.
static NEXT_LANE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// The token of the lane whose thread this is (0: none). Not `thread::current()`, which
    /// allocates a handle that a C program's own threads would keep until they exit.
    static THIS_LANE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Drop for Lane {
    fn drop(&mut self) {
        // Closing the feed ends the thread's loop once its call has returned.
        self.feed = None;
        if let Some((t, token)) = self.thread.take() {
            // A lane dropped on its own thread (by a late hook) cannot wait for itself.
            if THIS_LANE.with(std::cell::Cell::get) != token {
                let _ = t.join();
            }
        }
    }
}

/// The thread of an abandoned lane: it ends once its hung call returns (its feed is closed).
pub(crate) struct Straggler {
    thread: std::thread::JoinHandle<()>,
    token: u64,
}

impl Straggler {
    /// Waits for the thread to end; the caller knows its call has returned (so this waits only
    /// for the thread's last bookkeeping). Does nothing on the thread itself.
    pub(crate) fn join(self) {
        if THIS_LANE.with(std::cell::Cell::get) != self.token {
            let _ = self.thread.join();
        }
    }
}

impl Lane {
    /// Leaves the thread to finish the call it runs (a hung one) and end; the next call starts
    /// a new thread. The thread is handed back, to be joined once its call has returned.
    pub(crate) fn abandon(&mut self) -> Option<Straggler> {
        self.feed = None;
        self.thread
            .take()
            .map(|(thread, token)| Straggler { thread, token })
    }

    /// Runs `job` on the lane's thread, starting the thread if there is none; the thread's
    /// name names `writer`.
    fn run(&mut self, writer: &str, job: Job) -> std::io::Result<()> {
        if let Some(feed) = &self.feed {
            match feed.send(job) {
                Ok(()) => return Ok(()),
                // The thread is gone (it cannot end while the lane feeds it, but a new one is
                // the answer either way).
                Err(mpsc::SendError(job)) => return self.start(writer, job),
            }
        }
        self.start(writer, job)
    }

    fn start(&mut self, writer: &str, job: Job) -> std::io::Result<()> {
        let (feed, calls) = mpsc::channel::<Job>();
        let token = NEXT_LANE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let thread = std::thread::Builder::new()
            .name(format!("umbra-writer {writer}"))
            .spawn(move || {
                THIS_LANE.with(|t| t.set(token));
                for job in calls {
                    job();
                }
            })?;
        // The receiver lives on the thread just started: this send cannot fail.
        let _ = feed.send(job);
        self.feed = Some(feed);
        // A previous thread is gone (its feed was refused): nothing to wait for.
        self.thread = Some((thread, token));
        Ok(())
    }
}

struct Slot<T> {
    /// The writer's answer and when it came.
    answer: Option<(Result<T, WriterFailure>, Instant)>,
    /// Runs on the writer's thread when a late call returns.
    on_return: Option<LateHook<T>>,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    returned: Condvar,
    /// The thread of a call run on a fresh thread (no lane), joined by [`Call::wait`] once it
    /// answered (it then only returns), so no writer thread outlives a call that returned.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Facts about a call, kept by the call and by its late continuation.
#[derive(Clone)]
struct Info {
    writer: String,
    event: WriterEvent,
    deadline: Instant,
}

/// One writer event running on its own thread (see the module documentation).
pub struct Call<T = ()> {
    info: Info,
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("writer", &self.info.writer)
            .field("event", &self.info.event)
            .field("deadline", &self.info.deadline)
            .finish_non_exhaustive()
    }
}

impl Call<()> {
    /// Starts `event` on `writer` with `ctx` (whose deadline the call keeps). For
    /// [`WriterEvent::Identify`] the metadata is dropped: use [`Call::identify`] to keep it.
    pub fn start(writer: Arc<dyn Writer>, event: WriterEvent, ctx: EventContext) -> Call<()> {
        Call::spawn(None, writer, event, ctx, move |w, ctx| {
            dispatch(w, event, ctx)
        })
    }

    /// [`Call::start`] on the writer's `lane` rather than a fresh thread.
    pub(crate) fn start_on(
        lane: &mut Lane,
        writer: Arc<dyn Writer>,
        event: WriterEvent,
        ctx: EventContext,
    ) -> Call<()> {
        Call::spawn(Some(lane), writer, event, ctx, move |w, ctx| {
            dispatch(w, event, ctx)
        })
    }
}

impl Call<WriterMetadata> {
    /// Starts identify on `writer`, keeping the writer metadata document it answers.
    pub fn identify(writer: Arc<dyn Writer>, ctx: EventContext) -> Call<WriterMetadata> {
        Call::spawn(None, writer, WriterEvent::Identify, ctx, |w, ctx| {
            w.identify(ctx)
        })
    }

    /// [`Call::identify`] on the writer's `lane` rather than a fresh thread.
    pub(crate) fn identify_on(
        lane: &mut Lane,
        writer: Arc<dyn Writer>,
        ctx: EventContext,
    ) -> Call<WriterMetadata> {
        Call::spawn(Some(lane), writer, WriterEvent::Identify, ctx, |w, ctx| {
            w.identify(ctx)
        })
    }
}

impl<T: Send + 'static> Call<T> {
    /// Runs `run` on `lane`'s thread, or on a fresh one without a lane.
    fn spawn(
        lane: Option<&mut Lane>,
        writer: Arc<dyn Writer>,
        event: WriterEvent,
        ctx: EventContext,
        run: impl FnOnce(&dyn Writer, &EventContext) -> Result<T, WriterFailure> + Send + 'static,
    ) -> Call<T> {
        let info = Info {
            writer: writer.name().to_owned(),
            event,
            deadline: ctx.deadline(),
        };
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                answer: None,
                on_return: None,
            }),
            returned: Condvar::new(),
            thread: Mutex::new(None),
        });
        let s = shared.clone();
        let i = info.clone();
        let job: Job = Box::new(move || {
            let r = catch_unwind(AssertUnwindSafe(|| run(&*writer, &ctx))).unwrap_or_else(|p| {
                Err(WriterFailure::non_retryable(format!(
                    "writer {:?} panicked at {event}: {}",
                    i.writer,
                    vds_core::panic_text(&*p)
                )))
            });
            let at = Instant::now();
            let mut slot = s.slot.lock();
            if let Some(hook) = slot.on_return.take() {
                drop(slot);
                hook(LateReturn::new(&i, r, at));
                return;
            }
            slot.answer = Some((r, at));
            s.returned.notify_all();
        });
        let spawned = match lane {
            Some(lane) => lane.run(&info.writer, job),
            None => std::thread::Builder::new()
                .name(format!("umbra-writer {event}"))
                .spawn(job)
                .map(|t| *shared.thread.lock() = Some(t)),
        };
        if let Err(e) = spawned {
            // The system refused a thread: the writer could not be asked, which is a resource
            // failure of this call (the next set may have threads again).
            shared.slot.lock().answer = Some((
                Err(WriterFailure::new(
                    FailureKind::OutOfResources,
                    format!(
                        "cannot start a thread to send {event} to writer {:?}: {e}",
                        info.writer
                    ),
                )),
                Instant::now(),
            ));
        }
        Call { info, shared }
    }
}

impl<T> Call<T> {
    /// The writer's name.
    pub fn writer(&self) -> &str {
        &self.info.writer
    }

    /// The event.
    pub fn event(&self) -> WriterEvent {
        self.info.event
    }

    /// The event's deadline.
    pub fn deadline(&self) -> Instant {
        self.info.deadline
    }

    /// Waits until the writer answers or the deadline passes, whichever is first. An answer that
    /// came after the deadline (while nobody was waiting) is a timeout too: what counts is when
    /// the writer answered, not when this is called.
    pub fn wait(self) -> CallOutcome<T> {
        let mut slot = self.shared.slot.lock();
        while slot.answer.is_none() {
            if self
                .shared
                .returned
                .wait_until(&mut slot, self.info.deadline)
                .timed_out()
            {
                break;
            }
        }
        match slot.answer.take() {
            Some((r, at)) if at <= self.info.deadline => {
                drop(slot);
                // Answered: the thread only returns now.
                if let Some(t) = self.shared.thread.lock().take() {
                    let _ = t.join();
                }
                CallOutcome::Returned(r)
            }
            answer => {
                slot.answer = answer;
                drop(slot);
                let failure = WriterFailure::new(
                    FailureKind::Timeout,
                    format!(
                        "writer {:?} did not answer {} within its deadline",
                        self.info.writer, self.info.event
                    ),
                );
                CallOutcome::TimedOut {
                    failure,
                    late: LateCall {
                        info: self.info,
                        shared: self.shared,
                    },
                }
            }
        }
    }
}

/// How a [`Call`] ended.
#[derive(Debug)]
pub enum CallOutcome<T = ()> {
    /// The writer answered by the deadline (a panic is a non-retryable failure).
    Returned(Result<T, WriterFailure>),
    /// The deadline passed first.
    TimedOut {
        /// The [`FailureKind::Timeout`] failure naming the writer and the event.
        failure: WriterFailure,
        /// The call still running, to learn when and how it returns.
        late: LateCall<T>,
    },
}

impl<T> CallOutcome<T> {
    /// The event's result (a timeout is a [`FailureKind::Timeout`] failure) and the late call,
    /// if it timed out.
    pub fn into_parts(self) -> (Result<T, WriterFailure>, Option<LateCall<T>>) {
        match self {
            CallOutcome::Returned(r) => (r, None),
            CallOutcome::TimedOut { failure, late } => (Err(failure), Some(late)),
        }
    }

    /// The event's result; a timeout is a [`FailureKind::Timeout`] failure and what the writer
    /// returns later is ignored.
    pub fn into_result(self) -> Result<T, WriterFailure> {
        self.into_parts().0
    }
}

/// A call that timed out and may still be running.
pub struct LateCall<T = ()> {
    info: Info,
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for LateCall<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateCall")
            .field("writer", &self.info.writer)
            .field("event", &self.info.event)
            .field("returned", &self.has_returned())
            .finish_non_exhaustive()
    }
}

impl<T> LateCall<T> {
    /// The writer's name.
    pub fn writer(&self) -> &str {
        &self.info.writer
    }

    /// The event.
    pub fn event(&self) -> WriterEvent {
        self.info.event
    }

    /// True once the writer's method has returned.
    pub fn has_returned(&self) -> bool {
        self.shared.slot.lock().answer.is_some()
    }

    /// Waits, at most `timeout` (`None`: for as long as it takes), for the writer to return.
    pub fn wait(self, timeout: Option<Duration>) -> Result<LateReturn<T>, LateCall<T>> {
        let until = timeout.map(|t| Instant::now() + t);
        let mut slot = self.shared.slot.lock();
        while slot.answer.is_none() {
            match until {
                None => self.shared.returned.wait(&mut slot),
                Some(u) => {
                    if self.shared.returned.wait_until(&mut slot, u).timed_out() {
                        break;
                    }
                }
            }
        }
        match slot.answer.take() {
            Some((r, at)) => Ok(LateReturn::new(&self.info, r, at)),
            None => {
                drop(slot);
                Err(self)
            }
        }
    }

    /// Runs `hook` with the late return when the writer returns: on the writer's thread, or at
    /// once on this one if it has returned already.
    pub fn on_return(self, hook: impl FnOnce(LateReturn<T>) + Send + 'static) {
        let mut slot = self.shared.slot.lock();
        match slot.answer.take() {
            Some((r, at)) => {
                drop(slot);
                hook(LateReturn::new(&self.info, r, at));
            }
            None => slot.on_return = Some(Box::new(hook)),
        }
    }
}

/// What a writer returned after its deadline.
#[derive(Debug)]
pub struct LateReturn<T = ()> {
    writer: String,
    event: WriterEvent,
    result: Result<T, WriterFailure>,
    late_by: Duration,
}

impl<T> LateReturn<T> {
    fn new(info: &Info, result: Result<T, WriterFailure>, at: Instant) -> Self {
        LateReturn {
            writer: info.writer.clone(),
            event: info.event,
            result,
            late_by: at.saturating_duration_since(info.deadline),
        }
    }

    /// The writer's name.
    pub fn writer(&self) -> &str {
        &self.writer
    }

    /// The event it answered.
    pub fn event(&self) -> WriterEvent {
        self.event
    }

    /// How long after the deadline it answered.
    pub fn late_by(&self) -> Duration {
        self.late_by
    }

    /// What it answered (too late to count).
    pub fn result(&self) -> &Result<T, WriterFailure> {
        &self.result
    }

    /// What it answered, taken.
    pub fn into_result(self) -> Result<T, WriterFailure> {
        self.result
    }
}
