//! One receiver's queue of undelivered notifications: bounded, newest-wins per alert, serialisable.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::event::AlertEvent;

/// One notification waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// `webhook-id`: fixed when queued, the same on every retry and after a restart.
    pub id: String,
    /// What to deliver.
    pub event: AlertEvent,
    /// When it was queued (wall clock, so the give-up horizon survives restarts).
    pub queued_at: SystemTime,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before this instant; `None` means now.
    #[serde(skip)]
    pub due: Option<Instant>,
    /// Being delivered right now: neither handed out again nor superseded.
    #[serde(skip)]
    pub in_flight: bool,
}

/// What `push` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether the event was queued (false: an equal or newer event for the alert was seen).
    pub queued: bool,
    /// Older undelivered events of the same alert that it replaced.
    pub superseded: usize,
    /// Oldest entries dropped because the queue was full.
    pub overflowed: usize,
}

/// What the worker should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Deliver this one now (it is marked in flight).
    Ready(Pending),
    /// Nothing is due before this instant.
    Wait(Instant),
    /// Nothing queued, or everything is in flight.
    Idle,
}

/// The queue itself; the worker and the dispatcher share it behind a mutex.
#[derive(Debug)]
pub struct Outbox {
    items: VecDeque<Pending>,
    capacity: usize,
    /// Highest sequence seen per fingerprint, to drop late, out-of-order or repeated events.
    latest: BTreeMap<String, u64>,
    version: u64,
}

/// On-disk form.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// Receiver name.
    pub receiver: String,
    /// Undelivered notifications, oldest first.
    pub items: Vec<Pending>,
    /// Highest sequence accepted per fingerprint, so an event the evaluator re-sends after
    /// a crash is not delivered twice.
    #[serde(default)]
    pub seen: BTreeMap<String, u64>,
}

impl Outbox {
    /// An empty queue holding at most `capacity` notifications.
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            latest: BTreeMap::new(),
            version: 0,
        }
    }

    /// A queue holding what an earlier process left undelivered; all of it is due now.
    pub fn restore(capacity: usize, snapshot: Snapshot) -> Outbox {
        let mut outbox = Outbox::new(capacity);
        outbox.latest = snapshot.seen;
        for mut item in snapshot.items {
            item.due = None;
            item.in_flight = false;
            outbox.note_sequence(&item.event);
            outbox.items.push_back(item);
        }
        outbox
    }

    /// Queue `event` under a fresh id, replacing undelivered older events of the same alert.
    pub fn push(&mut self, event: AlertEvent, id: String, now: SystemTime) -> Admission {
        let seen = self.latest.get(&event.fingerprint).copied();
        if seen.is_some_and(|s| s >= event.sequence) {
            return Admission {
                queued: false,
                superseded: 0,
                overflowed: 0,
            };
        }
        self.note_sequence(&event);
        let before = self.items.len();
        self.items
            .retain(|p| p.in_flight || p.event.fingerprint != event.fingerprint);
        let superseded = before - self.items.len();
        let overflowed = self.make_room();
        self.items.push_back(Pending {
            id,
            event,
            queued_at: now,
            attempts: 0,
            due: None,
            in_flight: false,
        });
        self.version += 1;
        Admission {
            queued: true,
            superseded,
            overflowed,
        }
    }

    /// Hand out the first due notification, or say how long to wait.
    pub fn next(&mut self, now: Instant) -> Next {
        let mut earliest: Option<Instant> = None;
        for item in self.items.iter_mut().filter(|p| !p.in_flight) {
            match item.due {
                Some(at) if at > now => earliest = Some(earliest.map_or(at, |e| e.min(at))),
                _ => {
                    item.in_flight = true;
                    return Next::Ready(item.clone());
                }
            }
        }
        earliest.map_or(Next::Idle, Next::Wait)
    }

    /// Forget `id` (delivered, failed or dropped).
    pub fn remove(&mut self, id: &str) -> Option<Pending> {
        let index = self.items.iter().position(|p| p.id == id)?;
        self.version += 1;
        self.items.remove(index)
    }

    /// Put `id` back for another attempt at `due`.
    pub fn retry_at(&mut self, id: &str, due: Instant) {
        if let Some(item) = self.items.iter_mut().find(|p| p.id == id) {
            item.in_flight = false;
            item.attempts += 1;
            item.due = Some(due);
            self.version += 1;
        }
    }

    /// Drop everything not in flight (the receiver was removed); returns how many.
    pub fn clear_idle(&mut self) -> usize {
        let before = self.items.len();
        self.items.retain(|p| p.in_flight);
        let dropped = before - self.items.len();
        if dropped > 0 {
            self.version += 1;
        }
        dropped
    }

    /// Number of undelivered notifications.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Changes so far; increases with every mutation, for ordered snapshots.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Serialise for `Store`, in-flight items included (a crash mid-send must resend them).
    pub fn snapshot(&self, receiver: &str) -> Vec<u8> {
        let snapshot = Snapshot {
            receiver: receiver.to_string(),
            items: self.items.iter().cloned().collect(),
            seen: self.latest.clone(),
        };
        serde_json::to_vec(&snapshot).unwrap_or_default()
    }

    fn note_sequence(&mut self, event: &AlertEvent) {
        let entry = self.latest.entry(event.fingerprint.clone()).or_insert(0);
        *entry = (*entry).max(event.sequence);
    }

    /// Evict the oldest idle entries until one more fits.
    fn make_room(&mut self) -> usize {
        let mut evicted = 0;
        while self.items.len() >= self.capacity {
            let Some(index) = self.items.iter().position(|p| !p.in_flight) else {
                break;
            };
            self.items.remove(index);
            evicted += 1;
        }
        evicted
    }
}

