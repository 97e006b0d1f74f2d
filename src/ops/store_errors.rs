//! What a client is answered when the store fails: the mapping from the store's errors to the
//! API's, kept here (not in the store, which knows nothing of HTTP answers).

use crate::error::ApiError;
use crate::store::StoreError;

/// How a store failure reaches a client: 503 `UNAVAILABLE` while the database is down or slow,
/// else a 500 whose cause is logged (with the corrId), never shown.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) | StoreError::Contention(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::unavailable()
            }
            StoreError::Shed(cause) => {
                tracing::debug!(error = %cause, "booking not attempted");
                ApiError::unavailable()
            }
            // The breaker logs the outage once, when it opens; not once per refused request.
            StoreError::Down(cause) | StoreError::NoConnection(cause) => {
                tracing::debug!(error = %cause, "database down");
                ApiError::unavailable()
            }
            StoreError::Other(cause) => {
                tracing::error!(error = format!("{cause:#}"), "store error");
                ApiError::internal()
            }
        }
    }
}
