//! The callback monitor and the hand-off loop: stream, simulator, internal API, failures,
//! pause/resume, re-drive, recovery.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    app_with_stream, eventually, in_seconds, metric_value, phone, sql, stream_entries, Backend, Pass, TestApp,
    INTERNAL_TOKEN,
};
use crate::on_both_backends;

on_both_backends!(backend:
    booked_callbacks_reach_completed_through_the_simulator,
    internal_api_moves_callbacks_forward_only,
    refused_publish_ends_in_submit_failed_and_redrive_hands_it_over_again,
    pause_stops_hand_offs_and_resume_drains_them,
    unacknowledged_hand_offs_are_resent_then_fail_and_stale_ones_expire,
    a_callback_whose_service_vanished_is_cancelled_when_due_never_handed_over_and_purged,
);

async fn admin_list(app: &TestApp, tenant: &str, query: &str) -> Vec<Value> {
    let r = app.admin(Method::GET, &format!("/tenants/{tenant}/callbacks?limit=500{query}"), None).await;
    r.expect(200, None);
    r.body["data"]["items"].as_array().unwrap().clone()
}

async fn report(app: &TestApp, id: &str, body: Value) -> crate::helpers::Response {
    let auth = format!("Bearer {INTERNAL_TOKEN}");
    app.call(Method::POST, &format!("/internal/v1/callbacks/{id}/state"), &[("authorization", &auth)], Some(body)).await
}

fn simulator(app: &TestApp, redis_url: String, outcomes: [u32; 3]) -> tokio::task::JoinHandle<()> {
    let config = ringback::simulator::SimulatorConfig {
        internal_url: app.internal.clone(),
        token: INTERNAL_TOKEN.into(),
        ack_delay: Duration::from_millis(20),
        routing_delay: Duration::from_millis(50),
        processing_delay: Duration::from_millis(50),
        completion_delay: Duration::from_millis(50),
        outcomes,
        stats_every: Duration::from_millis(200),
        concurrency: 32,
    };
    let source = ringback::simulator::Source::Redis {
        url: redis_url,
        stream: "NewCallbackStream".into(),
        group: "sim".into(),
        consumer: "sim-1".into(),
    };
    tokio::spawn(async move {
        let _ = ringback::simulator::run(source, config).await;
    })
}

