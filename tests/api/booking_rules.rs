//! Booking rules over HTTP (domain.md § Booking, § Capacity buckets, § Office hours): calendars,
//! availability, capacity, time rules and throttles — each rule by name, on both backends.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{local_time, metric_value, phone, utc_ms, Backend, RedisServer, TestApp};
use crate::on_both_backends;

on_both_backends!(
    calendars_are_validated_and_guard_the_services_using_them,
    midnight_wrapping_hours_and_holidays_decide_what_is_bookable,
    dst_days_have_their_real_number_of_buckets,
    availability_honours_every_parameter,
    full_slot_proposes_nearest_open_slots_and_cancel_or_reschedule_move_capacity,
    throttles_refuse_with_their_alarm_and_refusals_consume_no_budget,
    in_queue_checking_and_max_queued_protect_the_queue,
    immediate_request_out_of_hours_is_deferred_or_rejected,
    always_check_capacity_takes_the_acceptance_bucket,
);

async fn calendar(app: &TestApp, tenant: &str, name: &str, body: Value) {
    app.admin(Method::PUT, &format!("/tenants/{tenant}/calendars/{name}"), Some(body)).await.expect(200, None);
}

fn slots_of(r: &crate::helpers::Response) -> Vec<(String, u64)> {
    r.body["data"]["slots"]
        .as_object()
        .expect("data.slots")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn hour_of(iso: &str) -> i64 {
    (utc_ms(iso) / 3_600_000) % 24
}

async fn calendars_are_validated_and_guard_the_services_using_them(app: TestApp) {
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    let bad = app
        .admin(
            Method::PUT,
            "/tenants/acme/calendars/hours",
            Some(json!({ "timezone": "Europe/Paris", "regular": ["Mon-Fri 09:00-17:00", "Mon-Fri 9-5"], "holidays": ["25/12"] })),
        )
        .await;
    bad.expect(400, Some("VALIDATION_FAILED"));
    let fields: Vec<&str> =
        bad.body["status"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["regular[1]", "holidays[0]"]);
    let body = json!({ "timezone": "America/New_York", "regular": ["Mon-Fri 09:00-17:00", "Sat 10:00-14:00"],
        "special": [{ "date": "2026-12-24", "hours": ["09:00-12:00"] }, { "date": "12-31", "hours": [] }],
        "holidays": ["2026-11-26", "12-25"], "effective": ["2026-01-01 to 2030-12-31"] });
    let ok = app.admin(Method::PUT, "/tenants/acme/calendars/hours", Some(body.clone())).await;
    ok.expect(200, None);
    assert_eq!(ok.body["data"]["name"], "hours");
    assert_eq!(ok.body["data"]["regular"], body["regular"]);
    app.admin(Method::GET, "/tenants/acme/calendars/hours", None).await.expect(200, None);
    let missing = app.admin(Method::PUT, "/tenants/acme/services/sales", Some(json!({ "calendar": "nope" }))).await;
    missing.expect(400, Some("VALIDATION_FAILED"));
    assert_eq!(missing.body["status"]["details"][0]["field"], "calendar");
    app.admin(Method::PUT, "/tenants/acme/services/sales", Some(json!({ "calendar": "hours" })))
        .await
        .expect(200, None);
    let in_use = app.admin(Method::DELETE, "/tenants/acme/calendars/hours", None).await;
    in_use.expect(400, Some("VALIDATION_FAILED"));
    assert!(in_use.text.contains("sales"));
    let list = app.admin(Method::GET, "/tenants/acme/calendars", None).await;
    assert_eq!(list.body["data"]["items"].as_array().unwrap().len(), 1);
}

async fn midnight_wrapping_hours_and_holidays_decide_what_is_bookable(app: TestApp) {
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    let holiday = local_time(3, "00:00", "UTC")[..10].to_string();
    calendar(
        &app,
        "acme",
        "nights",
        json!({ "timezone": "UTC", "regular": ["Mon-Sun 22:00-06:00"], "holidays": [holiday] }),
    )
    .await;
    let key = app
        .tenant_with_service(
            "acme",
            "night",
            json!({ "calendar": "nights", "slotMinutes": 60, "slotCapacity": 10, "maxFuture": "1y" }),
        )
        .await;
    let book = |when: String, n: u32| {
        app.create(&key, json!({ "serviceName": "night", "phoneNumber": phone(n), "desiredTime": when }))
    };
    book(local_time(2, "23:00", "UTC"), 1).await.expect(200, None);
    book(local_time(2, "03:00", "UTC"), 2).await.expect(200, None);
    let closed = book(local_time(2, "12:00", "UTC"), 3).await;
    closed.expect(429, Some("SLOT_FULL"));
    let proposed = slots_of(&closed);
    assert!(!proposed.is_empty() && proposed.len() <= 10, "{proposed:?}");
    assert!(
        proposed.iter().all(|(t, left)| (hour_of(t) >= 22 || hour_of(t) < 6) && *left > 0),
        "only open hours: {proposed:?}"
    );
    // The holiday closes its night, including the part after midnight.
    book(local_time(3, "23:00", "UTC"), 4).await.expect(429, Some("SLOT_FULL"));
    book(local_time(4, "02:00", "UTC"), 5).await.expect(429, Some("SLOT_FULL"));
    book(local_time(4, "23:00", "UTC"), 6).await.expect(200, None);
}

/// The n-th `weekday` of a month of next year.
fn nth_sunday(month: i8, n: i8) -> jiff::civil::Date {
    let year = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).year() + 1;
    jiff::civil::Date::new(year, month, 1).unwrap().nth_weekday_of_month(n, jiff::civil::Weekday::Sunday).unwrap()
}

