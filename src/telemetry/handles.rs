//! Metric handles for the request path, resolved once and reused (issue 25). A `metrics` macro
//! with labels allocates its label strings and hashes the whole key into the registry on every
//! call; a handle is a reference to the series' storage. Handles are kept per thread (each actix
//! worker is a thread of its own, so no lock), looked up by a hash of the name and label values
//! without allocating, and the table is emptied when it passes `MAX_ENTRIES` (tenants come and go;
//! an emptied table only costs the next lookups a registry visit). The exporter never drops a
//! series (no idle timeout), so a kept handle always counts into what `/metrics` renders.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use metrics::{Counter, Histogram, Label};

const MAX_ENTRIES: usize = 4096;

struct Entry<T> {
    name: &'static str,
    values: Vec<String>,
    handle: T,
}

type Table<T> = RefCell<HashMap<u64, Vec<Entry<T>>>>;

thread_local! {
    static COUNTERS: Table<Counter> = RefCell::new(HashMap::new());
    static HISTOGRAMS: Table<Histogram> = RefCell::new(HashMap::new());
}

/// The counter `name` with `labels` (always the same keys, in the same order, for one name).
pub fn counter(name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
    COUNTERS.with(|table| lookup(table, name, labels, || metrics::counter!(name, owned(labels))))
}

/// The histogram `name` with `labels` (always the same keys, in the same order, for one name).
pub fn histogram(name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
    HISTOGRAMS.with(|table| lookup(table, name, labels, || metrics::histogram!(name, owned(labels))))
}

fn owned(labels: &[(&'static str, &str)]) -> Vec<Label> {
    labels.iter().map(|(key, value)| Label::new(*key, value.to_string())).collect()
}

fn lookup<T: Clone>(
    table: &Table<T>,
    name: &'static str,
    labels: &[(&'static str, &str)],
    make: impl FnOnce() -> T,
) -> T {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    for (_, value) in labels {
        value.hash(&mut hasher);
    }
    let key = hasher.finish();
    let Ok(mut table) = table.try_borrow_mut() else { return make() };
    if let Some(entry) = table.get(&key).and_then(|bucket| {
        bucket.iter().find(|e| e.name == name && e.values.iter().map(String::as_str).eq(labels.iter().map(|(_, v)| *v)))
    }) {
        return entry.handle.clone();
    }
    if table.len() >= MAX_ENTRIES {
        table.clear();
    }
    let handle = make();
    let values = labels.iter().map(|(_, v)| v.to_string()).collect();
    table.entry(key).or_default().push(Entry { name, values, handle: handle.clone() });
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_series_is_resolved_once_and_others_apart() {
        let calls = std::cell::Cell::new(0);
        let table: Table<u32> = RefCell::new(HashMap::new());
        let get = |name: &'static str, tenant: &str| {
            lookup(&table, name, &[("tenant", tenant)], || {
                calls.set(calls.get() + 1);
                calls.get()
            })
        };
        assert_eq!(get("a", "acme"), 1);
        assert_eq!(get("a", "acme"), 1, "resolved once");
        assert_eq!(get("a", "other"), 2);
        assert_eq!(get("b", "acme"), 3);
        assert_eq!(calls.get(), 3);
    }
}
