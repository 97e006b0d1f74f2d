//! What each admin route needs of its caller (issue 26). Every admin handler takes `AdminAuth`,
//! which looks its route up here: a route missing from this table answers 500 to everyone, so a
//! new route cannot ship without a rule (and the role tests, generated from this table, cover it).
//! On a route with `{tenant}`, a tenant-limited operator must have that tenant; the tenant-less
//! reads (`/tenants`, `/audit`) show such an operator its tenants only; every other tenant-less
//! route needs an unlimited operator.

use crate::domain::operator::Need::{self, *};

/// (method, route pattern under `/admin/v1`, what it needs).
pub const RULES: &[(&str, &str, Need)] = &[
    ("GET", "/tenants", Read),
    ("PUT", "/tenants/{tenant}", Admin),
    ("GET", "/tenants/{tenant}", Read),
    ("DELETE", "/tenants/{tenant}", Admin),
    ("POST", "/tenants/{tenant}/api-keys", Develop),
    ("GET", "/tenants/{tenant}/api-keys", ReadKeys),
    ("DELETE", "/tenants/{tenant}/api-keys/{id}", Develop),
    ("GET", "/tenants/{tenant}/webhooks", ReadKeys),
    ("PUT", "/tenants/{tenant}/webhooks/{name}", Develop),
    ("GET", "/tenants/{tenant}/webhooks/{name}", ReadKeys),
    ("DELETE", "/tenants/{tenant}/webhooks/{name}", Develop),
    ("POST", "/tenants/{tenant}/webhooks/{name}/rotate-secret", Develop),
    ("GET", "/tenants/{tenant}/webhooks/{name}/deliveries", ReadKeys),
    ("POST", "/tenants/{tenant}/webhooks/{name}/deliveries/{id}/redeliver", Develop),
    ("GET", "/tenants/{tenant}/services", Read),
    ("PUT", "/tenants/{tenant}/services/{name}", Admin),
    ("GET", "/tenants/{tenant}/services/{name}", Read),
    ("DELETE", "/tenants/{tenant}/services/{name}", Admin),
    ("PUT", "/tenants/{tenant}/services/{name}/dispatch", Operate),
    ("GET", "/tenants/{tenant}/calendars", Read),
    ("PUT", "/tenants/{tenant}/calendars/{name}", Admin),
    ("GET", "/tenants/{tenant}/calendars/{name}", Read),
    ("DELETE", "/tenants/{tenant}/calendars/{name}", Admin),
    ("GET", "/tenants/{tenant}/call-in-groups", Read),
    ("PUT", "/tenants/{tenant}/call-in-groups/{name}", Admin),
    ("GET", "/tenants/{tenant}/call-in-groups/{name}", Read),
    ("DELETE", "/tenants/{tenant}/call-in-groups/{name}", Admin),
    ("GET", "/tenants/{tenant}/callbacks", Read),
    ("GET", "/tenants/{tenant}/callbacks/counts", Read),
    ("GET", "/tenants/{tenant}/callbacks/{id}", Read),
    ("POST", "/tenants/{tenant}/callbacks/cancel", Operate),
    ("POST", "/tenants/{tenant}/callbacks/redrive", Operate),
    ("PATCH", "/tenants/{tenant}/callbacks/{id}", Operate),
    ("POST", "/tenants/{tenant}/callbacks/{id}/reschedule", Operate),
    ("GET", "/tenants/{tenant}/call-in-requests", Read),
    ("POST", "/tenants/{tenant}/call-in-requests/cancel", Operate),
    ("GET", "/tenants/{tenant}/overview", Read),
    ("POST", "/tenants/{tenant}/erasure", Admin),
    ("GET", "/tenants/{tenant}/reports/outcomes", Read),
    ("GET", "/tenants/{tenant}/services/{name}/slots", Read),
    ("GET", "/tenants/{tenant}/services/{name}/availability", Read),
    ("GET", "/tenants/{tenant}/watermarks", Read),
    ("GET", "/audit", Read),
    ("GET", "/openapi.json", Read),
    ("GET", "/me", Read),
    ("GET", "/log-level", Admin),
    ("PUT", "/log-level", Admin),
    ("GET", "/operators", Admin),
    ("POST", "/operators", Admin),
    ("DELETE", "/operators/{name}", Admin),
    ("POST", "/faults/block-worker", Admin),
    ("POST", "/faults/panic", Admin),
    ("POST", "/faults/panic-task", Admin),
    ("POST", "/faults/stall-log-writer", Admin),
    ("POST", "/faults/fail-vq-proxy", Admin),
    ("POST", "/faults/stall-booking-batch", Admin),
    ("POST", "/faults/booking-batch", Admin),
    ("POST", "/faults/stall-booking-writer", Admin),
    ("POST", "/faults/fail-bulk-midway", Admin),
    ("POST", "/faults/poison-booking", Admin),
];

