//! The booking writer (`store::writer`): concurrent bookings share one transaction, and every
//! request still gets the answer it would get alone. Each test fires its requests at once so that
//! they meet in batches; the assertions hold whatever the batches turn out to be.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{local_time, phone, sql, utc_ms, Backend, Response, TestApp};
use crate::on_both_backends;

on_both_backends!(backend:
    a_batch_that_overfills_a_bucket_books_the_first_and_proposes_slots_to_the_rest,
    one_number_in_concurrent_bookings_is_checked_against_itself,
    one_idempotency_key_in_concurrent_requests_books_once,
    a_database_that_hangs_mid_batch_fails_the_batch_and_keeps_nothing_of_it,
    a_poisoned_booking_fails_alone,
    concurrent_retries_taking_over_an_abandoned_key_book_once,
    fifty_concurrent_retries_book_at_most_once_whatever_state_the_key_is_in,
);

async fn app(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[("RINGBACK__FAULTS__ENABLED", "true"), ("RINGBACK__DATABASE__STATEMENT_TIMEOUT_MS", "1000")],
    )
    .await
}

/// Fire every body at once; answers in the bodies' order.
async fn at_once(app: &TestApp, key: &str, bodies: Vec<(Value, Option<String>)>) -> Vec<Response> {
    join_all(bodies.into_iter().map(|(body, idem)| async move {
        let mut headers = vec![("x-api-key", key.to_string())];
        headers.extend(idem.map(|k| ("idempotency-key", k)));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        app.call(Method::POST, "/engagement/v3/callbacks/create", &headers, Some(body)).await
    }))
    .await
}

/// Every callback of the tenant (GES list, one page).
async fn listed(app: &TestApp, key: &str) -> Vec<Value> {
    let r = app.call(Method::GET, "/engagement/v3/callbacks?limit=500", &[("x-api-key", key)], None).await;
    r.expect(200, None);
    r.body["data"]["items"].as_array().expect("items").clone()
}

fn count(answers: &[Response], status: u16) -> usize {
    answers.iter().filter(|r| r.status.as_u16() == status).count()
}

async fn a_batch_that_overfills_a_bucket_books_the_first_and_proposes_slots_to_the_rest(backend: Backend) {
    let app = app(backend).await;
    let key = app
        .tenant_with_service("acme", "tight", json!({ "slotMinutes": 60, "slotCapacity": 5, "maxFuture": "1y" }))
        .await;
    let when = local_time(2, "11:00", "UTC");
    let bodies = (0..60)
        .map(|i| (json!({ "serviceName": "tight", "phoneNumber": phone(i), "desiredTime": when }), None))
        .collect();
    let answers = at_once(&app, &key, bodies).await;
    assert_eq!(
        (count(&answers, 200), count(&answers, 429)),
        (5, 55),
        "{:?}",
        answers.iter().find(|r| r.status != 200 && r.status != 429)
    );
    for refused in answers.iter().filter(|r| r.status == 429) {
        refused.expect(429, Some("SLOT_FULL"));
        let slots = refused.body["data"]["slots"].as_object().expect("data.slots");
        assert!(!slots.is_empty(), "proposals: {}", refused.text);
        assert!(slots.keys().all(|t| utc_ms(t) != utc_ms(&when)), "the full slot is not proposed: {slots:?}");
    }
    // Exactly the answered bookings are stored, and the bucket counts them all.
    let stored: Vec<String> = listed(&app, &key).await.iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    let booked: Vec<String> = answers.iter().filter(|r| r.status == 200).map(Response::id).collect();
    assert_eq!(stored.len(), 5);
    assert!(booked.iter().all(|id| stored.contains(id)));
    let one_more =
        app.create(&key, json!({ "serviceName": "tight", "phoneNumber": phone(99), "desiredTime": when })).await;
    one_more.expect(429, Some("SLOT_FULL"));
}

