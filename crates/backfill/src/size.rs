//! Adaptive batch size: aim each batch at a target duration so its row
//! locks stay short, growing slowly and shrinking at once.
//!
//! After a full batch of `size` rows that took `elapsed`, the next size is
//! `size × target / elapsed`, at most ×1.2 (a table that gets slower
//! further in must not be met with a huge batch) and shrinking in full
//! proportion, clamped to `[min, max]`. A partial batch (the end of a
//! range) says nothing about speed and keeps the size.

use std::time::Duration;

/// How far one step may grow the batch.
pub const MAX_GROWTH: f64 = 1.2;

/// Bounds and target of the sizing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizing {
    /// The duration to aim at.
    pub target: Duration,
    /// Smallest size.
    pub min: u64,
    /// Largest size.
    pub max: u64,
}

impl Sizing {
    /// The size after a batch of `size` that scanned `scanned` rows in
    /// `elapsed`.
    pub fn next(&self, size: u64, scanned: u64, elapsed: Duration) -> u64 {
        if scanned < size {
            return size.clamp(self.min, self.max);
        }
        let ratio = if elapsed.is_zero() {
            MAX_GROWTH
        } else {
            (self.target.as_secs_f64() / elapsed.as_secs_f64()).min(MAX_GROWTH)
        };
        let next = (size as f64 * ratio).floor() as u64;
        // Growth of less than one row would never start.
        let next = if ratio > 1.0 && next == size {
            size + 1
        } else {
            next
        };
        next.clamp(self.min, self.max)
    }

    /// The size after a batch ran into its statement timeout: half, down
    /// to one row (below `min`: the timeout wins over the floor). `None`
    /// when it was one row already.
    pub fn split(&self, size: u64) -> Option<u64> {
        (size > 1).then_some(size / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Sizing = Sizing {
        target: Duration::from_millis(100),
        min: 10,
        max: 10_000,
    };

    #[test]
    fn grows_at_most_a_fifth_per_step() {
        assert_eq!(S.next(1000, 1000, Duration::from_millis(10)), 1200);
        assert_eq!(S.next(1000, 1000, Duration::ZERO), 1200);
        assert_eq!(S.next(1000, 1000, Duration::from_millis(90)), 1111);
        assert_eq!(S.next(10, 10, Duration::from_millis(99)), 11);
    }

    #[test]
    fn shrinks_in_proportion() {
        assert_eq!(S.next(1000, 1000, Duration::from_millis(400)), 250);
        assert_eq!(S.next(1000, 1000, Duration::from_secs(100)), 10);
    }

    #[test]
    fn clamps_and_ignores_partial_batches() {
        assert_eq!(S.next(9_000, 9_000, Duration::from_millis(1)), 10_000);
        assert_eq!(S.next(1000, 3, Duration::from_secs(5)), 1000);
    }

    #[test]
    fn split_halves_down_to_one() {
        assert_eq!(S.split(1000), Some(500));
        assert_eq!(S.split(3), Some(1));
        assert_eq!(S.split(1), None);
    }
}