/// The admin routes' prefix.
pub const PREFIX: &str = "/admin/v1";

/// The rule of a route (`pattern` as the router matched it, with the prefix); `None`: it has none.
pub fn rule(method: &str, pattern: &str) -> Option<Need> {
    let path = pattern.strip_prefix(PREFIX)?;
    RULES.iter().find(|(m, p, _)| *m == method && *p == path).map(|(_, _, need)| *need)
}

/// The tenant-less routes a tenant-limited operator may call: reads that filter by tenant, the
/// admin API's description, and who the caller is.
pub fn filters_by_tenant(pattern: &str) -> bool {
    matches!(pattern.strip_prefix(PREFIX), Some("/tenants" | "/audit" | "/openapi.json" | "/me"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_one_rule_and_writes_are_never_for_everyone() {
        for (i, (method, path, need)) in RULES.iter().enumerate() {
            assert!(RULES[i + 1..].iter().all(|(m, p, _)| (m, p) != (method, path)), "{method} {path} has two rules");
            if *method != "GET" {
                assert_ne!(*need, Need::Read, "{method} {path} writes: it needs more than Read");
            }
        }
        assert_eq!(rule("GET", "/admin/v1/tenants/{tenant}"), Some(Need::Read));
        assert_eq!(rule("POST", "/admin/v1/tenants/{tenant}"), None);
    }

    /// The router and this table name the same routes: every admin route registered in
    /// `http/routes.rs` (read from its source, method by method) has a rule, and every rule a route.
    #[test]
    fn the_table_matches_the_router() {
        let source = include_str!("routes.rs");
        let mut registered = Vec::new();
        let mut current = None;
        for line in source.lines().map(str::trim) {
            if let Some(rest) = line.split("resource(\"").nth(1) {
                current = rest.split('"').next().map(str::to_string);
            }
            for method in ["get", "put", "post", "delete", "patch"] {
                if line.contains(&format!("web::{method}()")) {
                    if let Some(path) = &current {
                        registered.push((method.to_uppercase(), path.replace("{virtual_queue}", "{virtual-queue}")));
                    }
                }
            }
        }
        let admin_paths = |p: &str| {
            p.starts_with("/tenants")
                || ["/audit", "/log-level", "/operators", "/openapi.json", "/me"]
                    .iter()
                    .any(|a| p == *a || p.starts_with(&format!("{a}/")))
                || p.starts_with("/faults")
        };
        let registered: Vec<_> = registered.into_iter().filter(|(_, p)| admin_paths(p)).collect();
        for (method, path) in &registered {
            assert!(RULES.iter().any(|(m, p, _)| m == method && p == path), "{method} {path} has no role rule");
        }
        for (method, path, _) in RULES {
            assert!(
                registered.iter().any(|(m, p)| m == method && p == path),
                "the rule for {method} {path} names no route"
            );
        }
    }
}
