//! Rate limits as pure state machines driven by a clock the caller passes in (milliseconds).

use std::collections::VecDeque;

/// A token bucket: `rate_per_s` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at time `now_ms`.
    pub fn full(burst: u32, now_ms: u64) -> Self {
        TokenBucket {
            tokens: f64::from(burst),
            last_ms: now_ms,
        }
    }

    /// Takes one token, or says how many milliseconds until one is there.
    pub fn take(&mut self, now_ms: u64, rate_per_s: u32, burst: u32) -> Result<(), u64> {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * f64::from(rate_per_s)).min(f64::from(burst));
        self.last_ms = self.last_ms.max(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if rate_per_s == 0 {
            return Err(u64::MAX);
        }
        let wait_s = (1.0 - self.tokens) / f64::from(rate_per_s);
        Err((wait_s * 1000.0).ceil().max(1.0) as u64)
    }

    /// Whether the bucket is full again at `now_ms` (so it can be forgotten).
    pub fn is_full(&self, now_ms: u64, rate_per_s: u32, burst: u32) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens + elapsed * f64::from(rate_per_s) >= f64::from(burst)
    }
}

/// Counts events in a sliding window: "`count` within `window_ms`" trips it.
#[derive(Debug, Clone, Default)]
pub struct SlidingCount {
    times: VecDeque<u64>,
}

impl SlidingCount {
    /// Records one event at `now_ms`; true when `count` have happened within `window_ms`.
    pub fn record(&mut self, now_ms: u64, count: u32, window_ms: u64) -> bool {
        while self.times.front().is_some_and(|&t| t + window_ms <= now_ms) {
            self.times.pop_front();
        }
        self.times.push_back(now_ms);
        // Bounded: never holds more than `count` entries.
        while self.times.len() > count as usize {
            self.times.pop_front();
        }
        self.times.len() >= count as usize
    }
}

/// Whether a typing notice at `now_ms` is forwarded, given the last forwarded one (1 per second).
pub fn typing_forwarded(last_ms: Option<u64>, now_ms: u64) -> bool {
    last_ms.is_none_or(|t| now_ms >= t + 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_full_bucket_allows_the_burst_then_refuses_with_a_wait() {
        let mut b = TokenBucket::full(3, 0);
        for _ in 0..3 {
            assert!(b.take(0, 10, 3).is_ok());
        }
        assert_eq!(b.take(0, 10, 3), Err(100));
        assert!(b.take(100, 10, 3).is_ok());
    }

    #[test]
    fn the_flood_window_trips_at_count_within_the_window() {
        let mut w = SlidingCount::default();
        for i in 0..4 {
            assert!(!w.record(i, 5, 10_000));
        }
        assert!(w.record(4, 5, 10_000));
        let mut slow = SlidingCount::default();
        assert!((0..10).all(|i| !slow.record(i * 3000, 5, 10_000)));
    }

    #[test]
    fn typing_is_forwarded_at_most_once_a_second() {
        assert!(typing_forwarded(None, 5));
        assert!(!typing_forwarded(Some(5), 900));
        assert!(typing_forwarded(Some(5), 1005));
    }

    proptest! {
        #[test]
        fn a_bucket_never_grants_more_than_burst_plus_rate_times_time(
            rate in 1u32..50, burst in 1u32..50, steps in proptest::collection::vec(0u64..200, 1..200)
        ) {
            let mut b = TokenBucket::full(burst, 0);
            let mut now = 0;
            let mut granted = 0u64;
            for s in steps {
                now += s;
                if b.take(now, rate, burst).is_ok() { granted += 1; }
            }
            let bound = u64::from(burst) + (now * u64::from(rate)).div_ceil(1000);
            prop_assert!(granted <= bound, "granted {} > {}", granted, bound);
        }
    }
}
