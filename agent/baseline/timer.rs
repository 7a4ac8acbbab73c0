//! A sleep precise to microseconds for the load generator's pacer, woken by the runtime itself.
//!
//! tokio's timer wheel ticks in milliseconds, so a pacer on it sends every request up to a
//! millisecond late (wrk2's floor). A pacer on its own OS thread is punctual but must wake a
//! parked runtime worker for every request, and on a virtual machine that cross-thread wake-up
//! is where the tail latency of the generator itself came from (p99 0.2–0.5 ms above oha's).
//! On Linux a `timerfd` registered with the runtime's reactor is both: the worker that waits
//! in `epoll` wakes at the due microsecond and runs the pacer and the connection task it hands
//! the request to on the same thread. Elsewhere this falls back to tokio's sleep.

use std::time::Instant;

#[cfg(target_os = "linux")]
pub use linux::Timer;

#[cfg(not(target_os = "linux"))]
pub use portable::Timer;

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Instant;

    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    /// One one-shot timer, re-armed for every sleep.
    pub struct Timer {
        fd: AsyncFd<OwnedFd>,
    }

    impl Timer {
        /// A timer on the monotonic clock (the one `Instant` reads); needs a runtime with IO.
        pub fn new() -> io::Result<Timer> {
            // SAFETY: timerfd_create takes two integers and returns a new descriptor or -1.
            let raw = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a descriptor just created and owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: an OwnedFd returns the same open descriptor for as long as it lives,
            // and the AsyncFd owns it until both are dropped together.
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
            Ok(Timer { fd })
        }

        /// Return at `when` (a few microseconds after at most), or at once if it has passed.
        pub async fn sleep_until(&self, when: Instant) -> io::Result<()> {
            let Some(wait) = when.checked_duration_since(Instant::now()) else {
                return Ok(());
            };
            if wait.is_zero() {
                return Ok(());
            }
            self.arm(wait)?;
            loop {
                let mut ready = self.fd.readable().await?;
                let mut expirations = [0u8; 8];
                let read = ready.try_io(|fd| {
                    // SAFETY: reads at most 8 bytes into a buffer of 8.
                    let n =
                        unsafe { libc::read(fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(())
                    }
                });
                match read {
                    Ok(result) => return result,
                    // Not expired yet (a stale readiness): readiness is cleared, wait again.
                    Err(_would_block) => continue,
                }
            }
        }

        fn arm(&self, wait: std::time::Duration) -> io::Result<()> {
            let value = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: wait.as_secs() as libc::time_t,
                    tv_nsec: libc::c_long::from(wait.subsec_nanos() as i32),
                },
            };
            // SAFETY: a valid timerfd, a valid itimerspec, and no old value asked for.
            let rc = unsafe {
                libc::timerfd_settime(self.fd.as_raw_fd(), 0, &value, std::ptr::null_mut())
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod portable {
    use std::io;
    use std::time::Instant;

    /// tokio's sleep: millisecond ticks, so up to a millisecond late.
    pub struct Timer;

    impl Timer {
        /// Always succeeds.
        pub fn new() -> io::Result<Timer> {
            Ok(Timer)
        }

        /// Return at `when` or the next timer tick after it.
        pub async fn sleep_until(&self, when: Instant) -> io::Result<()> {
            tokio::time::sleep_until(tokio::time::Instant::from_std(when)).await;
            Ok(())
        }
    }
}

/// Sleep until `when` on `timer`, or on tokio's timer if there is none or it failed.
pub async fn sleep_until(timer: Option<&Timer>, when: Instant) {
    if when <= Instant::now() {
        return;
    }
    if let Some(timer) = timer
        && timer.sleep_until(when).await.is_ok()
    {
        return;
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(when)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sleeps_until_the_instant_and_not_long_after() {
        let timer = Timer::new().unwrap();
        let mut punctual = 0;
        for _ in 0..50 {
            let when = Instant::now() + Duration::from_micros(300);
            timer.sleep_until(when).await.unwrap();
            let now = Instant::now();
            assert!(now >= when, "woke {:?} early", when - now);
            punctual += usize::from(now - when < Duration::from_micros(250));
        }
        // In this loop tokio's millisecond wheel is ~700 µs late every time (each sleep
        // starts just after a tick and ends on the next one); a loaded test machine can delay
        // many wake-ups, so only a fifth of them are held to 250 µs.
        assert!(punctual >= 10, "{punctual} of 50 wake-ups within 250 µs");
        timer.sleep_until(Instant::now()).await.unwrap();
    }
}
