//! Event delivery: bounded subscriptions that never block the publisher.
//!
//! A [`Hub`] publishes events to its [`Subscription`]s. Each subscription is a queue of at most
//! `capacity` events: a publisher never waits (it may run inside a write), so when a subscriber
//! does not keep up, its oldest event is dropped and it receives a [`Delivery::Lagged`] marker
//! saying how many it missed, before the events that were kept. A subscription ends (receives
//! `None`) once its hub is gone, or it is closed, and what was queued has been received.
//!
//! The volume's events ([`crate::Event`]) come through a hub; the array above the engine and the
//! C layer use the same hubs for theirs.
//!
//! ```
//! use cow_engine::events::{Delivery, Hub};
//!
//! let hub = Hub::new(2);
//! let sub = hub.subscribe();
//! for n in 1..=3 {
//!     hub.publish(n);
//! }
//! assert_eq!(sub.try_recv(), Some(Delivery::Lagged(1)));
//! assert_eq!(sub.try_recv(), Some(Delivery::Event(2)));
//! assert_eq!(sub.try_recv(), Some(Delivery::Event(3)));
//! assert_eq!(sub.try_recv(), None);
//! drop(hub);
//! assert_eq!(sub.recv(), None, "the hub is gone and nothing is queued");
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How many events a subscription holds by default before it drops the oldest.
pub const DEFAULT_CAPACITY: usize = 1024;

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery<T> {
    /// The next event.
    Event(T),
    /// This many events (the oldest) were dropped because the subscriber did not keep up; the
    /// events received after the marker are the ones that were kept, in order.
    Lagged(u64),
}

impl<T> Delivery<T> {
    /// The event, or `None` for a [`Delivery::Lagged`] marker.
    pub fn into_event(self) -> Option<T> {
        match self {
            Delivery::Event(e) => Some(e),
            Delivery::Lagged(_) => None,
        }
    }
}

struct QueueState<T> {
    items: VecDeque<T>,
    lagged: u64,
    closed: bool,
}

struct Queue<T> {
    state: Mutex<QueueState<T>>,
    ready: Condvar,
    capacity: usize,
}

impl<T> Queue<T> {
    fn push(&self, event: T) {
        let mut s = self.state.lock();
        if s.closed {
            return;
        }
        if s.items.len() >= self.capacity {
            s.items.pop_front();
            s.lagged += 1;
        }
        s.items.push_back(event);
        drop(s);
        self.ready.notify_all();
    }

    fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }

    /// The next delivery if one is ready; `Err(closed)` otherwise.
    fn take(s: &mut QueueState<T>) -> Result<Delivery<T>, bool> {
        if s.lagged > 0 {
            return Ok(Delivery::Lagged(std::mem::take(&mut s.lagged)));
        }
        match s.items.pop_front() {
            Some(e) => Ok(Delivery::Event(e)),
            None => Err(s.closed),
        }
    }
}

/// One subscriber's end: receive with [`Subscription::recv`] (blocking),
/// [`Subscription::recv_timeout`] or [`Subscription::try_recv`]. `Sync`: several threads may
/// receive from one subscription (each delivery goes to one of them).
pub struct Subscription<T> {
    queue: Arc<Queue<T>>,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.queue.state.lock();
        f.debug_struct("Subscription")
            .field("queued", &s.items.len())
            .field("lagged", &s.lagged)
            .field("closed", &s.closed)
            .finish()
    }
}

impl<T> Subscription<T> {
    /// A subscription fed by no hub yet (see [`Hub::forward_to`]), holding at most `capacity`
    /// events (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Subscription {
            queue: Arc::new(Queue {
                state: Mutex::new(QueueState {
                    items: VecDeque::new(),
                    lagged: 0,
                    closed: false,
                }),
                ready: Condvar::new(),
                capacity: capacity.max(1),
            }),
        }
    }

    /// Waits for the next delivery; `None` once the subscription is closed (its hub gone, or
    /// [`Subscription::close`]) and everything queued has been received.
    pub fn recv(&self) -> Option<Delivery<T>> {
        let mut s = self.queue.state.lock();
        loop {
            match Queue::take(&mut s) {
                Ok(d) => return Some(d),
                Err(true) => return None,
                Err(false) => self.queue.ready.wait(&mut s),
            }
        }
    }

    /// Like [`Subscription::recv`], waiting at most `timeout`; `None` also when nothing came.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Delivery<T>> {
        let deadline = Instant::now() + timeout;
        let mut s = self.queue.state.lock();
        loop {
            match Queue::take(&mut s) {
                Ok(d) => return Some(d),
                Err(true) => return None,
                Err(false) => {
                    if self.queue.ready.wait_until(&mut s, deadline).timed_out() {
                        return Queue::take(&mut s).ok();
                    }
                }
            }
        }
    }

    /// The next delivery if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<Delivery<T>> {
        Queue::take(&mut self.queue.state.lock()).ok()
    }

    /// The deliveries queued now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = Delivery<T>> + '_ {
        std::iter::from_fn(|| self.try_recv())
    }

    /// Stops receiving new events; what is queued can still be received, then `recv` returns
    /// `None` (a thread blocked in `recv` wakes). Idempotent.
    pub fn close(&self) {
        self.queue.close();
    }

    /// True once closed (by [`Subscription::close`] or because the hub is gone).
    pub fn is_closed(&self) -> bool {
        self.queue.state.lock().closed
    }
}

/// Where a hub delivers: a subscription's queue, or another queue through a conversion.
trait Sink<T>: Send + Sync {
    /// Delivers `event`; false once the receiving end is gone (the hub then forgets the sink).
    fn push(&self, event: &T) -> bool;
    /// The hub is gone.
    fn close(&self);
    /// False once the receiving end is gone.
    fn alive(&self) -> bool;
}