async fn booked_callbacks_reach_completed_through_the_simulator(backend: Backend) {
    let (app, redis) = app_with_stream(backend, &[]).await;
    // A tenant of its own: the metrics recorder is shared by every test in this process.
    let tenant = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let key = app.tenant_with_service(&tenant, "sales", json!({ "virtualQueue": "SalesVQ" })).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(n) })).await.id());
    }
    let scheduled = app
        .create(
            &key,
            json!({ "serviceName": "sales", "phoneNumber": phone(9), "desiredTime": crate::helpers::in_seconds(2) }),
        )
        .await
        .id();
    // Immediate callbacks reach the stream within a second, with attempt 1.
    eventually(5, "three hand-offs in the stream", || async { stream_entries(&redis.url()).await.len() == 3 }).await;
    assert!(stream_entries(&redis.url())
        .await
        .iter()
        .all(|(_, attempt, kind)| *attempt == 1 && kind == "callback.submit"));
    // While queued, retrieve shows the position (rank by priority, then queued time) and the EWT.
    let third = app.retrieve(&key, &ids[2]).await.body["data"].clone();
    assert_eq!(third["positionInQueue"], 3);
    assert_eq!(third["estimatedWaitTime"], -1, "unknown until the platform or history says");
    let auth = format!("Bearer {INTERNAL_TOKEN}");
    app.call(
        Method::PUT,
        &format!("/internal/v1/queues/{tenant}/SalesVQ/stats"),
        &[("authorization", &auth)],
        Some(json!({ "ewt": 42, "agentsLoggedIn": 3, "callsWaiting": 3 })),
    )
    .await
    .expect(200, None);
    assert_eq!(app.retrieve(&key, &ids[0]).await.body["data"]["estimatedWaitTime"], 42);
    let status =
        app.call(Method::GET, "/engagement/v3/callbacks/queue-status/SalesVQ", &[("x-api-key", &key)], None).await;
    status.expect(200, None);
    assert_eq!(
        status.body["data"],
        json!({ "ewt": 42, "offerImmediateCallback": true, "offerScheduledCallback": true })
    );
    let ewt = app
        .call(
            Method::GET,
            "/engagement/v3/estimated-wait-time?virtual-queues=SalesVQ,Nope&mode=mode3",
            &[("x-api-key", &key)],
            None,
        )
        .await;
    assert_eq!(ewt.body["data"][0], json!({ "virtualQueue": "SalesVQ", "estimatedWaitTime": 42, "resultCode": 0 }));
    assert_eq!(ewt.body["data"][1]["resultCode"], 2);

    let sim = simulator(&app, redis.url(), [1, 0, 0]);
    ids.push(scheduled.clone());
    for id in &ids {
        let key = key.clone();
        let app = &app;
        eventually(20, "callback completed", || {
            let key = key.clone();
            async move { app.retrieve(&key, id).await.body["data"]["callbackState"] == "COMPLETED" }
        })
        .await;
        let cb = app.retrieve(&key, id).await.body["data"].clone();
        assert_eq!(cb["callbackReason"], "AGENT_CONNECTED");
        assert!(cb.get("positionInQueue").is_none(), "no position once completed");
        let story: Vec<(String, String)> = cb["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["state"].as_str().unwrap().to_string(), h["actor"].as_str().unwrap().to_string()))
            .collect();
        let expected_start: Vec<(&str, &str)> =
            if *id == scheduled { vec![("SCHEDULED", "api"), ("QUEUED", "monitor")] } else { vec![("QUEUED", "api")] };
        let mut expected: Vec<(String, String)> =
            expected_start.iter().map(|(s, a)| (s.to_string(), a.to_string())).collect();
        // The acknowledgement (QUEUED again, by the platform) is on the timeline too.
        for s in ["QUEUED", "ROUTING", "PROCESSING", "COMPLETED"] {
            expected.push((s.to_string(), "platform".to_string()));
        }
        assert_eq!(story, expected, "{id}");
    }
    // Mode 1 now has history of its own.
    let mode1 = app
        .call(
            Method::GET,
            "/engagement/v3/estimated-wait-time?virtual-queues=SalesVQ&mode=mode1",
            &[("x-api-key", &key)],
            None,
        )
        .await;
    assert_eq!(mode1.body["data"][0]["resultCode"], 0);
    let m = app.metrics().await;
    let completed = format!(r#"ges_callbacks_completed{{tenant="{tenant}",service="sales",reason="AGENT_CONNECTED"}}"#);
    assert_eq!(metric_value(&m, &completed), Some(ids.len() as f64), "each completion counted once");
    sim.abort();
}

async fn internal_api_moves_callbacks_forward_only(backend: Backend) {
    let (app, redis) = app_with_stream(backend, &[]).await;
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    let id = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.id();
    eventually(5, "published", || async { !stream_entries(&redis.url()).await.is_empty() }).await;
    // The acknowledgement: QUEUED for the current attempt records ackedTime.
    report(&app, &id, json!({ "state": "QUEUED", "attempt": 1 })).await.expect(200, None);
    assert!(admin_list(&app, "acme", "").await[0]["ackedTime"].is_string());
    report(&app, &id, json!({ "state": "ROUTING", "attempt": 0 })).await.expect(200, None); // stale attempt: ignored
    assert_eq!(app.retrieve(&key, &id).await.body["data"]["callbackState"], "QUEUED");
    report(&app, &id, json!({ "state": "PROCESSING", "positionInQueue": 4, "estimatedWaitTime": 17 }))
        .await
        .expect(200, None);
    let cb = app.retrieve(&key, &id).await.body["data"].clone();
    assert_eq!(
        (cb["callbackState"].as_str(), cb["positionInQueue"].as_i64(), cb["estimatedWaitTime"].as_i64()),
        (Some("PROCESSING"), Some(4), Some(17))
    );
    report(&app, &id, json!({ "state": "PROCESSING" })).await.expect(200, None); // repeat: no-op
    report(&app, &id, json!({ "state": "ROUTING" })).await.expect(409, Some("ILLEGAL_TRANSITION"));
    report(&app, &id, json!({ "state": "COMPLETED" })).await.expect(400, Some("VALIDATION_FAILED"));
    report(&app, &id, json!({ "state": "DONE" })).await.expect(400, Some("VALIDATION_FAILED"));
    report(&app, &id, json!({ "state": "PROCESSING", "attempt": 2 })).await.expect(409, Some("ILLEGAL_TRANSITION"));
    report(&app, &id, json!({ "state": "COMPLETED", "reason": "AGENT_CONNECTED" })).await.expect(200, None);
    report(&app, &id, json!({ "state": "COMPLETED", "reason": "AGENT_CONNECTED" })).await.expect(200, None);
    report(&app, &id, json!({ "state": "PROCESSING" })).await.expect(409, Some("ILLEGAL_TRANSITION"));
    report(&app, "no-such-id", json!({ "state": "ROUTING" })).await.expect(404, Some("NOT_FOUND"));
    let history: Vec<String> = app.retrieve(&key, &id).await.body["data"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap().to_string())
        .collect();
    // Booked (immediate), acknowledged (a note on a QUEUED entry), then the moves.
    assert_eq!(history, vec!["QUEUED", "QUEUED", "PROCESSING", "COMPLETED"]);
    // Not handed over yet: nothing to report on.
    let later = app
        .create(
            &key,
            json!({ "serviceName": "sales", "phoneNumber": phone(2), "desiredTime": crate::helpers::in_seconds(3600) }),
        )
        .await
        .id();
    report(&app, &later, json!({ "state": "ROUTING" })).await.expect(409, Some("ILLEGAL_TRANSITION"));
    app.call(Method::POST, &format!("/internal/v1/callbacks/{id}/state"), &[], Some(json!({ "state": "ROUTING" })))
        .await
        .expect(401, Some("UNAUTHORIZED"));
    // Cancelling a handed-over callback sends callback.cancel after it.
    let handed = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(3) })).await.id();
    eventually(5, "second hand-off", || async {
        stream_entries(&redis.url()).await.iter().any(|(i, _, _)| *i == handed)
    })
    .await;
    app.public(&key, "/callbacks/cancel", json!({ "id": handed })).await.expect(200, None);
    eventually(5, "cancel message", || async {
        stream_entries(&redis.url()).await.iter().any(|(i, a, t)| *i == handed && *a == 1 && t == "callback.cancel")
    })
    .await;
}

