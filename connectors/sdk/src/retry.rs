//! Retries: exponential backoff with full jitter, so that connectors coming back together
//! (coverage returns in a valley) do not all knock at the same instant.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next wait: a random duration up to min(max, base × 2^attempt).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let mut bytes = [0u8; 8];
        // Without randomness the wait is the ceiling: slower, never wrong.
        if getrandom::fill(&mut bytes).is_err() {
            return ceiling;
        }
        let fraction = (u64::from_le_bytes(bytes) % 1_000_000) as f64 / 1_000_000.0;
        ceiling.mul_f64(fraction)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Whether a refusal of the hub can succeed later (retry) or not (dead-letter).
pub fn retryable(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unavailable
            | DeadlineExceeded
            | ResourceExhausted
            | Aborted
            | Unknown
            | Internal
            | Cancelled
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        for _ in 0..30 {
            assert!(b.next_delay() <= Duration::from_secs(5));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn refusals_for_bad_data_are_not_retried() {
        assert!(retryable(tonic::Code::Unavailable));
        assert!(!retryable(tonic::Code::InvalidArgument));
        assert!(!retryable(tonic::Code::PermissionDenied));
        assert!(!retryable(tonic::Code::FailedPrecondition));
    }
}
