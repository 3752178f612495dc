//! Rate limits, without I/O: token buckets, alone or keyed by address.
//!
//! A flood from one address must not take the service down for others, so
//! every costly thing (new connections, messages, requests) draws from a
//! bucket; time comes in as a parameter.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
    rate: Rate,
}

/// How fast a bucket refills and how much it holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens held.
    pub burst: f64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Bucket {
        Bucket { tokens: rate.burst, last: now, rate }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        self.last = now;
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.rate.burst
    }
}

/// One bucket per key (an IP address), in a map of bounded size.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    rate: Rate,
    buckets: HashMap<K, Bucket>,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter tracking at most `max_keys` keys.
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        KeyedLimiter { rate, buckets: HashMap::new(), max_keys }
    }

    /// Takes a token for `key`. When the map is full, buckets that have
    /// refilled completely are forgotten first (they carry no history); if
    /// none has, the new key is refused: under a flood from many addresses,
    /// addresses already known keep their service.
    pub fn take(&mut self, key: &K, now: Instant) -> bool {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.buckets.retain(|_, b| !b.is_full(now));
            if self.buckets.len() >= self.max_keys {
                return false;
            }
        }
        let rate = self.rate;
        self.buckets.entry(key.clone()).or_insert_with(|| Bucket::new(rate, now)).take(now)
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const RATE: Rate = Rate { per_second: 10.0, burst: 5.0 };

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t = Instant::now();
        let mut b = Bucket::new(RATE, t);
        assert_eq!((0..10).filter(|_| b.take(t)).count(), 5);
        assert!(!b.take(t + Duration::from_millis(50)));
        assert!(b.take(t + Duration::from_millis(100)));
        assert_eq!((0..10).filter(|_| b.take(t + Duration::from_secs(60))).count(), 5, "never above burst");
    }

    #[test]
    fn one_flooding_key_does_not_starve_another() {
        let t = Instant::now();
        let mut l = KeyedLimiter::new(RATE, 100);
        assert_eq!((0..1000).filter(|_| l.take(&"flood", t)).count(), 5);
        assert!(l.take(&"customer", t));
    }

    #[test]
    fn map_stays_bounded_and_forgets_idle_keys_first() {
        let t = Instant::now();
        let mut l = KeyedLimiter::new(RATE, 3);
        for k in 0..3 {
            assert!(l.take(&k, t));
        }
        assert!(!l.take(&99, t), "full of active keys: a new key waits");
        assert!(l.take(&99, t + Duration::from_secs(1)), "idle keys were forgotten");
        assert!(l.len() <= 3);
    }
}