async fn dst_days_have_their_real_number_of_buckets(app: TestApp) {
    let key = app
        .tenant_with_service(
            "acme",
            "ny",
            json!({ "timezone": "America/New_York", "slotMinutes": 60, "slotCapacity": 3, "maxFuture": "2y" }),
        )
        .await;
    let avail = |date: jiff::civil::Date| {
        let q = format!("/engagement/v3/callbacks/availability/ny?start={date}&timezone=America/New_York");
        let key = key.clone();
        let app = &app;
        async move { app.call(Method::GET, &q, &[("x-api-key", &key)], None).await }
    };
    let spring = avail(nth_sunday(3, 2)).await;
    spring.expect(200, None);
    let locals: Vec<String> = spring.body["data"]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["localTime"].as_str().unwrap()[11..16].to_string())
        .collect();
    assert_eq!(locals.len(), 23, "spring-forward day: {locals:?}");
    assert!(!locals.contains(&"02:00".to_string()), "02:00 does not exist");
    let fall = avail(nth_sunday(11, 1)).await;
    let slots = fall.body["data"]["slots"].as_array().unwrap().clone();
    assert_eq!(slots.len(), 25, "fall-back day");
    let one_am: Vec<&str> =
        slots.iter().map(|s| s["localTime"].as_str().unwrap()).filter(|l| l[11..16] == *"01:00").collect();
    assert_eq!(one_am.len(), 2, "the repeated hour gives two buckets: {one_am:?}");
    assert!(one_am[0].ends_with("-04:00") && one_am[1].ends_with("-05:00"));
    // Both 01:00 buckets are bookable separately.
    for slot in [&one_am[0], &one_am[1]] {
        let r = app.create(&key, json!({ "serviceName": "ny", "phoneNumber": phone(11), "desiredTime": slot })).await;
        r.expect(200, None);
    }
    let fall_again = avail(nth_sunday(11, 1)).await;
    let ones: Vec<u64> = fall_again.body["data"]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["localTime"].as_str().unwrap()[11..16] == *"01:00")
        .map(|s| s["capacity"].as_u64().unwrap())
        .collect();
    assert_eq!(ones, vec![2, 2]);
}

