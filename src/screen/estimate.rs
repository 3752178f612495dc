//! What the path to the viewer carries, learnt from the screen updates'
//! own acknowledgements: a delivery rate, the round trip of an empty path,
//! and from them how many bytes of screen updates may be on the way.
//!
//! An update of `b` bytes sent at `s` and acknowledged at `a` crossed the
//! path in `a - s`: one round trip plus `b / rate` on an idle path, or,
//! behind an update still on the way, from the previous acknowledgement on.
//! The rate is the bytes of recent updates over the time the path spent
//! carrying them (big updates weigh most, and a small one that slipped
//! through a shaper's burst does not make the path look fast). The bound
//! on bytes on the way is about two bandwidth-delay products: enough to
//! keep the path busy, never a queue of stale pictures.
//!
//! No I/O: time is a parameter, so the tests drive a modelled link in
//! memory.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Delivery samples older than this are forgotten: a path that slowed
/// down is seen within this long.
pub const RATE_WINDOW: Duration = Duration::from_secs(2);
/// Round-trip samples older than this are forgotten (a path that moved
/// may be longer).
pub const RTT_WINDOW: Duration = Duration::from_secs(10);
/// Bytes on the way are bounded to what the path delivers in this many
/// round trips.
pub const ROUND_TRIPS: u32 = 2;
/// ...or in this long, whichever is more: on a LAN the round trip is
/// tens of microseconds, and a bound that small would only add waits.
pub const BUDGET_FLOOR: Duration = Duration::from_millis(10);
/// Transfer times below this are timer and scheduling noise: such an
/// update only says the path carries at least its bytes in this long.
const TRANSFER_MIN: Duration = Duration::from_millis(1);
/// Samples kept at most.
const SAMPLES_MAX: usize = 64;
/// Delivery samples kept however old: the rate known before a pause.
const KEEP_MIN: usize = 8;

/// One acknowledged update.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    bytes: u64,
    transfer: Duration,
}

/// The estimate of the path the screen updates take.
#[derive(Debug, Default)]
pub struct LinkEstimate {
    samples: VecDeque<Sample>,
    /// Rates the path carried at least (updates too quick to time).
    floors: VecDeque<(Instant, f64)>,
    rtts: VecDeque<(Instant, Duration)>,
    last_ack: Option<Instant>,
    behind: Duration,
}

impl LinkEstimate {
    /// Nothing known yet: no bound on bytes until the first samples.
    pub fn new() -> LinkEstimate {
        LinkEstimate::default()
    }

    /// A round-trip time measured by the transport.
    pub fn on_rtt(&mut self, now: Instant, rtt: Duration) {
        if rtt.is_zero() {
            return;
        }
        self.rtts.push_back((now, rtt));
        self.forget(now);
    }

