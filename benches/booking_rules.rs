//! The cost of the pure booking rules: 31 days of 5-minute availability for a calendar with
//! holidays, and one booking decision. `cargo bench --bench booking_rules`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use jiff::tz::TimeZone;
use ringback::domain::booking::{decide, CreateRequest, ServiceRules};
use ringback::domain::calendar::{Calendar, CalendarBody, Hours, SpecialBody};
use ringback::domain::service::ServiceConfig;
use ringback::time::{Moment, DAY, HOUR};

fn calendar() -> Calendar {
    Calendar::parse(&CalendarBody {
        timezone: "America/New_York".into(),
        regular: vec!["Mon-Fri 08:00-20:00".into(), "Sat 10:00-14:00".into()],
        special: vec![SpecialBody { date: "12-24".into(), hours: vec!["08:00-12:00".into()] }],
        holidays: vec!["2026-11-26".into(), "12-25".into(), "01-01".into(), "2027-01-18".into()],
        effective: vec![],
    })
    .expect("calendar")
}

fn bench(c: &mut Criterion) {
    let cal = calendar();
    let config = ServiceConfig { slot_minutes: 5, max_future: "1y".into(), ..Default::default() };
    let rules =
        ServiceRules { config: &config, hours: Hours::Calendar(&cal), tz: TimeZone::get("America/New_York").unwrap() };
    let start = Moment::from_timestamp("2026-12-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap());
    let end = start + DAY * 31;
    let grid = rules.grid();
    let slots = grid.open_slots(rules.hours, start, end, start, Moment::MAX).len();
    println!("31 days of 5-minute availability: {slots} open slots");
    c.bench_function("availability_31_days_5_min_with_holidays", |b| {
        b.iter(|| black_box(grid.open_slots(rules.hours, black_box(start), end, start, Moment::MAX).len()))
    });
    let now = start;
    let request = CreateRequest {
        service_name: "s".into(),
        phone_raw: "+14155552671".into(),
        desired_ms: Some(start + DAY * 2 + HOUR * 15),
        priority: None,
        always_check_capacity: false,
        details: Default::default(),
    };
    c.bench_function("booking_decision_scheduled", |b| {
        b.iter(|| black_box(decide(black_box(&request), &rules, now).is_ok()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
