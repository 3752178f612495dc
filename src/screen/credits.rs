//! When the capture thread may capture the next update: the agent's
//! window of screen updates on the way.
//!
//! Three bounds, all needed:
//! - at most [`IN_FLIGHT`] updates unacknowledged, so what is captured is
//!   sent at once instead of waiting in a queue;
//! - no update more than [`SPAN`]` - 1` sequence numbers past the oldest
//!   unacknowledged one. Small updates are acknowledged while a big one
//!   before them is still on the way (QUIC shares the path between
//!   streams), and the viewer applies updates in order: without this
//!   bound the updates it must hold grow without end behind the big one;
//! - bytes on the way within the [`LinkEstimate`]'s budget (at least one
//!   update), so on a slow uplink the newest pixels wait on the agent,
//!   where damage merges, instead of in the path as stale pictures.
//!
//! No I/O: time is a parameter.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::estimate::LinkEstimate;

/// Updates unacknowledged at once.
pub const IN_FLIGHT: usize = 2;
/// Sequence numbers an update may be ahead of the oldest unacknowledged
/// one (that one included).
pub const SPAN: u64 = 8;
/// Updates the viewer holds at most while waiting for an earlier one:
/// twice what a sender keeping to [`SPAN`] makes it hold.
pub const VIEWER_WAITING_MAX: usize = 2 * SPAN as usize;
/// Bytes the viewer holds at most while waiting for an earlier update.
pub const VIEWER_WAITING_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Size of an update while the path's rate is unknown (the first of a
/// session): half a second at 1 Mbit/s, nothing on a LAN, where the next
/// update's budget is ten times what this one proved.
pub const FIRST_BUDGET: usize = 64 * 1024;
/// The smallest update budget: below this the costs of an update (its
/// stream, its header) outweigh what a smaller slice would save.
pub const BUDGET_MIN: usize = 2 * 1024;

#[derive(Clone, Copy, Debug)]
struct Flight {
    bytes: u64,
    sent: Instant,
    /// Nothing else was on the way when it was sent.
    alone: bool,
}

/// The agent's window of screen updates on the way.
#[derive(Debug, Default)]
pub struct Credits {
    flights: BTreeMap<u64, Flight>,
    last_sent: u64,
    /// A capture allowed and not yet sent.
    granted: bool,
    estimate: LinkEstimate,
}

impl Credits {
    /// Nothing on the way.
    pub fn new() -> Credits {
        Credits::default()
    }

    /// Whether to allow one more capture now, and if so how many bytes
    /// its update should take: half the bytes the path may hold, so two
    /// updates on the way keep it busy without a queue. At most one
    /// capture is allowed ahead, so each decision sees the newest
    /// acknowledgements.
    pub fn grant(&mut self) -> Option<usize> {
        if self.granted || self.flights.len() >= IN_FLIGHT {
            return None;
        }
        let budget = self.estimate.budget();
        if let Some(&oldest) = self.flights.keys().next() {
            if self.last_sent + 1 - oldest >= SPAN {
                return None;
            }
            let on_the_way: u64 = self.flights.values().map(|f| f.bytes).sum();
            if budget.is_some_and(|b| on_the_way >= b) {
                return None;
            }
        }
        self.granted = true;
        Some(budget.map_or(FIRST_BUDGET, |b| (b / 2) as usize).max(BUDGET_MIN))
    }

    /// The capture thread sent update `seq` of `bytes` (using the grant).
    pub fn sent(&mut self, now: Instant, seq: u64, bytes: u64) {
        self.granted = false;
        self.last_sent = self.last_sent.max(seq);
        let alone = self.flights.is_empty();
        self.flights.insert(seq, Flight { bytes, sent: now, alone });
    }

    /// The viewer acknowledged update `seq`.
    pub fn acked(&mut self, now: Instant, seq: u64) {
        if let Some(f) = self.flights.remove(&seq) {
            self.estimate.on_ack(now, f.sent, f.bytes, f.alone);
        }
    }

    /// A round trip measured by the transport.
    pub fn on_rtt(&mut self, now: Instant, rtt: Duration) {
        self.estimate.on_rtt(now, rtt);
    }

    /// The link as the screen updates see it.
    pub fn estimate(&self) -> &LinkEstimate {
        &self.estimate
    }

    /// How long the oldest update on the way has been: how far the
    /// viewer's picture is behind, at least.
    pub fn behind(&self, now: Instant) -> Duration {
        self.flights.values().map(|f| now.saturating_duration_since(f.sent)).max().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_updates_on_the_way_and_one_grant_ahead() {
        let now = Instant::now();
        let mut c = Credits::new();
        assert_eq!(c.grant(), Some(FIRST_BUDGET));
        assert!(c.grant().is_none(), "one grant at a time");
        c.sent(now, 1, 100);
        assert!(c.grant().is_some());
        c.sent(now, 2, 100);
        assert!(c.grant().is_none(), "two unacknowledged");
        c.acked(now, 2);
        assert!(c.grant().is_some());
    }

    #[test]
    fn small_updates_never_run_more_than_the_span_past_a_big_one() {
        let now = Instant::now();
        let mut c = Credits::new();
        // A fast path: bytes are no bound here.
        assert!(c.grant().is_some());
        c.sent(now, 1, 100_000_000);
        c.acked(now + Duration::from_millis(10), 1);
        assert!(c.grant().is_some());
        c.sent(now, 2, 5_000_000);
        // Each small one is acknowledged while update 2 is still on the way.
        let mut seq = 2;
        while c.grant().is_some() {
            seq += 1;
            c.sent(now, seq, 300);
            c.acked(now, seq);
        }
        assert_eq!(seq, 1 + SPAN, "updates 3..={} sent, then the window is closed", 1 + SPAN);
        c.acked(now + Duration::from_secs(3), 2);
        assert!(c.grant().is_some());
    }

    #[test]
    fn bytes_on_the_way_stay_within_the_budget_but_one_update_always_goes() {
        let t0 = Instant::now();
        let mut c = Credits::new();
        // Teach it a 125 kB/s path with a 30 ms round trip.
        let mut now = t0;
        for seq in 1..=20 {
            assert!(c.grant().is_some());
            c.on_rtt(now, Duration::from_millis(30));
            c.sent(now, seq, 12_500);
            now += Duration::from_millis(130);
            c.acked(now, seq);
        }
        let budget = c.estimate().budget().unwrap();
        assert!((6_000..9_000).contains(&budget), "{budget}");
        // Each update is asked to take half of that.
        let slice = c.grant().unwrap();
        assert_eq!(slice, (budget / 2) as usize);
        // A 50 kB update is over the budget on its own: it went, the next waits.
        c.sent(now, 21, 50_000);
        assert!(c.grant().is_none());
        assert!(c.behind(now + Duration::from_millis(200)) >= Duration::from_millis(200));
        c.acked(now + Duration::from_millis(430), 21);
        assert!(c.grant().is_some());
    }
}