async fn availability_honours_every_parameter(app: TestApp) {
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    calendar(&app, "acme", "mornings", json!({ "timezone": "UTC", "regular": ["Mon-Sun 09:00-12:00"] })).await;
    let key = app
        .tenant_with_service(
            "acme",
            "am",
            json!({ "calendar": "mornings", "slotMinutes": 60, "slotCapacity": 2, "maxFuture": "1y" }),
        )
        .await;
    let day = local_time(5, "00:00", "UTC")[..10].to_string();
    let get = |q: String| {
        let key = key.clone();
        let app = &app;
        async move {
            app.call(
                Method::GET,
                &format!("/engagement/v3/callbacks/availability/am?{q}"),
                &[("x-api-key", &key)],
                None,
            )
            .await
        }
    };
    let times = |r: &crate::helpers::Response| -> Vec<String> {
        r.body["data"]["slots"].as_array().unwrap().iter().map(|s| s["utcTime"].as_str().unwrap().to_string()).collect()
    };
    let r = get(format!("start={day}")).await;
    r.expect(200, None);
    assert_eq!(
        times(&r),
        vec![format!("{day}T09:00:00.000Z"), format!("{day}T10:00:00.000Z"), format!("{day}T11:00:00.000Z")]
    );
    assert_eq!(r.body["data"]["durationMin"], 60);
    assert_eq!(r.body["data"]["timezone"], "UTC");
    assert_eq!(r.body["data"]["slots"][0]["capacity"], 2);
    assert_eq!(r.body["data"]["slots"][0]["total"], 2);
    let start_ms = utc_ms(&format!("{day}T00:00:00Z"));
    let by_ms = get(format!("startMS={start_ms}&endMS={}", start_ms + 86_400_000)).await;
    assert_eq!(times(&by_ms), times(&r));
    let by_end = get(format!("start={day}T10:30:00Z&end={day}T12:00:00Z")).await;
    assert_eq!(
        times(&by_end),
        vec![format!("{day}T10:30:00.000Z"), format!("{day}T11:00:00.000Z")],
        "offered from the first open instant"
    );
    assert_eq!(times(&get(format!("start={day}&numberOfDays=2")).await).len(), 6);
    assert_eq!(times(&get(format!("start={day}&maxTimeSlots=2")).await).len(), 2);
    let kolkata = get(format!("start={day}T00:00:00&timezone=Asia/Kolkata")).await;
    kolkata.expect(200, None);
    let first = &kolkata.body["data"]["slots"][0];
    assert_eq!(first["utcTime"], format!("{day}T09:00:00.000Z"));
    assert_eq!(first["localTime"], format!("{day}T14:30:00.000+05:30"));
    assert_eq!(kolkata.body["data"]["timezone"], "Asia/Kolkata");
    for n in [1, 2] {
        app.create(
            &key,
            json!({ "serviceName": "am", "phoneNumber": phone(20 + n), "desiredTime": format!("{day}T10:15:00Z") }),
        )
        .await
        .expect(200, None);
    }
    assert!(
        !times(&get(format!("start={day}")).await).contains(&format!("{day}T10:00:00.000Z")),
        "a full slot is not offered"
    );
    let busy = get(format!("start={day}&reportBusy=true")).await;
    let full = busy.body["data"]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["utcTime"] == format!("{day}T10:00:00.000Z"))
        .cloned()
        .unwrap();
    assert_eq!((full["capacity"].as_u64(), full["total"].as_u64()), (Some(0), Some(2)));
    get(format!("start={day}&numberOfDays=40")).await.expect(400, Some("TIME_OUT_OF_RANGE"));
    get(format!("start={day}&end={day}T12:00:00Z&numberOfDays=1")).await.expect(400, Some("VALIDATION_FAILED"));
    get("timezone=Mars/Base".into()).await.expect(400, Some("VALIDATION_FAILED"));
    app.call(Method::GET, "/engagement/v3/callbacks/availability/nope", &[("x-api-key", &key)], None)
        .await
        .expect(400, Some("UNKNOWN_SERVICE"));
    // open-for, by service name and by calendar name.
    for name in ["am", "mornings"] {
        let open = app
            .call(
                Method::GET,
                &format!("/engagement/v3/callbacks/open-for/{name}?start={day}T11:00:00Z"),
                &[("x-api-key", &key)],
                None,
            )
            .await;
        open.expect(200, None);
        assert_eq!(open.body["data"]["openFor"], 3600, "{name}");
        let shut = app
            .call(
                Method::GET,
                &format!("/engagement/v3/callbacks/open-for/{name}?start={day}T13:00:00Z"),
                &[("x-api-key", &key)],
                None,
            )
            .await;
        assert_eq!(shut.body["data"]["openFor"], 0);
    }
    app.call(Method::GET, "/engagement/v3/callbacks/open-for/ghost", &[("x-api-key", &key)], None)
        .await
        .expect(400, Some("UNKNOWN_SERVICE"));
}

