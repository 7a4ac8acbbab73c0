//! On tokio's paused clock: every deadline is checked to the exact instant, and a test
//! that waits minutes of watchdog time takes none.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A watchdog on this test's thread, as a proxy worker has; uninstalled when dropped.
struct Worker;

impl Worker {
    fn start(idle_limit: Duration) -> Worker {
        tokio::spawn(install(idle_limit));
        Worker
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        uninstall();
    }
}

fn counts() -> (usize, usize) {
    with_watch(|w| (w.conns.len(), w.waits.len())).unwrap()
}

fn next_sweep() -> Option<Instant> {
    with_watch(|w| w.next_sweep).unwrap()
}

/// A connection task that never ends by itself, registered like `server::serve` does.
fn open_conn() -> (ConnKey, tokio::task::JoinHandle<()>) {
    let key = conn_opened().expect("watchdog installed");
    let registration = key.registration();
    let task = tokio::spawn(async move {
        let _registration = registration;
        std::future::pending::<()>().await
    });
    key.set_abort(task.abort_handle());
    (key, task)
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_exactly_at_the_limit_and_a_busy_one_is_not() {
    let _worker = Worker::start(ms(300));
    let opened = Instant::now();
    let (_, idle) = open_conn();
    let (key, busy) = open_conn();
    let request = key.busy(false);
    assert!(idle.await.expect_err("aborted").is_cancelled());
    assert_eq!(opened.elapsed(), ms(300));
    tokio::time::sleep(ms(300)).await;
    assert!(!busy.is_finished(), "a request in progress keeps it open");
    assert_eq!(
        counts(),
        (1, 0),
        "the closed one's entry went with its task"
    );

    // Idle again from the moment its request ends (not from when it opened).
    tokio::time::sleep(ms(10)).await;
    let idle_from = Instant::now();
    drop(request);
    assert!(busy.await.expect_err("aborted").is_cancelled());
    assert_eq!(idle_from.elapsed(), ms(300));
    assert_eq!(counts(), (0, 0));
    // One more sweep (a tick, a quarter of the limit, later) finds nothing, and then the
    // watchdog sleeps until poked: an hour later it has not looked again.
    let closed = Instant::now();
    assert_eq!(next_sweep(), Some(closed + ms(75)));
    tokio::time::sleep(ms(76)).await;
    assert_eq!(next_sweep(), None);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        next_sweep(),
        None,
        "the watchdog kept ticking with nothing to watch"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_limit_is_checked_every_max_tick_and_still_closes_on_time() {
    let _worker = Worker::start(Duration::from_secs(10));
    let opened = Instant::now();
    let (_, idle) = open_conn();
    tokio::time::sleep(ms(1)).await;
    assert_eq!(next_sweep(), Some(opened + MAX_TICK));
    assert!(idle.await.expect_err("aborted").is_cancelled());
    assert_eq!(opened.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_stale_key_does_not_touch_the_connection_now_in_its_slot() {
    let _worker = Worker::start(Duration::from_secs(30));
    let old = conn_opened().unwrap();
    drop(old.registration());
    let new = conn_opened().unwrap();
    assert_eq!(new.index, old.index, "slot reused");
    let stale = old.busy(false);
    assert_eq!(with_watch(|w| w.conns[new.index].busy), Some(0));
    drop(stale);
    let fresh = new.busy(false);
    assert_eq!(with_watch(|w| w.conns[new.index].busy), Some(1));
    drop(fresh);
    drop(new.registration());
}

#[tokio::test(start_paused = true)]
async fn a_fast_wait_is_an_entry_while_pending_and_leaves_none() {
    let _worker = Worker::start(Duration::from_secs(30));
    let work = async {
        tokio::task::yield_now().await;
        counts().1
    };
    let started = Instant::now().into_std();
    let seen = limit(started, Duration::from_secs(30), work).await;
    assert_eq!(seen, Some(1), "registered while pending");
    assert_eq!(counts().1, 0, "and gone after");
}

#[tokio::test(start_paused = true)]
async fn a_pending_wait_escalates_after_escalate_after_and_times_out_at_its_deadline() {
    let _worker = Worker::start(Duration::from_secs(30));
    let started = Instant::now();
    let pending = std::future::pending::<()>();
    let waiting = tokio::spawn(limit(started.into_std(), Duration::from_secs(5), pending));
    tokio::time::sleep(ESCALATE_AFTER - ms(1)).await;
    assert_eq!(counts().1, 1, "the watchdog's until ESCALATE_AFTER");
    tokio::time::sleep(ms(2)).await;
    assert_eq!(counts().1, 0, "a real timer's from then on");
    assert_eq!(waiting.await.unwrap(), None);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_slow_wait_times_out_at_its_deadline() {
    let _worker = Worker::start(Duration::from_secs(30));
    let started = Instant::now();
    let slow = tokio::time::sleep(Duration::from_secs(5));
    assert_eq!(limit(started.into_std(), ms(300), slow).await, None);
    assert_eq!(started.elapsed(), ms(300));
    assert_eq!(counts().1, 0);
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_its_escalation_still_gets_its_result() {
    let _worker = Worker::start(Duration::from_secs(30));
    let started = Instant::now();
    let work = async {
        tokio::time::sleep(ESCALATE_AFTER * 3).await;
        7
    };
    let out = limit(started.into_std(), Duration::from_secs(5), work).await;
    assert_eq!(out, Some(7));
    assert_eq!(started.elapsed(), ESCALATE_AFTER * 3);
    assert_eq!(counts().1, 0);
}

#[tokio::test(start_paused = true)]
async fn a_short_timeout_gets_a_timer_at_once() {
    let _worker = Worker::start(Duration::from_secs(30));
    let started = Instant::now();
    let work = async {
        tokio::task::yield_now().await;
        assert_eq!(counts().1, 0, "never registered");
        std::future::pending::<()>().await
    };
    assert_eq!(limit(started.into_std(), ms(20), work).await, None);
    assert_eq!(started.elapsed(), ms(20));
}

#[tokio::test(start_paused = true)]
async fn without_a_watchdog_limit_uses_a_timer_and_conns_are_not_tracked() {
    assert!(!active());
    assert_eq!(conn_opened(), None);
    let started = Instant::now();
    let slow = tokio::time::sleep(Duration::from_secs(5));
    assert_eq!(limit(started.into_std(), ms(100), slow).await, None);
    assert_eq!(started.elapsed(), ms(100));
}

#[tokio::test(start_paused = true)]
async fn an_http2_connection_is_not_closed_for_idling() {
    let _worker = Worker::start(ms(100));
    let (key, task) = open_conn();
    drop(key.busy(true));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!task.is_finished());
    task.abort();
}
