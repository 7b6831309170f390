//! The calling helper: writers run in parallel, a panic is a failed writer, a hang past the
//! deadline a timeout whose late return is reported.

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use vss_core::{
    Call, CallOutcome, EventContext, FailureKind, Writer, WriterEvent, WriterFailure,
    WriterMetadata,
};

/// A writer whose freeze does what the test says.
struct Scripted {
    name: String,
    freeze: Box<dyn Fn() -> Result<(), WriterFailure> + Send + Sync>,
}

impl Writer for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn identify(&self, _: &EventContext) -> Result<WriterMetadata, WriterFailure> {
        let mut m = WriterMetadata::new(self.name.clone());
        m.components
            .push(vss_core::document::Component::new("", "data", ["lun0"]));
        Ok(m)
    }
    fn freeze(&self, _: &EventContext) -> Result<(), WriterFailure> {
        (self.freeze)()
    }
    fn thaw(&self, _: &EventContext) -> Result<(), WriterFailure> {
        Ok(())
    }
    fn abort(&self, _: &EventContext) -> Result<(), WriterFailure> {
        Ok(())
    }
}

fn writer(
    name: &str,
    freeze: impl Fn() -> Result<(), WriterFailure> + Send + Sync + 'static,
) -> Arc<dyn Writer> {
    Arc::new(Scripted {
        name: name.into(),
        freeze: Box::new(freeze),
    })
}

fn ctx(window: Duration) -> EventContext {
    EventContext::new(Instant::now() + window).with_set(uuid::Uuid::new_v4(), ["lun0"])
}

/// A gate the writer blocks on until the test opens it.
fn gate() -> (mpsc::Sender<()>, Arc<Mutex<mpsc::Receiver<()>>>) {
    let (tx, rx) = mpsc::channel();
    (tx, Arc::new(Mutex::new(rx)))
}

#[test]
fn a_panicking_writer_is_a_failed_writer() {
    let w = writer("boom", || panic!("the log is gone"));
    let f = Call::start(w, WriterEvent::Freeze, ctx(Duration::from_secs(30)))
        .wait()
        .into_result()
        .unwrap_err();
    assert_eq!(f.kind(), FailureKind::NonRetryable);
    assert!(f.message().contains("\"boom\" panicked at freeze"), "{f}");
    assert!(f.message().contains("the log is gone"), "{f}");
}

#[test]
fn a_hang_past_the_deadline_is_a_timeout_and_its_late_return_is_reported() {
    let (open, shut) = gate();
    let w = writer("slow", move || {
        shut.lock().unwrap().recv().unwrap();
        Err(WriterFailure::retryable("late and failing"))
    });
    let call = Call::start(w, WriterEvent::Freeze, ctx(Duration::from_millis(300)));
    let deadline = call.deadline();
    let CallOutcome::TimedOut { failure, late } = call.wait() else {
        panic!("the writer cannot have answered: it waits for the gate");
    };
    assert!(Instant::now() >= deadline);
    assert_eq!(failure.kind(), FailureKind::Timeout);
    assert!(
        failure.message().contains("\"slow\" did not answer freeze"),
        "{failure}"
    );
    assert!(!late.has_returned());
    let late = late.wait(Some(Duration::ZERO)).unwrap_err();
    open.send(()).unwrap();
    let back = late.wait(None).unwrap();
    assert_eq!(back.writer(), "slow");
    assert_eq!(back.event(), WriterEvent::Freeze);
    assert!(back.late_by() > Duration::ZERO);
    assert_eq!(
        back.result().as_ref().unwrap_err().kind(),
        FailureKind::Retryable
    );
}

#[test]
fn a_late_return_runs_the_hook_on_the_writers_thread() {
    let (open, shut) = gate();
    let w = writer("slow", move || {
        shut.lock().unwrap().recv().unwrap();
        Ok(())
    });
    let (_, late) = Call::start(w, WriterEvent::Freeze, ctx(Duration::from_millis(300)))
        .wait()
        .into_parts();
    let (tx, rx) = mpsc::channel();
    late.unwrap().on_return(move |r| {
        tx.send((r.event(), r.into_result().is_ok())).unwrap();
    });
    open.send(()).unwrap();
    assert_eq!(rx.recv().unwrap(), (WriterEvent::Freeze, true));
}

/// What counts is when the writer answered: an answer after the deadline is late even if nobody
/// was waiting yet, and its hook runs at once.
#[test]
fn an_answer_after_the_deadline_is_late_even_if_collected_later() {
    let (tx, rx) = mpsc::channel();
    let w = writer("quick", move || {
        tx.send(()).unwrap();
        Ok(())
    });
    // A deadline already past: whatever the writer does, it answers after it.
    let call = Call::start(w, WriterEvent::Freeze, EventContext::new(Instant::now()));
    rx.recv().unwrap();
    let (r, late) = call.wait().into_parts();
    assert_eq!(r.unwrap_err().kind(), FailureKind::Timeout);
    let back = late.unwrap().wait(None).unwrap();
    assert!(back.result().is_ok());
}

/// Writers are called in parallel: each of these freezes waits until all of them have started,
/// which a caller running them one after the other would never see.
#[test]
fn writers_run_in_parallel() {
    let n = 16;
    let all_in = Arc::new(Barrier::new(n));
    let calls: Vec<Call> = (0..n)
        .map(|i| {
            let b = all_in.clone();
            let w = writer(&format!("w{i}"), move || {
                b.wait();
                Ok(())
            });
            Call::start(w, WriterEvent::Freeze, ctx(Duration::from_secs(60)))
        })
        .collect();
    for c in calls {
        assert!(c.writer().starts_with('w'));
        assert!(matches!(c.wait(), CallOutcome::Returned(Ok(()))));
    }
}

#[test]
fn identify_keeps_the_document_and_other_events_reach_their_method() {
    let w = writer("db", || Err(WriterFailure::non_retryable("frozen out")));
    let m = Call::identify(
        w.clone(),
        EventContext::new(Instant::now() + Duration::from_secs(30)),
    )
    .wait()
    .into_result()
    .unwrap();
    assert_eq!(m.writer, "db");
    assert_eq!(m.components[0].luns, ["lun0"]);
    for e in WriterEvent::ALL {
        let r = Call::start(w.clone(), e, ctx(Duration::from_secs(30)))
            .wait()
            .into_result();
        // Only freeze fails: each event reached its own method (the others succeed by default
        // or as written).
        assert_eq!(r.is_err(), e == WriterEvent::Freeze, "{e}");
    }
}