    /// An update of `bytes` sent at `sent` was acknowledged at `now`;
    /// `alone`: no other update was on the way when it was sent.
    pub fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, alone: bool) {
        let crossing = now.saturating_duration_since(sent);
        self.rtts.push_back((now, crossing));
        // The path was busy with this update since it was sent (after one
        // round trip's latency) or since the one before it arrived.
        let start = match self.last_ack {
            Some(prev) if prev > sent => prev.max(sent + self.base_rtt().unwrap_or_default()),
            _ => sent + self.base_rtt().unwrap_or_default(),
        };
        let transfer = now.saturating_duration_since(start);
        if transfer < TRANSFER_MIN && alone {
            self.floors.push_back((now, bytes as f64 / TRANSFER_MIN.as_secs_f64()));
        } else {
            // Updates on the way together are acknowledged in any order,
            // the last of them at once after the one before: each alone
            // says little, their sums say what the path carried.
            self.samples.push_back(Sample { at: now, bytes, transfer });
        }
        self.last_ack = Some(self.last_ack.map_or(now, |a| a.max(now)));
        self.behind = crossing.saturating_sub(self.base_rtt().unwrap_or_default());
        self.forget(now);
    }

    fn forget(&mut self, now: Instant) {
        // After a pause the last samples stay: one small update's timing
        // alone would make a poor estimate.
        while self.samples.len() > KEEP_MIN
            && self.samples.front().is_some_and(|s| now.saturating_duration_since(s.at) > RATE_WINDOW)
            || self.samples.len() > SAMPLES_MAX
        {
            self.samples.pop_front();
        }
        while self.floors.front().is_some_and(|f| now.saturating_duration_since(f.0) > RATE_WINDOW)
            || self.floors.len() > SAMPLES_MAX
        {
            self.floors.pop_front();
        }
        while self.rtts.front().is_some_and(|r| now.saturating_duration_since(r.0) > RTT_WINDOW)
            || self.rtts.len() > SAMPLES_MAX
        {
            self.rtts.pop_front();
        }
    }

    /// The round trip of the empty path: the shortest seen lately.
    pub fn base_rtt(&self) -> Option<Duration> {
        self.rtts.iter().map(|r| r.1).min()
    }

    /// Bytes per second the path delivered lately, if it carried anything.
    pub fn rate(&self) -> Option<f64> {
        let bytes: u64 = self.samples.iter().map(|s| s.bytes).sum();
        let time: f64 = self.samples.iter().map(|s| s.transfer.as_secs_f64()).sum();
        let timed = (time > 0.0).then(|| bytes as f64 / time);
        let floor = self.floors.iter().map(|f| f.1).reduce(f64::max);
        match (timed, floor) {
            (Some(t), Some(f)) => Some(t.max(f)),
            (t, f) => t.or(f),
        }
    }

    /// How much longer than an empty path's round trip the newest
    /// acknowledged update took: the queue in front of it.
    pub fn queue_delay(&self) -> Duration {
        self.behind
    }

    /// Bytes of screen updates that may be on the way at once, `None`
    /// while the rate is unknown.
    pub fn budget(&self) -> Option<u64> {
        let rate = self.rate()?;
        let span = (self.base_rtt().unwrap_or_default() * ROUND_TRIPS).max(BUDGET_FLOOR);
        Some((rate * span.as_secs_f64()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path of `rate` bytes per second and `rtt`, one queue in front of
    /// it: each update leaves when the ones before it have.
    struct Path {
        rate: f64,
        rtt: Duration,
        free_at: Instant,
    }

    impl Path {
        /// When an update of `bytes` sent at `at` is acknowledged.
        fn carry(&mut self, at: Instant, bytes: u64) -> Instant {
            let start = self.free_at.max(at);
            self.free_at = start + Duration::from_secs_f64(bytes as f64 / self.rate);
            self.free_at + self.rtt
        }
    }

    fn near(value: f64, want: f64, tolerance: f64) -> bool {
        (value - want).abs() <= want * tolerance
    }

    #[test]
    fn a_steady_link_gives_its_rate_and_two_round_trips_of_bytes() {
        let t0 = Instant::now();
        let mut path = Path { rate: 125_000.0, rtt: Duration::from_millis(30), free_at: t0 };
        let mut e = LinkEstimate::new();
        assert_eq!(e.budget(), None);
        // Updates of 2 to 40 kB, one every 100 ms, two on the way at times.
        let mut now = t0;
        for i in 0..40u64 {
            let bytes = 2_000 + (i * 7_919) % 38_000;
            let acked = path.carry(now, bytes);
            e.on_rtt(now, Duration::from_millis(31));
            e.on_ack(acked, now, bytes, false);
            now += Duration::from_millis(100);
        }
        assert!(near(e.rate().unwrap(), 125_000.0, 0.1), "{:?}", e.rate());
        let base = e.base_rtt().unwrap();
        assert!(base >= Duration::from_millis(30) && base <= Duration::from_millis(31), "{base:?}");
        let budget = e.budget().unwrap();
        assert!(near(budget as f64, 125_000.0 * 0.060, 0.15), "{budget}");
    }

    #[test]
    fn a_rate_drop_is_seen_within_the_window() {
        let t0 = Instant::now();
        let mut path = Path { rate: 2_000_000.0, rtt: Duration::from_millis(20), free_at: t0 };
        let mut e = LinkEstimate::new();
        let mut now = t0;
        for _ in 0..30 {
            e.on_rtt(now, Duration::from_millis(20));
            e.on_ack(path.carry(now, 50_000), now, 50_000, false);
            now += Duration::from_millis(50);
        }
        assert!(near(e.rate().unwrap(), 2_000_000.0, 0.1));
        path.rate = 250_000.0;
        path.free_at = path.free_at.max(now);
        for _ in 0..30 {
            let acked = path.carry(now, 20_000);
            e.on_rtt(now, Duration::from_millis(21));
            e.on_ack(acked, now, 20_000, false);
            // The next update is captured once this one is acknowledged.
            now = acked;
        }
        assert!(near(e.rate().unwrap(), 250_000.0, 0.1), "{:?}", e.rate());
    }

    #[test]
    fn a_queue_building_up_shows_as_delay_not_as_a_longer_path() {
        let t0 = Instant::now();
        let mut path = Path { rate: 125_000.0, rtt: Duration::from_millis(30), free_at: t0 };
        let mut e = LinkEstimate::new();
        // One small update on an idle path sets the base round trip.
        e.on_ack(path.carry(t0, 200), t0, 200, false);
        // Then 100 kB every 100 ms on a path that carries 12.5 kB in that time.
        let mut now = t0 + Duration::from_millis(100);
        for _ in 0..10 {
            e.on_ack(path.carry(now, 100_000), now, 100_000, false);
            now += Duration::from_millis(100);
        }
        assert!(e.base_rtt().unwrap() < Duration::from_millis(35));
        assert!(e.queue_delay() > Duration::from_secs(5), "{:?}", e.queue_delay());
        assert!(near(e.rate().unwrap(), 125_000.0, 0.1), "{:?}", e.rate());
        assert!(e.budget().unwrap() < 10_000);
    }

    #[test]
    fn loss_slows_delivery_and_the_estimate_follows() {
        // A lost packet is sent again a round trip later: the update takes
        // that much longer, and the rate seen is what the path delivered.
        let t0 = Instant::now();
        let mut path = Path { rate: 500_000.0, rtt: Duration::from_millis(40), free_at: t0 };
        let mut e = LinkEstimate::new();
        let mut now = t0;
        for i in 0..20 {
            e.on_rtt(now, Duration::from_millis(40));
            let mut acked = path.carry(now, 30_000);
            if i % 2 == 0 {
                acked += Duration::from_millis(40);
                path.free_at += Duration::from_millis(40);
            }
            e.on_ack(acked, now, 30_000, false);
            now = acked;
        }
        let rate = e.rate().unwrap();
        // 30 kB in 60 ms, then in 100 ms: 375 kB/s on average.
        assert!(near(rate, 375_000.0, 0.1), "{rate}");
    }

    #[test]
    fn a_lan_is_not_bounded_below_ten_milliseconds_of_its_rate() {
        let t0 = Instant::now();
        let mut path = Path { rate: 100_000_000.0, rtt: Duration::from_micros(60), free_at: t0 };
        let mut e = LinkEstimate::new();
        let mut now = t0;
        for _ in 0..20 {
            e.on_rtt(now, Duration::from_micros(60));
            e.on_ack(path.carry(now, 500_000), now, 500_000, false);
            now += Duration::from_millis(16);
        }
        assert!(e.budget().unwrap() >= 900_000, "{:?}", e.budget());
    }

    #[test]
    fn updates_on_the_way_together_and_acknowledged_out_of_order_give_the_paths_rate() {
        // 125 kB/s, 30 ms: a 32 kB and a 16 kB update sent together share
        // the path and arrive together, the small one a moment first.
        let t0 = Instant::now();
        let mut e = LinkEstimate::new();
        let mut now = t0;
        for _ in 0..5 {
            e.on_rtt(now, Duration::from_millis(30));
            let done = now + Duration::from_millis(30 + 384);
            e.on_ack(done, now, 16_000, true);
            e.on_ack(done + Duration::from_micros(100), now, 32_000, false);
            now = done + Duration::from_millis(50);
        }
        let rate = e.rate().unwrap();
        assert!(near(rate, 125_000.0, 0.1), "{rate}");
    }

    #[test]
    fn after_a_pause_one_small_update_does_not_replace_what_was_known() {
        let t0 = Instant::now();
        let mut path = Path { rate: 125_000.0, rtt: Duration::from_millis(30), free_at: t0 };
        let mut e = LinkEstimate::new();
        let mut now = t0;
        for _ in 0..20 {
            e.on_rtt(now, Duration::from_millis(30));
            let acked = path.carry(now, 12_000);
            e.on_ack(acked, now, 12_000, true);
            now = acked;
        }
        // Ten quiet seconds, then a key's echo whose timing is mostly jitter.
        now += Duration::from_secs(10);
        e.on_rtt(now, Duration::from_millis(30));
        e.on_ack(now + Duration::from_micros(31_200), now, 300, true);
        assert!(near(e.rate().unwrap(), 125_000.0, 0.15), "{:?}", e.rate());
    }

    #[test]
    fn updates_too_quick_to_time_raise_the_rate_they_prove() {
        let t0 = Instant::now();
        let mut e = LinkEstimate::new();
        e.on_rtt(t0, Duration::from_micros(50));
        // 64 kB acknowledged 0.2 ms after it was sent: at least 64 MB/s.
        e.on_ack(t0 + Duration::from_micros(200), t0, 64_000, true);
        assert!(e.rate().unwrap() >= 64_000_000.0);
        // A slow, timed sample does not pull it down while the floor holds.
        let t1 = t0 + Duration::from_millis(100);
        e.on_ack(t1 + Duration::from_millis(20), t1, 10_000, false);
        assert!(e.rate().unwrap() >= 64_000_000.0);
        // The floor is forgotten with the window.
        let t2 = t0 + RATE_WINDOW + Duration::from_millis(50);
        e.on_ack(t2 + Duration::from_millis(20), t2, 10_000, false);
        assert!(e.rate().unwrap() < 1_000_000.0, "{:?}", e.rate());
    }
}