struct Direct<T>(Weak<Queue<T>>);

impl<T: Clone + Send> Sink<T> for Direct<T> {
    fn push(&self, event: &T) -> bool {
        match self.0.upgrade() {
            Some(q) => {
                q.push(event.clone());
                true
            }
            None => false,
        }
    }

    fn close(&self) {
        if let Some(q) = self.0.upgrade() {
            q.close();
        }
    }

    fn alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

struct Mapped<U, F> {
    queue: Weak<Queue<U>>,
    map: F,
}

impl<T, U: Send, F: Fn(&T) -> Option<U> + Send + Sync> Sink<T> for Mapped<U, F> {
    fn push(&self, event: &T) -> bool {
        match self.queue.upgrade() {
            Some(q) => {
                if let Some(u) = (self.map)(event) {
                    q.push(u);
                }
                true
            }
            None => false,
        }
    }

    fn close(&self) {
        // The target has sources of its own: this hub going away does not end it.
    }

    fn alive(&self) -> bool {
        self.queue.strong_count() > 0
    }
}

/// The publishing end: every event goes to every live subscription.
pub struct Hub<T> {
    sinks: Mutex<Vec<Box<dyn Sink<T>>>>,
    capacity: usize,
}

impl<T> std::fmt::Debug for Hub<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("subscriptions", &self.sinks.lock().len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<T: Clone + Send + 'static> Default for Hub<T> {
    fn default() -> Self {
        Hub::new(DEFAULT_CAPACITY)
    }
}

impl<T: Clone + Send + 'static> Hub<T> {
    /// A hub whose subscriptions hold at most `capacity` events each (at least 1).
    pub fn new(capacity: usize) -> Self {
        Hub {
            sinks: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
        }
    }

    /// Receives every event published from now on.
    pub fn subscribe(&self) -> Subscription<T> {
        let sub = Subscription::with_capacity(self.capacity);
        self.sinks
            .lock()
            .push(Box::new(Direct(Arc::downgrade(&sub.queue))));
        sub
    }

    /// Delivers every event published from now on into `target`, converted by `map` (`None`
    /// skips the event). `map` runs in the publisher: keep it short. The forwarding ends when
    /// `target` is dropped; `target` is not closed when this hub goes away.
    pub fn forward_to<U: Send + 'static>(
        &self,
        target: &Subscription<U>,
        map: impl Fn(&T) -> Option<U> + Send + Sync + 'static,
    ) {
        self.sinks.lock().push(Box::new(Mapped {
            queue: Arc::downgrade(&target.queue),
            map,
        }));
    }

    /// Delivers `event` to every subscription; never waits for a subscriber.
    pub fn publish(&self, event: T) {
        self.sinks.lock().retain(|s| s.push(&event));
    }

    /// The number of live subscriptions (and forwardings).
    pub fn subscribers(&self) -> usize {
        let mut sinks = self.sinks.lock();
        sinks.retain(|s| s.alive());
        sinks.len()
    }
}

impl<T> Drop for Hub<T> {
    fn drop(&mut self) {
        for s in self.sinks.get_mut().drain(..) {
            s.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_subscriber_lags_and_never_blocks_the_publisher() {
        let hub = Hub::new(3);
        let slow = hub.subscribe();
        let fast = hub.subscribe();
        for n in 0..10u32 {
            hub.publish(n);
            assert_eq!(fast.try_recv(), Some(Delivery::Event(n)));
        }
        assert_eq!(slow.try_recv(), Some(Delivery::Lagged(7)));
        let kept: Vec<_> = std::iter::from_fn(|| slow.try_recv()).collect();
        assert_eq!(
            kept,
            vec![Delivery::Event(7), Delivery::Event(8), Delivery::Event(9)]
        );
    }

    #[test]
    fn recv_wakes_on_publish_and_ends_when_the_hub_goes() {
        let hub = Hub::new(8);
        let sub = hub.subscribe();
        let t = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(d) = sub.recv() {
                got.push(d);
            }
            got
        });
        hub.publish("a");
        hub.publish("b");
        drop(hub);
        assert_eq!(
            t.join().unwrap(),
            vec![Delivery::Event("a"), Delivery::Event("b")]
        );
    }

    #[test]
    fn close_drains_what_is_queued_then_ends() {
        let hub = Hub::new(8);
        let sub = hub.subscribe();
        hub.publish(1);
        sub.close();
        hub.publish(2);
        assert_eq!(sub.recv(), Some(Delivery::Event(1)));
        assert_eq!(sub.recv(), None);
        assert_eq!(sub.recv_timeout(Duration::from_millis(1)), None);
    }

    #[test]
    fn forwarding_converts_and_stops_with_its_target() {
        let hub: Hub<u32> = Hub::new(4);
        let target = Subscription::with_capacity(4);
        hub.forward_to(&target, |n| (n % 2 == 0).then(|| n.to_string()));
        hub.publish(1);
        hub.publish(2);
        assert_eq!(target.try_recv(), Some(Delivery::Event("2".to_string())));
        assert_eq!(hub.subscribers(), 1);
        drop(hub);
        assert!(
            !target.is_closed(),
            "a forwarding source does not end its target"
        );
        let hub: Hub<u32> = Hub::new(4);
        hub.forward_to(&target, |n| Some(n.to_string()));
        drop(target);
        hub.publish(3);
        assert_eq!(hub.subscribers(), 0);
    }

    #[test]
    fn dropped_subscriptions_are_forgotten() {
        let hub = Hub::new(4);
        let a = hub.subscribe();
        let _b = hub.subscribe();
        drop(a);
        hub.publish(0u8);
        assert_eq!(hub.subscribers(), 1);
    }
}
