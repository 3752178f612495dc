//! Waiting between tries to reach the company's server again, without
//! I/O: the wait doubles from half a second to [`BACKOFF_MAX`], each with
//! a random part, so that thousands of customers and technicians whose
//! server restarted do not all come back in the same instant.

use std::time::Duration;

/// The first wait.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The longest wait.
pub const BACKOFF_MAX: Duration = Duration::from_secs(15);

/// The waits of one outage.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: BACKOFF_FIRST }
    }
}

impl Backoff {
    /// The next wait; `jitter` (0.0 to 1.0) picks where in its upper
    /// quarter it falls (the caller draws it at random).
    pub fn next(&mut self, jitter: f64) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        base.mul_f64(0.75 + 0.25 * jitter.clamp(0.0, 1.0))
    }

    /// Signed in again: the next outage starts from the first wait.
    pub fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_longest_and_start_over_after_success() {
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..8).map(|_| b.next(1.0)).collect();
        assert_eq!(waits[0], BACKOFF_FIRST);
        assert_eq!(waits[1], BACKOFF_FIRST * 2);
        assert_eq!(*waits.last().unwrap(), BACKOFF_MAX);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(b.next(0.0), BACKOFF_MAX.mul_f64(0.75), "the random part takes off up to a quarter");
        b.reset();
        assert_eq!(b.next(1.0), BACKOFF_FIRST);
    }
}