async fn one_number_in_concurrent_bookings_is_checked_against_itself(backend: Backend) {
    let app = app(backend).await;
    let config = json!({ "inQueueChecking": "strict", "maxFuture": "1y",
                         "perNumberLimit": { "limit": 1000, "windowSeconds": 60 } });
    let key = app.tenant_with_service("acme", "strict", config).await;
    let bodies = (0..20)
        .map(|i| {
            let when = local_time(1 + i64::from(i % 5), "09:00", "UTC");
            (json!({ "serviceName": "strict", "phoneNumber": phone(7), "desiredTime": when }), None)
        })
        .collect();
    let answers = at_once(&app, &key, bodies).await;
    assert_eq!((count(&answers, 200), count(&answers, 429)), (1, 19));
    assert!(answers.iter().filter(|r| r.status == 429).all(|r| r.reason() == "ALREADY_QUEUED"));
    assert_eq!(listed(&app, &key).await.len(), 1);
}

async fn one_idempotency_key_in_concurrent_requests_books_once(backend: Backend) {
    let app = app(backend).await;
    let key = app.tenant_with_service("acme", "sales", json!({ "maxFuture": "1y" })).await;
    let when = local_time(1, "10:00", "UTC");
    let bodies = (0..30)
        .map(|_| {
            (
                json!({ "serviceName": "sales", "phoneNumber": phone(3), "desiredTime": when }),
                Some("order-42".to_string()),
            )
        })
        .collect();
    let answers = at_once(&app, &key, bodies).await;
    let ok: Vec<String> = answers.iter().filter(|r| r.status == 200).map(Response::id).collect();
    assert!(!ok.is_empty());
    assert!(ok.iter().all(|id| *id == ok[0]), "replays answer the same booking: {ok:?}");
    // The rest saw the key in progress.
    assert!(
        answers.iter().filter(|r| r.status != 200).all(|r| r.status == 409),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let stored = listed(&app, &key).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], ok[0].as_str());
}

async fn a_database_that_hangs_mid_batch_fails_the_batch_and_keeps_nothing_of_it(backend: Backend) {
    let app = app(backend).await;
    let key = app.tenant_with_service("acme", "sales", json!({ "maxFuture": "1y", "slotCapacity": 100 })).await;
    app.admin(Method::POST, "/faults/stall-booking-batch", Some(json!({}))).await.expect(200, None);
    let when = local_time(1, "10:00", "UTC");
    let bodies = (0..40)
        .map(|i| (json!({ "serviceName": "sales", "phoneNumber": phone(i), "desiredTime": when }), None))
        .collect();
    let answers = at_once(&app, &key, bodies).await;
    let failed = count(&answers, 503);
    assert!(failed >= 1, "the stalled batch answers 503");
    assert_eq!(failed + count(&answers, 200), answers.len());
    for r in answers.iter().filter(|r| r.status == 503) {
        r.expect(503, Some("UNAVAILABLE"));
    }
    // Nothing of the failed batch remains: not its rows, not its capacity reservations.
    let stored = listed(&app, &key).await;
    assert_eq!(stored.len(), count(&answers, 200));
    let path = format!("/engagement/v3/callbacks/availability/sales?start={}&maxTimeSlots=1", when.replace('+', "%2B"));
    let r = app.call(Method::GET, &path, &[("x-api-key", &key)], None).await;
    r.expect(200, None);
    let slot = &r.body["data"]["slots"][0];
    assert_eq!(utc_ms(slot["utcTime"].as_str().expect("utcTime")), utc_ms(&when));
    assert_eq!(slot["capacity"].as_u64(), Some(100 - stored.len() as u64), "availability: {}", r.text);
}

async fn a_poisoned_booking_fails_alone(backend: Backend) {
    let app = app(backend).await;
    let key = app.tenant_with_service("acme", "sales", json!({ "maxFuture": "1y" })).await;
    let when = local_time(1, "10:00", "UTC");
    let first =
        app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(500), "desiredTime": when })).await;
    first.expect(200, None);
    // The booking for phone(13) will be written under the first booking's id: the database
    // refuses its row (primary key).
    let poison = json!({ "phoneNumber": phone(13), "id": first.id() });
    app.admin(Method::POST, "/faults/poison-booking", Some(poison)).await.expect(200, None);
    let bodies = (0..30)
        .map(|i| (json!({ "serviceName": "sales", "phoneNumber": phone(i), "desiredTime": when }), None))
        .collect();
    let answers = at_once(&app, &key, bodies).await;
    for (i, r) in answers.iter().enumerate() {
        match i {
            13 => assert_eq!(r.status.as_u16(), 500, "the poisoned booking fails: {}", r.text),
            _ => {
                r.expect(200, None);
            }
        }
    }
    assert_eq!(listed(&app, &key).await.len(), 30, "29 of the batch and the first booking");
}

