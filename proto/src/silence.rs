//! Noticing that a session's path went silent, without I/O: the shell
//! feeds the count of datagrams received so far and the time; the answer
//! says when to ask the rendezvous where the peer is now.
//!
//! Both sides send a keep-alive every second and acknowledge each other's
//! at once, so a live path delivers something at least every second. A
//! path that delivered nothing for [`SILENT_AFTER`] has most likely lost a
//! NAT mapping; asking costs one small message, so a false alarm (a
//! burst of loss) is cheap, while every extra moment of waiting is a
//! frozen picture for the technician.

use core::time::Duration;

/// Nothing received for this long: the path is silent.
pub const SILENT_AFTER: Duration = Duration::from_millis(1200);
/// While the silence lasts, ask again this often (the peer's new address
/// may reach the rendezvous only after the first question).
pub const ASK_EVERY: Duration = Duration::from_millis(1000);

/// The state of one session's path, at times `T` (an `Instant` in the
/// shell, anything ordered in tests).
#[derive(Clone, Debug)]
pub struct Silence<T> {
    received: u64,
    last_heard: T,
    last_asked: Option<T>,
}

/// What to do after an observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The path lives (or the question was asked recently enough).
    Quiet,
    /// Ask where the peer is now.
    Ask,
    /// The path came back after a silence of this long.
    Back(Duration),
}

impl<T> Silence<T>
where
    T: Copy + Ord + core::ops::Sub<Output = Duration>,
{
    /// Watching from `now`, with `received` datagrams so far.
    pub fn new(now: T, received: u64) -> Silence<T> {
        Silence { received, last_heard: now, last_asked: None }
    }

    /// `received` datagrams have arrived by `now`.
    pub fn observe(&mut self, now: T, received: u64) -> Verdict {
        if received != self.received {
            self.received = received;
            let gap = now - self.last_heard;
            self.last_heard = now;
            return match self.last_asked.take() {
                Some(_) => Verdict::Back(gap),
                None => Verdict::Quiet,
            };
        }
        if now - self.last_heard < SILENT_AFTER {
            return Verdict::Quiet;
        }
        match self.last_asked {
            Some(t) if now - t < ASK_EVERY => Verdict::Quiet,
            _ => {
                self.last_asked = Some(now);
                Verdict::Ask
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds since the start.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Ms(u64);

    impl core::ops::Sub for Ms {
        type Output = Duration;
        fn sub(self, other: Ms) -> Duration {
            Duration::from_millis(self.0 - other.0)
        }
    }

    #[test]
    fn a_live_path_asks_nothing() {
        let mut s = Silence::new(Ms(0), 0);
        for (i, t) in (0..100).map(|i| (i, Ms(i * 900))) {
            assert_eq!(s.observe(t, i), Verdict::Quiet);
        }
    }

    #[test]
    fn silence_asks_then_again_each_second_and_the_return_says_how_long_it_took() {
        let mut s = Silence::new(Ms(0), 5);
        assert_eq!(s.observe(Ms(1199), 5), Verdict::Quiet);
        assert_eq!(s.observe(Ms(1200), 5), Verdict::Ask);
        assert_eq!(s.observe(Ms(1700), 5), Verdict::Quiet);
        assert_eq!(s.observe(Ms(2200), 5), Verdict::Ask);
        assert_eq!(s.observe(Ms(2900), 6), Verdict::Back(Duration::from_millis(2900)));
        assert_eq!(s.observe(Ms(3000), 7), Verdict::Quiet, "back is said once");
        assert_eq!(s.observe(Ms(4199), 7), Verdict::Quiet);
        assert_eq!(s.observe(Ms(4200), 7), Verdict::Ask, "a new silence is noticed again");
    }
}