async fn full_slot_proposes_nearest_open_slots_and_cancel_or_reschedule_move_capacity(app: TestApp) {
    let key = app
        .tenant_with_service("acme", "one", json!({ "slotMinutes": 60, "slotCapacity": 1, "maxFuture": "1y" }))
        .await;
    let t = local_time(2, "10:00", "UTC");
    let at = |h: &str| local_time(2, h, "UTC");
    let book = |when: String, n: u32| {
        app.create(&key, json!({ "serviceName": "one", "phoneNumber": phone(n), "desiredTime": when }))
    };
    let first = book(t.clone(), 1).await;
    first.expect(200, None);
    let full = book(t.clone(), 2).await;
    full.expect(429, Some("SLOT_FULL"));
    let proposed = slots_of(&full);
    assert_eq!(proposed.len(), 10);
    let keys: Vec<&str> = proposed.iter().map(|(k, _)| k.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered by time");
    assert!(
        keys.contains(&format!("{}T09:00:00.000Z", &t[..10]).as_str())
            && keys.contains(&format!("{}T11:00:00.000Z", &t[..10]).as_str())
    );
    assert!(!keys.contains(&format!("{}T10:00:00.000Z", &t[..10]).as_str()), "the full slot is not proposed");
    // Cancel gives the place back.
    app.public(&key, "/callbacks/cancel", json!({ "id": first.id() })).await.expect(200, None);
    let second = book(t.clone(), 3).await;
    second.expect(200, None);
    // Reschedule moves the place: the old bucket frees, the new one fills.
    let third = book(at("12:00"), 4).await;
    third.expect(200, None);
    app.public(&key, "/callbacks/reschedule", json!({ "id": third.id(), "desiredTime": at("13:00") }))
        .await
        .expect(200, None);
    book(at("12:00"), 5).await.expect(200, None);
    let moved =
        app.public(&key, "/callbacks/reschedule", json!({ "id": second.id(), "desiredTime": at("13:00") })).await;
    moved.expect(429, Some("SLOT_FULL"));
    assert!(!slots_of(&moved).is_empty());
    // The refused reschedule left the callback and its place where they were.
    let still = app.retrieve(&key, &second.id()).await;
    assert_eq!(utc_ms(still.body["data"]["desiredTime"].as_str().unwrap()), utc_ms(&t));
    book(t, 6).await.expect(429, Some("SLOT_FULL"));
}

async fn throttles_refuse_with_their_alarm_and_refusals_consume_no_budget(app: TestApp) {
    // Metrics are process-wide and both backends run in this process: a tenant name of its own.
    let tenant = format!("throttled-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let key = app
        .tenant_with_service(
            &tenant,
            "s",
            json!({ "perNumberLimit": { "limit": 2, "windowSeconds": 3600 }, "serviceRateLimits": [{ "limit": 4, "windowSeconds": 3600 }],
                    "slotMinutes": 60, "slotCapacity": 1, "maxFuture": "1y" }),
        )
        .await;
    let at = |d: i64| local_time(d, "10:00", "UTC");
    let book = |when: String, n: u32| {
        app.create(&key, json!({ "serviceName": "s", "phoneNumber": phone(n), "desiredTime": when }))
    };
    let enqueue = &format!(r#"CB_ENQUEUE_LIMIT_REACHED{{tenant="{tenant}"}}"#);
    let ttl = &format!(r#"CB_TTL_LIMIT_REACHED{{tenant="{tenant}"}}"#);
    let m = app.metrics().await;
    assert_eq!(
        (metric_value(&m, enqueue), metric_value(&m, ttl)),
        (Some(0.0), Some(0.0)),
        "registered at 0 for the tenant"
    );
    book(at(1), 1).await.expect(200, None);
    book(at(2), 1).await.expect(200, None);
    let third = book(at(3), 1).await;
    third.expect(429, Some("THROTTLED"));
    let retry: u64 = third.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3000..=3600).contains(&retry), "Retry-After is the rest of the window: {retry}");
    assert_eq!(third.body["data"]["slots"], json!({}), "every 429 of create carries data.slots");
    assert_eq!(metric_value(&app.metrics().await, enqueue), Some(1.0));
    // A refusal for a full slot consumes no service budget: 2 used so far, so two more fit.
    book(at(1), 2).await.expect(429, Some("SLOT_FULL"));
    book(at(4), 3).await.expect(200, None);
    book(at(5), 4).await.expect(200, None);
    let over = book(at(6), 5).await;
    over.expect(429, Some("THROTTLED"));
    let m = app.metrics().await;
    assert_eq!((metric_value(&m, enqueue), metric_value(&m, ttl)), (Some(1.0), Some(1.0)));
    assert_eq!(
        metric_value(&m, &format!(r#"ges_callbacks_rejected{{tenant="{tenant}",service="s",reason="THROTTLED"}}"#)),
        Some(2.0)
    );
}

async fn in_queue_checking_and_max_queued_protect_the_queue(app: TestApp) {
    let key = app.tenant_with_service("acme", "strict", json!({ "inQueueChecking": "strict" })).await;
    app.admin(Method::PUT, "/tenants/acme/services/lenient", Some(json!({ "_enable_in_queue_checking": "true" })))
        .await
        .expect(200, None);
    app.admin(Method::PUT, "/tenants/acme/services/small", Some(json!({ "maxQueued": 2 }))).await.expect(200, None);
    let book =
        |service: &'static str, n: u32| app.create(&key, json!({ "serviceName": service, "phoneNumber": phone(n) }));
    let first = book("strict", 1).await;
    first.expect(200, None);
    let again = book("strict", 1).await;
    again.expect(429, Some("ALREADY_QUEUED"));
    assert_eq!(again.body["data"]["slots"], json!({}));
    app.public(&key, "/callbacks/cancel", json!({ "id": first.id() })).await.expect(200, None);
    book("strict", 1).await.expect(200, None);
    book("lenient", 2).await.expect(200, None);
    book("lenient", 2).await.expect(200, None);
    book("lenient", 2).await.expect(429, Some("ALREADY_QUEUED"));
    book("small", 3).await.expect(200, None);
    book("small", 4).await.expect(200, None);
    let full = book("small", 5).await;
    full.expect(503, Some("QUEUE_FULL"));
    // Scheduled callbacks are not active yet: they still book.
    app.create(
        &key,
        json!({ "serviceName": "small", "phoneNumber": phone(6), "desiredTime": local_time(1, "10:00", "UTC") }),
    )
    .await
    .expect(200, None);
}

async fn immediate_request_out_of_hours_is_deferred_or_rejected(app: TestApp) {
    app.admin(Method::PUT, "/tenants/acme", Some(json!({}))).await.expect(200, None);
    let day = local_time(3, "00:00", "UTC")[..10].to_string();
    calendar(
        &app,
        "acme",
        "one-day",
        json!({ "timezone": "UTC", "special": [{ "date": day, "hours": ["09:00-10:00"] }] }),
    )
    .await;
    let key = app.tenant_with_service("acme", "later", json!({ "calendar": "one-day" })).await;
    app.admin(
        Method::PUT,
        "/tenants/acme/services/strict",
        Some(json!({ "calendar": "one-day", "rejectOutOfOfficeHours": true })),
    )
    .await
    .expect(200, None);
    let deferred = app.create(&key, json!({ "serviceName": "later", "phoneNumber": phone(1) })).await;
    deferred.expect(200, None);
    let cb = app.retrieve(&key, &deferred.id()).await.body["data"].clone();
    assert_eq!(cb["callbackState"], "SCHEDULED");
    assert_eq!(cb["desiredTime"], format!("{day}T09:00:00.000Z"), "moved to the next opening");
    app.create(&key, json!({ "serviceName": "strict", "phoneNumber": phone(2) }))
        .await
        .expect(400, Some("OFFICE_CLOSED"));
    app.create(
        &key,
        json!({ "serviceName": "strict", "phoneNumber": phone(2), "desiredTime": format!("{day}T11:00:00Z") }),
    )
    .await
    .expect(400, Some("OFFICE_CLOSED"));
    app.create(
        &key,
        json!({ "serviceName": "strict", "phoneNumber": phone(2), "desiredTime": format!("{day}T09:30:00Z") }),
    )
    .await
    .expect(200, None);
}

async fn always_check_capacity_takes_the_acceptance_bucket(app: TestApp) {
    let key = app.tenant_with_service("acme", "cap", json!({ "slotMinutes": 60, "slotCapacity": 1 })).await;
    // Stay clear of an hour boundary so both requests fall in one bucket.
    while jiff::Timestamp::now().as_second() % 3600 > 3590 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let past = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(1)).unwrap().to_string();
    let body = |n: u32| json!({ "serviceName": "cap", "phoneNumber": phone(n), "desiredTime": past, "alwaysCheckCapacity": true });
    app.create(&key, body(1)).await.expect(200, None);
    app.create(&key, body(2)).await.expect(429, Some("SLOT_FULL"));
    // Without the flag an immediate request takes no capacity.
    app.create(&key, json!({ "serviceName": "cap", "phoneNumber": phone(3) })).await.expect(200, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_booking_continues_with_local_limits() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let app = TestApp::spawn_with(Backend::Sqlite, &[("RINGBACK__REDIS__URL", url.as_str())]).await;
    let key =
        app.tenant_with_service("acme", "s", json!({ "perNumberLimit": { "limit": 2, "windowSeconds": 3600 } })).await;
    let book = |n: u32| app.create(&key, json!({ "serviceName": "s", "phoneNumber": phone(n) }));
    book(1).await.expect(200, None);
    book(1).await.expect(200, None);
    book(1).await.expect(429, Some("THROTTLED"));
    // The counters live in Redis: they are there to see.
    let mut conn = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("ringback:throttle:*").query_async(&mut conn).await.unwrap();
    assert!(!keys.is_empty());
    redis.stop();
    // Redis gone: bookings continue, limited per replica.
    book(2).await.expect(200, None);
    book(2).await.expect(200, None);
    let third = book(2).await;
    third.expect(429, Some("THROTTLED"));
}
