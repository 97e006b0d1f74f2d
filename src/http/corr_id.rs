//! The request's correlation id: taken from `x-correlation-id` when it is 1–64 of
//! `[A-Za-z0-9._-]`, else a new UUID v7. Held for the request by `telemetry::request_context`.

pub const HEADER: &str = "x-correlation-id";

pub fn from_header(value: Option<&str>) -> String {
    match value {
        Some(v) if crate::domain::names::is_valid_name(v) => v.to_string(),
        _ => uuid::Uuid::now_v7().to_string(),
    }
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
