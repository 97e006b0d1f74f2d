//! The request's correlation id: taken from `x-correlation-id` when it is 1–64 of
//! `[A-Za-z0-9._-]`, else a new UUID v7. Held in a task-local for the request so every error
//! envelope and log line can carry it without threading it through each call.

tokio::task_local! {
    static CORR_ID: String;
}

pub const HEADER: &str = "x-correlation-id";

pub fn from_header(value: Option<&str>) -> String {
    match value {
        Some(v) if crate::domain::names::is_valid_name(v) => v.to_string(),
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

/// The current request's id ("-" outside a request).
pub fn current() -> String {
    CORR_ID.try_with(|c| c.clone()).unwrap_or_else(|_| "-".to_string())
}

pub async fn scope<F: std::future::Future>(corr_id: String, f: F) -> F::Output {
    CORR_ID.scope(corr_id, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_ids_are_taken_over() {
        assert_eq!(from_header(Some("abc-123_x.y")), "abc-123_x.y");
        assert_ne!(from_header(Some("has space")), "has space");
        assert_eq!(from_header(Some(&"a".repeat(65))).len(), 36);
        assert_eq!(from_header(None).len(), 36);
    }
}