async fn refused_publish_ends_in_submit_failed_and_redrive_hands_it_over_again(backend: Backend) {
    let (app, redis) = app_with_stream(backend, &[]).await;
    let tenant = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let key = app.tenant_with_service(&tenant, "sales", json!({ "maxDispatchAttempts": 2 })).await;
    // The stream key holds a string: Redis is up but answers every XADD with WRONGTYPE.
    let mut conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET").arg("NewCallbackStream").arg("not a stream").query_async(&mut conn).await.unwrap();
    let id = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.id();
    eventually(10, "SUBMIT_FAILED", || async {
        app.retrieve(&key, &id).await.body["data"]["callbackReason"] == "SUBMIT_FAILED"
    })
    .await;
    let item = admin_list(&app, &tenant, "").await[0].clone();
    assert_eq!((item["attempt"].as_i64(), item["failedAttempts"].as_i64()), (Some(1), Some(2)));
    assert_eq!(metric_value(&app.metrics().await, &format!(r#"CB_SUBMIT_FAILED{{tenant="{tenant}"}}"#)), Some(1.0));
    let _: () = redis::cmd("DEL").arg("NewCallbackStream").query_async(&mut conn).await.unwrap();
    let r = app
        .admin(
            Method::POST,
            &format!("/tenants/{tenant}/callbacks/redrive"),
            Some(json!({ "reason": "SUBMIT_FAILED" })),
        )
        .await;
    r.expect(200, None);
    assert_eq!(r.body["data"]["requeued"], json!([id]));
    eventually(5, "re-driven hand-off", || async {
        stream_entries(&redis.url()).await.iter().any(|(i, a, _)| *i == id && *a == 2)
    })
    .await;
    let again = app
        .admin(Method::POST, &format!("/tenants/{tenant}/callbacks/redrive"), Some(json!({ "ids": [id, "ghost"] })))
        .await;
    assert_eq!(again.body["data"], json!({ "requeued": [], "notFound": ["ghost"], "notEligible": [id] }));
}

async fn pause_stops_hand_offs_and_resume_drains_them(backend: Backend) {
    let (app, redis) = app_with_stream(backend, &[]).await;
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    app.admin(Method::PUT, "/tenants/acme/services/sales/dispatch", Some(json!({ "paused": true })))
        .await
        .expect(200, None);
    let a = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.id();
    let due = crate::helpers::in_seconds(1);
    let b = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(2), "desiredTime": due })).await.id();
    // A canary of another service, due with b: once the monitor has handed it over, it has had
    // its chance at a and b too.
    app.admin(Method::PUT, "/tenants/acme/services/canary", Some(json!({}))).await.expect(200, None);
    let canary =
        app.create(&key, json!({ "serviceName": "canary", "phoneNumber": phone(3), "desiredTime": due })).await.id();
    eventually(10, "the canary handed over", || async {
        stream_entries(&redis.url()).await.iter().any(|(i, _, _)| *i == canary)
    })
    .await;
    let handed: Vec<String> = stream_entries(&redis.url()).await.into_iter().map(|(i, _, _)| i).collect();
    assert_eq!(handed, vec![canary.clone()], "paused: nothing of sales handed over");
    let w = app.admin(Method::GET, "/tenants/acme/watermarks", None).await;
    assert_eq!(w.body["data"], json!({ "services": { "canary": 1, "sales": 1 }, "total": 2 }));
    app.admin(Method::PUT, "/tenants/acme/services/sales/dispatch", Some(json!({ "paused": false })))
        .await
        .expect(200, None);
    eventually(5, "backlog drained", || async {
        let ids: Vec<String> = stream_entries(&redis.url()).await.into_iter().map(|(i, _, _)| i).collect();
        ids.contains(&a) && ids.contains(&b)
    })
    .await;
    app.admin(Method::PUT, "/tenants/acme/services/nope/dispatch", Some(json!({ "paused": true })))
        .await
        .expect(404, Some("NOT_FOUND"));
}