/// A new `webhook-id`: `msg_` and 27 random alphanumerics, like the spec's examples.
pub fn new_id() -> String {
    let tail: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(27)
        .collect();
    format!("msg_{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::event::AlertStatus;
    use crate::notify::webhook::tests::example_event;
    use std::time::Duration;

    fn event(fingerprint: &str, sequence: u64, status: AlertStatus) -> AlertEvent {
        let mut e = example_event();
        e.fingerprint = fingerprint.into();
        e.sequence = sequence;
        e.status = status;
        e
    }

    fn push(outbox: &mut Outbox, e: AlertEvent) -> Admission {
        outbox.push(e, new_id(), SystemTime::now())
    }

    #[test]
    fn a_newer_event_supersedes_an_undelivered_older_one() {
        let mut outbox = Outbox::new(16);
        push(&mut outbox, event("a", 1, AlertStatus::Firing));
        push(&mut outbox, event("b", 1, AlertStatus::Firing));
        let admission = push(&mut outbox, event("a", 2, AlertStatus::Resolved));
        assert_eq!(
            admission,
            Admission {
                queued: true,
                superseded: 1,
                overflowed: 0
            }
        );
        assert_eq!(outbox.len(), 2);
        let Next::Ready(first) = outbox.next(Instant::now()) else {
            panic!("expected b")
        };
        assert_eq!(first.event.fingerprint, "b");
        let Next::Ready(second) = outbox.next(Instant::now()) else {
            panic!("expected a")
        };
        assert_eq!(
            (second.event.sequence, second.event.status),
            (2, AlertStatus::Resolved)
        );
    }

    #[test]
    fn in_flight_events_are_not_superseded_and_stale_ones_are_refused() {
        let mut outbox = Outbox::new(16);
        push(&mut outbox, event("a", 5, AlertStatus::Firing));
        let Next::Ready(sending) = outbox.next(Instant::now()) else {
            panic!()
        };
        let admission = push(&mut outbox, event("a", 6, AlertStatus::Resolved));
        assert_eq!(admission.superseded, 0);
        assert_eq!(outbox.len(), 2);
        assert!(!push(&mut outbox, event("a", 4, AlertStatus::Firing)).queued);
        assert!(!push(&mut outbox, event("a", 6, AlertStatus::Resolved)).queued);
        outbox.remove(&sending.id);
        assert_eq!(outbox.len(), 1);
    }

    #[test]
    fn retries_wait_for_their_due_time_without_blocking_others() {
        let mut outbox = Outbox::new(16);
        push(&mut outbox, event("a", 1, AlertStatus::Firing));
        let now = Instant::now();
        let Next::Ready(a) = outbox.next(now) else {
            panic!()
        };
        let later = now + Duration::from_secs(5);
        outbox.retry_at(&a.id, later);
        assert_eq!(outbox.next(now), Next::Wait(later));
        push(&mut outbox, event("b", 1, AlertStatus::Firing));
        let Next::Ready(b) = outbox.next(now) else {
            panic!()
        };
        assert_eq!(b.event.fingerprint, "b");
        assert_eq!(outbox.next(now), Next::Wait(later));
        let Next::Ready(again) = outbox.next(later) else {
            panic!()
        };
        assert_eq!((again.id, again.attempts), (a.id, 1));
        assert_eq!(outbox.next(later), Next::Idle);
    }

    #[test]
    fn a_full_queue_evicts_the_oldest() {
        let mut outbox = Outbox::new(2);
        push(&mut outbox, event("a", 1, AlertStatus::Firing));
        push(&mut outbox, event("b", 1, AlertStatus::Firing));
        let admission = push(&mut outbox, event("c", 1, AlertStatus::Firing));
        assert_eq!(admission.overflowed, 1);
        let Next::Ready(first) = outbox.next(Instant::now()) else {
            panic!()
        };
        assert_eq!(first.event.fingerprint, "b");
    }

    #[test]
    fn snapshots_round_trip_with_ids_and_in_flight_items() {
        let mut outbox = Outbox::new(16);
        push(&mut outbox, event("a", 1, AlertStatus::Firing));
        push(&mut outbox, event("b", 3, AlertStatus::Resolved));
        let Next::Ready(sending) = outbox.next(Instant::now()) else {
            panic!()
        };
        let v = outbox.version();
        let bytes = outbox.snapshot("ops");
        let snap: Snapshot = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(snap.receiver, "ops");
        assert_eq!(snap.items.len(), 2);
        assert_eq!(snap.items[0].id, sending.id);
        let mut restored = Outbox::restore(16, snap);
        let Next::Ready(again) = restored.next(Instant::now()) else {
            panic!()
        };
        assert_eq!(again.id, sending.id);
        assert_eq!(again.event, sending.event);
        // Stale events stay refused after a restart too.
        assert!(!push(&mut restored, event("b", 2, AlertStatus::Firing)).queued);
        assert!(outbox.remove(&sending.id).is_some());
        assert!(outbox.version() > v);
    }

    #[test]
    fn an_event_delivered_before_a_restart_is_refused_after_it() {
        let mut outbox = Outbox::new(16);
        push(&mut outbox, event("a", 7, AlertStatus::Firing));
        let Next::Ready(sent) = outbox.next(Instant::now()) else {
            panic!()
        };
        outbox.remove(&sent.id);
        let snap: Snapshot = serde_json::from_slice(&outbox.snapshot("ops")).unwrap();
        assert!(snap.items.is_empty());
        let mut restored = Outbox::restore(16, snap);
        assert!(!push(&mut restored, event("a", 7, AlertStatus::Firing)).queued);
        assert!(push(&mut restored, event("a", 8, AlertStatus::Resolved)).queued);
        // Files written before `seen` existed still load.
        let old: Snapshot = serde_json::from_str(r#"{"receiver":"ops","items":[]}"#).unwrap();
        assert!(old.seen.is_empty());
    }

    #[test]
    fn ids_look_like_standard_webhooks_ids() {
        let id = new_id();
        assert!(id.starts_with("msg_") && id.len() == 31, "{id}");
        assert_ne!(new_id(), new_id());
    }
}
