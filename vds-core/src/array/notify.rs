//! Notifications: subscribers, called after each change is persisted, with no array lock held.

use std::sync::Arc;

#[cfg(doc)]
use cow_engine::events::Delivery;
use cow_engine::events::Subscription;

use super::{Array, Subscriber};
use crate::model::Notification;

impl Array {
    /// Calls `f` for every notification from now on (after the change is persisted, with no array
    /// lock held: `f` may call back into the array). Returns an id for [`Array::unsubscribe`].
    pub fn subscribe(&self, f: impl Fn(&Notification) + Send + Sync + 'static) -> u64 {
        let id = self
            .inner
            .next_subscription
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.subscribers.lock().push((id, Arc::new(f)));
        id
    }

    /// Stops calling the subscriber `id`; false if there is no such subscriber.
    pub fn unsubscribe(&self, id: u64) -> bool {
        let mut subs = self.inner.subscribers.lock();
        let before = subs.len();
        subs.retain(|(i, _)| *i != id);
        subs.len() != before
    }

    /// Receives every notification from now on in a bounded queue (`cow_engine::events`): the
    /// array never waits for the receiver; one that does not keep up loses the oldest
    /// notifications and receives [`Delivery::Lagged`] with how many. The subscription ends when
    /// the array is dropped.
    pub fn subscribe_channel(&self) -> Subscription<Notification> {
        self.inner.hub.subscribe()
    }

    /// Calls every subscriber with each of `notes`, in order.
    pub(super) fn announce(&self, notes: Vec<Notification>) {
        if notes.is_empty() {
            return;
        }
        let subs: Vec<Subscriber> = self
            .inner
            .subscribers
            .lock()
            .iter()
            .map(|(_, s)| s.clone())
            .collect();
        for n in &notes {
            for s in &subs {
                s(n);
            }
            self.inner.hub.publish(n.clone());
        }
    }
}
