//! The gate's limits, queue and wake-ups, on tokio's paused clock.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::*;

fn limits(max_connecting: usize, max: usize, queue: usize) -> UpstreamConnections {
    UpstreamConnections {
        max_connecting: NonZeroUsize::new(max_connecting).unwrap(),
        max,
        queue,
        queue_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(5),
    }
}

/// Polls `f` once: `Some` if it finished at once.
fn now_or_never<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

#[tokio::test(start_paused = true)]
async fn at_most_max_connecting_open_at_once_and_a_freed_slot_goes_to_the_waiter() {
    let gate = Gate::new();
    let l = limits(2, 0, 8);
    let a = gate.waiter(&l).next().await.unwrap().unwrap();
    let b = gate.waiter(&l).next().await.unwrap().unwrap();
    assert_eq!(gate.counts(), (2, 2));
    let mut waiter = gate.waiter(&l);
    let mut third = Box::pin(waiter.next());
    assert!(now_or_never(third.as_mut()).is_none(), "waits");
    // The first connection answered: proven, no longer being opened, still open.
    drop(a.opening);
    assert!(third.await.unwrap().is_none(), "woken to look again");
    let c = waiter.next().await.unwrap().unwrap();
    assert_eq!(gate.counts(), (3, 2));
    drop((b, c, waiter));
    assert_eq!(
        gate.counts(),
        (1, 0),
        "only the first connection is left open"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once_and_a_long_wait_refuses_at_the_timeout() {
    let gate = Gate::new();
    let l = limits(1, 0, 1);
    let _held = gate.waiter(&l).next().await.unwrap().unwrap();
    let mut queued = gate.waiter(&l);
    let started = tokio::time::Instant::now();
    let mut waiting = Box::pin(queued.next());
    assert!(now_or_never(waiting.as_mut()).is_none());
    let full = gate.waiter(&l).next().await.unwrap_err();
    assert_eq!(full.kind(), ErrorType::Overloaded);
    assert_eq!(full.what(), "the queue for upstream connections is full");
    assert_eq!(started.elapsed(), Duration::ZERO, "refused without waiting");
    let late = waiting.await.unwrap_err();
    assert_eq!(late.kind(), ErrorType::Overloaded);
    assert_eq!(
        started.elapsed(),
        l.queue_timeout,
        "refused at the queue timeout"
    );
    assert_eq!(late.retry_verdict(), Retry::Always, "nothing was sent");
    drop(queued);
    assert_eq!(gate.queued.load(SeqCst), 0, "the queue is left");
}

#[tokio::test(start_paused = true)]
async fn the_total_cap_holds_and_a_returned_connection_is_closed_for_a_waiter() {
    let gate = Gate::new();
    let l = limits(4, 1, 8);
    let first = gate.waiter(&l).next().await.unwrap().unwrap();
    drop(first.opening);
    assert!(matches!(gate.returning(), Returning::Park), "no one waits");
    let mut waiter = gate.waiter(&l);
    let mut second = Box::pin(waiter.next());
    assert!(now_or_never(second.as_mut()).is_none(), "max reached");
    assert!(
        matches!(gate.returning(), Returning::Close),
        "a waiter needs the place"
    );
    drop(first.open);
    assert!(second.await.unwrap().is_none());
    assert!(waiter.next().await.unwrap().is_some(), "the freed place");
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_returning_wakes_waiters_to_look() {
    let gate = Gate::new();
    let l = limits(1, 0, 8);
    let _opening = gate.waiter(&l).next().await.unwrap().unwrap();
    let mut waiter = gate.waiter(&l);
    let mut waiting = Box::pin(waiter.next());
    assert!(now_or_never(waiting.as_mut()).is_none());
    assert!(matches!(gate.returning(), Returning::ParkAndWake));
    gate.wake_waiters();
    assert!(
        waiting.await.unwrap().is_none(),
        "look at the idle connections"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_answer_frees_its_opening_slot_after_proving() {
    let gate = Gate::new();
    let l = limits(1, 0, 8);
    let permit = gate.waiter(&l).next().await.unwrap().unwrap();
    let (opening, _open) = (permit.opening, permit.open);
    let slow = tokio::spawn({
        let first = tokio::time::sleep(Duration::from_secs(30));
        proving(opening, first)
    });
    tokio::time::sleep(PROVING / 2).await;
    assert_eq!(gate.counts(), (1, 1), "still being opened");
    tokio::time::sleep(PROVING).await;
    assert_eq!(
        gate.counts(),
        (1, 0),
        "the slot is free; the connection stays open"
    );
    assert!(gate.waiter(&l).next().await.unwrap().is_some());
    slow.abort();
}