/// A key left in progress past its takeover age (its process died): of many concurrent retries,
/// exactly one takes it over and books; the others are told it is in progress. The store is driven
/// directly: the HTTP path cannot wait out the 60 s age in a test.
async fn concurrent_retries_taking_over_an_abandoned_key_book_once(backend: Backend) {
    use ringback::store::{IdempotencyBegin, Store};
    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::fresh_database(backend, &dir).await;
    let settings = crate::helpers::test_settings(&url, &[("RINGBACK__DATABASE__MAX_CONNECTIONS", "8")]);
    let store = Store::connect(&settings.database).await.unwrap();
    let t0 = ringback::time::Moment::from_ms(1_800_000_000_000);
    assert_eq!(store.begin_idempotent("t", "k", "h", t0).await.unwrap(), IdempotencyBegin::Fresh);
    let later = t0 + ringback::store::STALE_IN_PROGRESS + ringback::time::Millis::from_ms(1);
    let answers = join_all((0..8).map(|_| store.begin_idempotent("t", "k", "h", later))).await;
    let fresh = answers.iter().filter(|a| matches!(a, Ok(IdempotencyBegin::Fresh))).count();
    let waiting = answers.iter().filter(|a| matches!(a, Ok(IdempotencyBegin::InProgress))).count();
    assert_eq!((fresh, waiting), (1, 7), "{answers:?}");
}

/// 50 concurrent retries of one `Idempotency-Key` in each of its four states: fresh (never
/// seen), in progress (another request holds it), abandoned (held past 60 s by a request that
/// died) and expired (answered more than 24 h ago). At most one booking each; the in-progress key
/// books nothing. The states are made by changing the key's row behind the app's back.
async fn fifty_concurrent_retries_book_at_most_once_whatever_state_the_key_is_in(backend: Backend) {
    let app = app(backend).await;
    let key = app.tenant_with_service("acme", "sales", json!({ "maxFuture": "1y", "slotCapacity": 1000 })).await;
    let when = local_time(1, "10:00", "UTC");
    let now = jiff::Timestamp::now().as_millisecond();
    let states: [(&str, Option<String>); 4] = [
        ("fresh", None),
        ("in-progress", Some(format!("status = NULL, response = NULL, created_ms = {now}"))),
        ("abandoned", Some(format!("status = NULL, response = NULL, created_ms = {}", now - 61_000))),
        ("expired", Some(format!("created_ms = {}", now - 25 * 3600 * 1000))),
    ];
    for (n, (state, aged)) in states.into_iter().enumerate() {
        let body = json!({ "serviceName": "sales", "phoneNumber": phone(100 + n as u32), "desiredTime": when });
        let idem = format!("retry-{state}");
        if let Some(set) = aged {
            let first = at_once(&app, &key, vec![(body.clone(), Some(idem.clone()))]).await;
            first[0].expect(200, None);
            sql(&app, &[&format!("UPDATE idempotency SET {set} WHERE key = '{idem}'")]).await;
        }
        let before = listed(&app, &key).await.len();
        let answers = at_once(&app, &key, (0..50).map(|_| (body.clone(), Some(idem.clone()))).collect()).await;
        let booked = listed(&app, &key).await.len() - before;
        let statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
        let expected = usize::from(state != "in-progress");
        assert_eq!(booked, expected, "{state}: new bookings; answers {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{state}: {statuses:?}");
        let ids: std::collections::HashSet<String> =
            answers.iter().filter(|r| r.status == 200).map(Response::id).collect();
        assert_eq!(ids.len(), expected, "{state}: every 200 names the one booking");
    }
}