async fn unacknowledged_hand_offs_are_resent_then_fail_and_stale_ones_expire(backend: Backend) {
    let (app, redis) = app_with_stream(backend, &[("RINGBACK__MONITOR__RECOVERY_SECONDS", "1")]).await;
    let key =
        app.tenant_with_service("acme", "deaf", json!({ "ackTimeoutSeconds": 1, "maxDispatchAttempts": 2 })).await;
    app.admin(Method::PUT, "/tenants/acme/services/slow", Some(json!({ "queuedTtlSeconds": 1 })))
        .await
        .expect(200, None);
    let deaf = app.create(&key, json!({ "serviceName": "deaf", "phoneNumber": phone(1) })).await.id();
    let slow = app.create(&key, json!({ "serviceName": "slow", "phoneNumber": phone(2) })).await.id();
    // No acknowledgement: re-sent as attempt 2, then the attempts are spent.
    eventually(10, "deaf callback failed", || async {
        app.retrieve(&key, &deaf).await.body["data"]["callbackReason"] == "SUBMIT_FAILED"
    })
    .await;
    let attempts: Vec<i64> =
        stream_entries(&redis.url()).await.into_iter().filter(|(i, _, _)| *i == deaf).map(|(_, a, _)| a).collect();
    assert_eq!(attempts, vec![1, 2]);
    // Handed over but never PROCESSING within queuedTtlSeconds.
    eventually(10, "slow callback expired", || async {
        app.retrieve(&key, &slow).await.body["data"]["callbackReason"] == "FAIL_TIMEOUT_TTL"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_down_callbacks_wait_and_the_backlog_drains() {
    // A 1 s claim lease, so the leases whose expiry could spend an attempt pass quickly.
    let (app, mut redis) = app_with_stream(Backend::Postgres, &[("RINGBACK__MONITOR__CLAIM_LEASE_SECONDS", "1")]).await;
    let tenant = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let key = app.tenant_with_service(&tenant, "sales", json!({ "maxDispatchAttempts": 1 })).await;
    let port = redis.port;
    redis.stop();
    let mut ids = Vec::new();
    for n in 0..10 {
        let body = if n % 2 == 0 {
            json!({ "serviceName": "sales", "phoneNumber": phone(n) })
        } else {
            json!({ "serviceName": "sales", "phoneNumber": phone(n), "desiredTime": crate::helpers::in_seconds(1) })
        };
        ids.push(app.create(&key, body).await.id());
    }
    let ready = |app: &TestApp| {
        let url = format!("{}/health/ready", app.internal);
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    eventually(10, "the monitor finds the stream down", || async {
        ready(&app).await["dependencies"]["orsRedis"] == "down"
    })
    .await;
    // What could spend an attempt is time-based (claim leases, here 1 s; the last callback is due
    // 1 s after booking): let the dispatch passes of several leases (200 ms ticks) run after it.
    app.monitor_passes(Pass::Dispatch, 25).await;
    let items = admin_list(&app, &tenant, "").await;
    assert_eq!(items.len(), 10);
    assert!(
        items
            .iter()
            .all(|i| i["failedAttempts"] == 0 && i["callbackState"] != "COMPLETED" && i["publishedTime"].is_null()),
        "{items:#?}"
    );
    let during = ready(&app).await;
    assert_eq!(
        (during["status"].as_str(), during["dependencies"]["orsRedis"].as_str()),
        (Some("ready"), Some("down")),
        "readiness follows the database only"
    );
    // Back on the same port: the backlog drains, each hand-off once, as attempt 1.
    let _redis = crate::helpers::RedisServer::start_on(port);
    eventually(15, "backlog drained", || async { stream_entries(&_redis.url()).await.len() == 10 }).await;
    let entries = stream_entries(&_redis.url()).await;
    assert!(entries.iter().all(|(_, attempt, _)| *attempt == 1));
    assert_eq!(ready(&app).await["dependencies"]["orsRedis"], "up");
}

/// A row left without its service (deleted before deletes refused unfinished callbacks, or by
/// hand): never handed over; when due it is completed as CANCELLED by the monitor with the note
/// "service deleted", counted, and purged after the TTL it carries, like any finished callback.
async fn a_callback_whose_service_vanished_is_cancelled_when_due_never_handed_over_and_purged(backend: Backend) {
    let (app, redis) = app_with_stream(backend, &[("RINGBACK__MONITOR__RECOVERY_SECONDS", "1")]).await;
    let tenant = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let key = app.tenant_with_service(&tenant, "gone", json!({ "ttlSeconds": 2 })).await;
    app.admin(Method::PUT, &format!("/tenants/{tenant}/services/kept"), Some(json!({}))).await.expect(200, None);
    let book = |service: &'static str, n: u32| {
        app.create(&key, json!({ "serviceName": service, "phoneNumber": phone(n), "desiredTime": in_seconds(2) }))
    };
    let orphan = book("gone", 1).await.id();
    let kept = book("kept", 2).await.id();
    sql(&app, &["DELETE FROM services WHERE name = 'gone'"]).await;

    eventually(15, "the orphan is cancelled by the monitor", || async {
        app.retrieve(&key, &orphan).await.body["data"]["callbackReason"] == "CANCELLED"
    })
    .await;
    let cancelled = app.retrieve(&key, &orphan).await.body["data"].clone();
    let last = cancelled["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["state"].as_str(), last["actor"].as_str(), last["note"].as_str()),
        (Some("COMPLETED"), Some("monitor"), Some("service deleted")),
        "{cancelled:#}"
    );
    eventually(10, "the kept callback is handed over", || async {
        stream_entries(&redis.url()).await.iter().any(|(id, _, _)| *id == kept)
    })
    .await;
    assert!(
        !stream_entries(&redis.url()).await.iter().any(|(id, _, _)| *id == orphan),
        "the orphan never reaches the voice platform"
    );
    let m = app.metrics().await;
    // The service is gone: its label is "unknown", as for every counter of a vanished service.
    let series = format!(r#"ges_callbacks_cancelled{{tenant="{tenant}",service="unknown"}}"#);
    assert_eq!(metric_value(&m, &series), Some(1.0), "counted once, as any cancel");
    eventually(10, "the orphan is purged after its ttlSeconds", || async {
        app.retrieve(&key, &orphan).await.status == 404
    })
    .await;
}
