//! The HTTP edge: routes, extractors, middleware, one file per resource.

pub mod admin;
pub mod assets;
pub mod availability;
pub mod call_in;
pub mod callback_views;
pub mod callbacks;
pub mod clean_input;
pub mod client_address;
pub mod console;
pub mod corr_id;
pub mod create_request;
pub mod envelope;
pub mod extractors;
pub mod health;
pub mod internal;
pub mod middleware;
pub mod openapi;
pub mod platform;
pub mod queues;
pub mod roles;
pub mod routes;
pub mod ui;

/// Which listener a request came in on (`app_data` of each listener's app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything: public, admin, internal, `/metrics`.
    Internal,
    /// Public API and health only.
    External,
}

#[cfg(test)]
mod tests {
    /// docs/architecture.md's rule for the edge, as one search: a handler changes nothing but
    /// through `ops`; it may read the store (`get_…`, `list_…`, `count_…`) to render a row as is.
    /// The same as `grep -rnPzo 'store\s*\.\s*(?!get_|list_|count_)[a-z_]+\s*\(' src/http`.
    #[test]
    fn handlers_only_read_the_store() {
        let call = regex::Regex::new(r"store\s*\.\s*([a-z_]+)\s*\(").unwrap();
        let mut offenders = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http"))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for m in call.captures_iter(&text) {
                        let method = &m[1];
                        if !["get_", "list_", "count_"].iter().any(|p| method.starts_with(p)) {
                            offenders.push(format!("{}: store.{method}(…)", path.display()));
                        }
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "handlers must go through ops for this: {offenders:#?}");
    }
}
