//! The per-room reorder buffer: hands events on strictly in `seq` order, holding early ones.

use std::collections::BTreeMap;

/// Holds events that arrive ahead of a gap until the gap is filled or skipped.
#[derive(Debug, Clone)]
pub struct Reorder<T> {
    next: Option<u64>,
    held: BTreeMap<u64, T>,
    cap: usize,
}

impl<T> Reorder<T> {
    /// A buffer that has delivered nothing yet and holds at most `cap` early events.
    pub fn new(cap: usize) -> Self {
        Reorder {
            next: None,
            held: BTreeMap::new(),
            cap: cap.max(1),
        }
    }

    /// A buffer whose next expected seq is `next`.
    pub fn starting_at(next: u64, cap: usize) -> Self {
        Reorder {
            next: Some(next),
            ..Self::new(cap)
        }
    }

    /// The next seq it will deliver, if known.
    pub fn next(&self) -> Option<u64> {
        self.next
    }

    /// Offers one event; returns the events now deliverable, in order.
    /// The first event offered to a new buffer sets where it starts.
    pub fn offer(&mut self, seq: u64, item: T) -> Vec<(u64, T)> {
        let next = *self.next.get_or_insert(seq);
        if seq < next || self.held.contains_key(&seq) {
            return Vec::new();
        }
        self.held.insert(seq, item);
        let out = self.drain();
        if self.held.len() > self.cap {
            // Too far ahead: give up on the gap and let receivers fill it themselves.
            return out.into_iter().chain(self.skip_gap()).collect();
        }
        out
    }

    /// The missing range `(from, to)` inclusive, when events are held behind a gap.
    pub fn gap(&self) -> Option<(u64, u64)> {
        let next = self.next?;
        let (&first, _) = self.held.first_key_value()?;
        (first > next).then(|| (next, first - 1))
    }

    /// Delivers everything held, jumping over the gap.
    pub fn skip_gap(&mut self) -> Vec<(u64, T)> {
        if let Some((&first, _)) = self.held.first_key_value() {
            self.next = Some(first);
        }
        self.drain()
    }

    fn drain(&mut self) -> Vec<(u64, T)> {
        let mut out = Vec::new();
        while let Some(next) = self.next {
            match self.held.remove(&next) {
                Some(item) => {
                    out.push((next, item));
                    self.next = Some(next + 1);
                }
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_early_event_waits_for_the_gap_to_close() {
        let mut r = Reorder::starting_at(5, 10);
        assert!(r.offer(6, "b").is_empty());
        assert_eq!(r.gap(), Some((5, 5)));
        assert_eq!(r.offer(5, "a"), vec![(5, "a"), (6, "b")]);
        assert_eq!(r.gap(), None);
        assert!(r.offer(5, "a").is_empty(), "a repeat is dropped");
    }

    #[test]
    fn skipping_a_gap_delivers_what_is_held() {
        let mut r = Reorder::starting_at(1, 10);
        r.offer(3, 'c');
        r.offer(4, 'd');
        assert_eq!(r.skip_gap(), vec![(3, 'c'), (4, 'd')]);
        assert_eq!(r.next(), Some(5));
    }

    #[test]
    fn holding_more_than_the_cap_skips_the_gap() {
        let mut r = Reorder::starting_at(1, 2);
        assert!(r.offer(3, ()).is_empty());
        assert!(r.offer(4, ()).is_empty());
        assert_eq!(r.offer(5, ()).len(), 3);
    }

    proptest! {
        #[test]
        fn any_arrival_order_with_repeats_comes_out_once_in_order(
            order in Just((1u64..=40).collect::<Vec<_>>()).prop_shuffle(),
            repeats in proptest::collection::vec(1u64..=40, 0..20),
        ) {
            let mut r = Reorder::starting_at(1, 100);
            let mut out = Vec::new();
            for s in order.into_iter().chain(repeats) {
                out.extend(r.offer(s, s).into_iter().map(|(s, _)| s));
            }
            prop_assert_eq!(out, (1..=40).collect::<Vec<_>>());
        }
    }
}
