//! Backoff between watch failures that only relaxes after a quiet period.
//!
//! kube's `StreamBackoff` calls `reset()` after every successful event. A server that
//! answers each re-established watch with 410 Gone (a relist succeeds, then the watch is
//! gone again) would so be relisted at the minimum delay forever: a relist storm, every
//! node at once. Here the delay only falls back to the minimum once no error happened for
//! `quiet`, and it is jittered so the nodes of a cluster spread their relists.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kube::runtime::utils::Backoff;

/// Doubling delay from `min` to `max`, reset after `quiet` without errors.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    min: Duration,
    max: Duration,
    quiet: Duration,
    next: Duration,
    last_error: Option<Instant>,
}

impl WatchBackoff {
    /// A backoff starting at `min`, capped at `max`, forgiving after `quiet`.
    pub fn new(min: Duration, max: Duration, quiet: Duration) -> Self {
        WatchBackoff {
            min,
            max: max.max(min),
            quiet,
            next: min,
            last_error: None,
        }
    }

    /// The undithered delay the next error would get.
    fn step(&mut self, now: Instant) -> Duration {
        if self
            .last_error
            .is_some_and(|t| now.duration_since(t) >= self.quiet)
        {
            self.next = self.min;
        }
        self.last_error = Some(now);
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

/// Between 75% and 100% of `delay`, from the clock's nanoseconds (no RNG needed).
fn jitter(delay: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let fraction = 0.75 + 0.25 * f64::from(nanos % 1000) / 1000.0;
    delay.mul_f64(fraction)
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(jitter(self.step(Instant::now())))
    }
}

impl Backoff for WatchBackoff {
    /// Deliberately nothing: see the module docs.
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_relaxes_only_after_quiet() {
        let s = Duration::from_secs;
        let mut b = WatchBackoff::new(s(1), s(5), s(60));
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..5).map(|i| b.step(t0 + s(i))).collect();
        assert_eq!(delays, vec![s(1), s(2), s(4), s(5), s(5)]);
        b.reset();
        assert_eq!(
            b.step(t0 + s(10)),
            s(5),
            "a success in between does not reset"
        );
        assert_eq!(b.step(t0 + s(100)), s(1), "a quiet minute does");
        let j = jitter(s(4));
        assert!(j >= s(3) && j <= s(4));
    }
}
