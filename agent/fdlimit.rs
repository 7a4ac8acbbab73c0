//! File descriptors: the soft limit raised to the hard one at start, and a reserve kept for admin, health and upstream connections when clients take the rest.
//!
//! Every connection costs a descriptor. With the usual soft limit of 1,024, about a
//! thousand idle client connections used to take them all: the admin listener could no
//! longer accept (a liveness probe of `/healthz` failed and would restart a pod that was
//! merely busy), upstream connects failed, and the acceptor logged `Accept failed` many
//! times a second. So, as the Go runtime does, Redline raises its soft limit to the hard
//! limit at start ([`raise`]), and the proxy's acceptor sheds a new client connection
//! (closes it at once, counted in `redline_connections_shed_total`) whose descriptor
//! falls in the last [`reserve`] descriptors below the limit ([`admit`]).
//!
//! The test is the descriptor's number, not a count kept on the side: the kernel hands
//! out the lowest free descriptor (POSIX), so a new descriptor numbered `n` means `0..n`
//! are all open. Every descriptor the process holds is counted that way (upstream, admin,
//! telemetry, log files), it costs nothing to keep, and client connections can never
//! hold a descriptor in the reserve: what is left there is for everything else.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Fewest descriptors kept free for the admin listener, upstream connections and telemetry.
pub const MIN_RESERVE: u64 = 64;
/// Most descriptors kept in reserve: past this, a larger limit goes to clients.
pub const MAX_RESERVE: u64 = 4096;

/// The soft limit in force (`u64::MAX` until [`raise`] has read it: no shedding).
static LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);
/// Client connections shed since start.
static SHED: AtomicU64 = AtomicU64::new(0);

/// The open-file limits before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit now in force (the hard limit, unless raising it failed).
    pub now: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit and remember the result for
/// [`admit`]. An error (no such limit on this system) leaves shedding off.
pub fn raise() -> std::io::Result<Raised> {
    let raised = sys::raise()?;
    LIMIT.store(raised.now, Relaxed);
    Ok(raised)
}

/// Descriptors kept free below the limit: an eighth of it, within
/// [`MIN_RESERVE`]..=[`MAX_RESERVE`] (a 1,024 limit keeps 128; 256 keeps 64).
pub fn reserve(limit: u64) -> u64 {
    (limit / 8).clamp(MIN_RESERVE, MAX_RESERVE)
}

/// Whether a client connection that got descriptor `fd` may stay open: `false` when it
/// is in the reserve. One atomic load.
pub fn admit(fd: u64) -> bool {
    let limit = LIMIT.load(Relaxed);
    limit == u64::MAX || fd.saturating_add(reserve(limit)) < limit
}

/// Count one shed client connection.
pub fn count_shed() {
    SHED.fetch_add(1, Relaxed);
}

/// Client connections shed since start (`redline_connections_shed_total`).
pub fn shed_total() -> u64 {
    SHED.load(Relaxed)
}

/// At most one log line per period for an event that may happen thousands of times a
/// second (shedding, failed accepts): the line says how many it stands for.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    pending: u64,
}

impl Throttle {
    /// Log at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: None,
            pending: 0,
        }
    }

    /// Note one event at `now`: `Some(n)` when a line is due, `n` events since the last one.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.note_many(now, 1)
    }

    /// [`note`](Self::note) for `events` events at once.
    pub fn note_many(&mut self, now: Instant, events: u64) -> Option<u64> {
        self.pending += events;
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

/// The wait after the `failures`th accept failure in a row: 50 ms doubling to 1 s. A
/// full descriptor table (`EMFILE`) leaves the connection in the kernel's queue, so the
/// listener stays readable and an immediate retry would spin.
pub fn accept_backoff(failures: u32) -> Duration {
    Duration::from_millis(50u64 << failures.saturating_sub(1).min(5)).min(Duration::from_secs(1))
}

#[cfg(unix)]
mod sys {
    use super::Raised;

    pub(super) fn raise() -> std::io::Result<Raised> {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit through a valid pointer.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let before = as_u64(lim.rlim_cur);
        if lim.rlim_cur == lim.rlim_max {
            return Ok(Raised {
                before,
                now: before,
            });
        }
        let wanted = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const wanted) } != 0 {
            // macOS refuses more than OPEN_MAX with an unlimited hard limit: keep the old one.
            return Ok(Raised {
                before,
                now: before,
            });
        }
        Ok(Raised {
            before,
            now: as_u64(lim.rlim_max),
        })
    }

    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // rlim_t differs by platform
    fn as_u64(v: libc::rlim_t) -> u64 {
        if v == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            u64::try_from(v).unwrap_or(u64::MAX)
        }
    }
}

#[cfg(not(unix))]
mod sys {
    pub(super) fn raise() -> std::io::Result<super::Raised> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "no RLIMIT_NOFILE on this system",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_an_eighth_within_bounds() {
        assert_eq!(reserve(256), 64);
        assert_eq!(reserve(1024), 128);
        assert_eq!(reserve(1 << 20), MAX_RESERVE);
    }

    #[test]
    fn the_throttle_reports_what_it_held_back() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.note(start), Some(1));
        assert_eq!(t.note(start + Duration::from_secs(1)), None);
        assert_eq!(t.note(start + Duration::from_secs(2)), None);
        assert_eq!(t.note(start + Duration::from_secs(11)), Some(3));
        assert_eq!(t.note_many(start + Duration::from_secs(12), 40), None);
        assert_eq!(t.note_many(start + Duration::from_secs(22), 2), Some(42));
    }

    #[test]
    fn accept_backoff_doubles_to_a_second() {
        let ms = |n| accept_backoff(n).as_millis();
        assert_eq!(
            (ms(1), ms(2), ms(3), ms(5), ms(30)),
            (50, 100, 200, 800, 1000)
        );
    }
}
