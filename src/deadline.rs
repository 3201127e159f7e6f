//! Waiting for an optional deadline inside `select!`.

use tokio::time::Instant;

/// Sleeps until `deadline`, or forever when there is none (pair it with an
/// `if deadline.is_some()` guard, or let other branches win).
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
