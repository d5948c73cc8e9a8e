//! Trying a request again when the failure is passing: an overloaded model, a server fault, a reset connection, or a
//! per-minute quota that says when to come back. Never a request the server understood and refused (400, 401, 403,
//! 404), and never a 429 without retry details: that is a used-up quota or credit, and waiting does not help.

use std::future::Future;
use std::time::Duration;

use super::Progress;
use super::error::GeminiError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (`retries` + 1).
    pub attempts: u32,
    /// The wait before the first retry; it doubles each time.
    pub base_delay: Duration,
    /// The longest backoff wait.
    pub max_delay: Duration,
    /// A server asking for a longer wait than this is not waited for: the error is reported instead.
    pub max_server_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_server_delay: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before attempt `attempt + 1`, or `None` when `error` is final.
    pub fn wait(&self, attempt: u32, error: &GeminiError) -> Option<Duration> {
        if attempt >= self.attempts || !error.is_retryable() {
            return None;
        }
        if let Some(asked) = error.retry_delay() {
            return (asked <= self.max_server_delay).then_some(asked);
        }
        // Exponential backoff with jitter, so many clients hit by the same overload do not come back in step.
        let exponent = attempt.saturating_sub(1).min(16);
        let full = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        Some(full.mul_f64(0.5 + 0.5 * jitter()))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the attempts run out. Each wait is announced through
    /// `progress`; dropping the returned future (Ctrl-C) ends a wait at once.
    pub async fn run<T, F, Fut>(
        &self,
        progress: &dyn Fn(Progress<'_>),
        mut attempt: F,
    ) -> Result<T, GeminiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GeminiError>>,
    {
        let mut number = 1;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let Some(wait) = self.wait(number, &error) else {
                return Err(if number > 1 {
                    GeminiError::GaveUp {
                        attempts: number,
                        last: Box::new(error),
                    }
                } else {
                    error
                });
            };
            number += 1;
            progress(Progress::Retrying {
                wait,
                attempt: number,
                attempts: self.attempts,
                reason: error.short(),
            });
            tokio::time::sleep(wait).await;
        }
    }
}

/// A number in [0, 1) that differs between calls and processes. Std's hasher is seeded randomly per process; the
/// clock makes successive calls differ.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(nanos);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;
    use crate::gemini::ApiError;

    fn api(status: u16, body: &str) -> GeminiError {
        GeminiError::Api(ApiError::from_body(status, body.as_bytes()))
    }

    fn overloaded() -> GeminiError {
        api(
            503,
            r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
        )
    }

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn what_is_retried() {
        let policy = RetryPolicy::default();
        assert!(policy.wait(1, &overloaded()).is_some());
        for status in [500, 502, 504] {
            assert!(policy.wait(1, &api(status, "")).is_some(), "{status}");
        }
        for status in [400, 401, 403, 404] {
            assert!(policy.wait(1, &api(status, "")).is_none(), "{status}");
        }
        let depleted = api(
            429,
            r#"{"error":{"code":429,"message":"Your prepayment credits are depleted.","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        assert!(policy.wait(1, &depleted).is_none());
        let fixture = crate::test_support::fixture("error-429-retry-info.json");
        let quota = GeminiError::Api(ApiError::from_body(429, &fixture));
        assert_eq!(policy.wait(1, &quota), Some(Duration::from_millis(34_400)));
        let reset = GeminiError::Transport {
            host: "h".into(),
            reason: "connection reset".into(),
            retryable: true,
        };
        assert!(policy.wait(1, &reset).is_some());
        assert!(policy.wait(5, &reset).is_none(), "attempts are bounded");
        assert!(policy.wait(1, &GeminiError::Incomplete(2)).is_none());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            attempts: 20,
            ..RetryPolicy::default()
        };
        for (attempt, full) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 30.0)] {
            let wait = policy.wait(attempt, &overloaded()).unwrap().as_secs_f64();
            assert!(
                wait >= full / 2.0 && wait <= full,
                "attempt {attempt}: {wait}"
            );
        }
        let long = api(
            429,
            r#"{"error":{"code":429,"message":"slow down","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"3600s"}]}}"#,
        );
        assert!(policy.wait(1, &long).is_none(), "an hour is not waited for");
    }

    #[tokio::test]
    async fn retries_until_success_and_announces_each_wait() {
        let calls = Cell::new(0);
        let said = RefCell::new(Vec::new());
        let progress = |p: Progress<'_>| {
            if let Progress::Retrying {
                attempt,
                attempts,
                reason,
                ..
            } = p
            {
                said.borrow_mut()
                    .push(format!("({attempt}/{attempts}): {reason}"));
            }
        };
        let result = fast(5)
            .run(&progress, || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { if n < 3 { Err(overloaded()) } else { Ok(n) } }
            })
            .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(
            said.into_inner(),
            [
                "(2/5): 503 The model is overloaded",
                "(3/5): 503 The model is overloaded"
            ]
        );
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt_and_fails_final_errors_at_once() {
        let calls = Cell::new(0);
        let result: Result<(), _> = fast(3)
            .run(&|_| {}, || {
                calls.set(calls.get() + 1);
                async { Err(overloaded()) }
            })
            .await;
        assert_eq!(calls.get(), 3);
        let message = result.unwrap_err().to_string();
        assert!(
            message.starts_with("gave up after 3 attempts: 503"),
            "{message}"
        );

        calls.set(0);
        let result: Result<(), _> = fast(3)
            .run(&|_| {}, || {
                calls.set(calls.get() + 1);
                async { Err(api(400, r#"{"error":{"message":"bad"}}"#)) }
            })
            .await;
        assert_eq!(calls.get(), 1);
        assert!(matches!(result, Err(GeminiError::Api(_))));
    }
}
