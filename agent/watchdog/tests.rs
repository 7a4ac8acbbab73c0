use super::*;

/// Runs `f` on a current-thread runtime with a watchdog, as a proxy worker does.
fn on_worker<F: Future>(idle_limit: Duration, f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let out = rt.block_on(async {
        tokio::spawn(install(idle_limit));
        f.await
    });
    uninstall();
    out
}

/// `started.elapsed()` lies in `[at_least, under)`: timing bounds with room for a busy machine.
fn assert_took(started: Instant, at_least: Duration, under: Duration) {
    let took = started.elapsed();
    assert!(took >= at_least && took < under, "{took:?}");
}

fn counts() -> (usize, usize) {
    with_watch(|w| (w.conns.len(), w.waits.len())).unwrap()
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

#[test]
fn an_idle_connection_is_closed_after_the_limit_and_a_busy_one_is_not() {
    on_worker(Duration::from_millis(300), async {
        let started = Instant::now();
        let (_, idle) = open_conn();
        let (key, busy) = open_conn();
        let request = key.busy(false);
        let err = idle.await.expect_err("aborted");
        assert!(err.is_cancelled());
        assert_took(
            started,
            Duration::from_millis(300),
            Duration::from_millis(900),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!busy.is_finished(), "a request in progress keeps it open");
        assert_eq!(
            counts(),
            (1, 0),
            "the closed one's entry went with its task"
        );

        let idle_from = Instant::now();
        drop(request);
        assert!(busy.await.expect_err("aborted").is_cancelled());
        assert_took(
            idle_from,
            Duration::from_millis(300),
            Duration::from_millis(900),
        );
        assert_eq!(counts(), (0, 0));
        // Its next sweep finds nothing and it sleeps until poked.
        let deadline = Instant::now() + Duration::from_secs(2);
        while with_watch(|w| w.next_sweep.is_some()).unwrap() {
            assert!(
                Instant::now() < deadline,
                "the watchdog kept ticking with nothing to watch"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn a_stale_key_does_not_touch_the_connection_now_in_its_slot() {
    on_worker(Duration::from_secs(30), async {
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
    });
}

#[test]
fn a_fast_wait_is_an_entry_while_pending_and_leaves_none() {
    on_worker(Duration::from_secs(30), async {
        let work = async {
            tokio::task::yield_now().await;
            counts().1
        };
        let seen = limit(Instant::now(), Duration::from_secs(30), work).await;
        assert_eq!(seen, Some(1), "registered while pending");
        assert_eq!(counts().1, 0, "and gone after");
    });
}

#[test]
fn a_slow_wait_times_out_at_its_deadline() {
    on_worker(Duration::from_secs(30), async {
        let started = Instant::now();
        let slow = tokio::time::sleep(Duration::from_secs(5));
        assert_eq!(limit(started, Duration::from_millis(300), slow).await, None);
        assert_took(
            started,
            Duration::from_millis(300),
            Duration::from_millis(600),
        );
        assert_eq!(counts().1, 0);
    });
}

#[test]
fn a_wait_past_its_escalation_still_gets_its_result() {
    on_worker(Duration::from_secs(30), async {
        let started = Instant::now();
        let work = async {
            tokio::time::sleep(ESCALATE_AFTER * 3).await;
            7
        };
        assert_eq!(limit(started, Duration::from_secs(5), work).await, Some(7));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(counts().1, 0);
    });
}

#[test]
fn a_short_timeout_gets_a_timer_at_once() {
    on_worker(Duration::from_secs(30), async {
        let started = Instant::now();
        let work = async {
            tokio::task::yield_now().await;
            assert_eq!(counts().1, 0, "never registered");
            std::future::pending::<()>().await
        };
        assert_eq!(limit(started, Duration::from_millis(20), work).await, None);
        assert!(started.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn without_a_watchdog_limit_uses_a_timer_and_conns_are_not_tracked() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(!active());
        assert_eq!(conn_opened(), None);
        let started = Instant::now();
        let slow = tokio::time::sleep(Duration::from_secs(5));
        assert_eq!(limit(started, Duration::from_millis(100), slow).await, None);
        assert_took(started, Duration::from_millis(100), Duration::from_secs(2));
    });
}

#[test]
fn an_http2_connection_is_not_closed_for_idling() {
    on_worker(Duration::from_millis(100), async {
        let (key, task) = open_conn();
        drop(key.busy(true));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!task.is_finished());
        task.abort();
    });
}
