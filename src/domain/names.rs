//! Names of tenants, services, virtual queues, calendars and groups: 1–64 of `[A-Za-z0-9._-]`,
//! case-sensitive (existing GES set-ups use mixed case).

pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub fn check_name(field: &str, name: &str) -> Result<(), crate::error::ApiError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(crate::error::ApiError::field(field, "must be 1-64 characters of A-Z a-z 0-9 . _ -"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        assert!(is_valid_name("Sales_EMEA.vq-1"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name(&"x".repeat(65)));
        assert!(!is_valid_name("émile"));
    }
}
