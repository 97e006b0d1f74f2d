//! Stress on one replica: a thousand concurrent bookings for one bucket on each backend.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{concurrent_bookings, local_time, TestApp};
use crate::on_both_backends;

on_both_backends!(one_thousand_concurrent_bookings_never_overbook_a_bucket);

async fn one_thousand_concurrent_bookings_never_overbook_a_bucket(app: TestApp) {
    // A stress test: it takes its turn with the multi-process tests rather than starving one.
    let _alone = crate::helpers::MULTI_PROCESS.lock().await;
    let key = app
        .tenant_with_service(
            "acme",
            "rush",
            json!({ "slotMinutes": 60, "slotCapacity": 25, "maxFuture": "1y", "perNumberLimit": { "limit": 100000, "windowSeconds": 60 },
                    "serviceRateLimits": [{ "limit": 1000000, "windowSeconds": 60 }] }),
        )
        .await;
    let when = local_time(1, "10:00", "UTC");
    let (ok, full) = concurrent_bookings(&app.internal, &key, "rush", &when, 1000, 0).await;
    assert_eq!((ok, full), (25, 975));
    let listed = app.call(Method::GET, "/engagement/v3/callbacks?limit=500", &[("x-api-key", &key)], None).await;
    assert_eq!(listed.body["data"]["items"].as_array().unwrap().len(), 25);
}
