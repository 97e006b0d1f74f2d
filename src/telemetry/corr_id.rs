//! The current request's correlation id, held in a task-local for the request (`http::corr_id`
//! sets it) so every error envelope, log line and stored callback can carry it without threading
//! it through each call.

tokio::task_local! {
    static CORR_ID: String;
}

/// The current request's id ("-" outside a request).
pub fn current() -> String {
    CORR_ID.try_with(|c| c.clone()).unwrap_or_else(|_| "-".to_string())
}

/// Run `f` with `corr_id` as the current id.
pub async fn scope<F: std::future::Future>(corr_id: String, f: F) -> F::Output {
    CORR_ID.scope(corr_id, f).await
}
