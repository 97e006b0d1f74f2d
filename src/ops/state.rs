//! What every handler shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use super::refusals::RefusalTally;
use super::service_context::{reservation_reads, service_cache, ReservationReads, ServiceCache};
use super::tenant_directory::TenantDirectory;
use crate::config::Settings;
use crate::coord::client_limit::PerAddressLimit;
use crate::coord::key_cache::KeyCache;
use crate::coord::origins::OriginCache;
use crate::coord::stream::HandOffStream;
use crate::coord::throttle::Throttles;
use crate::coord::webhook_sender::WebhookSender;
use crate::store::{BookingWriter, Store};
use crate::telemetry::catalogue::{DB_POOL, REDIS_POOL};
use crate::telemetry::logging::LogControl;

/// The coordination pieces a replica is built with (`coord`).
pub struct Coord {
    pub keys: KeyCache,
    pub throttles: Throttles,
    pub handoff_stream: HandOffStream,
    pub webhooks: WebhookSender,
}

/// Passes the monitor has finished on this replica, by pass.
#[derive(Debug, Default)]
pub struct MonitorPasses {
    pub dispatch: std::sync::atomic::AtomicU64,
    pub recovery: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    /// Group commit of bookings (`store::writer`).
    pub bookings: BookingWriter,
    pub keys: KeyCache,
    /// Bookings with widget (public) keys per client address.
    pub widget_bookings: PerAddressLimit,
    /// Peers whose `X-Forwarded-For` names the client (`http::client_address`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Services with their calendars, as bookings read them.
    pub services: ServiceCache,
    /// Capacity reservations as slot proposals read them (`ops::booking::with_proposals`).
    pub reservations: ReservationReads,
    /// Tenant names and service configurations across tenants; the label resolver.
    pub directory: TenantDirectory,
    pub origins: OriginCache,
    pub throttles: Throttles,
    pub handoff_stream: HandOffStream,
    /// Signed, SSRF-checked requests to webhook endpoints.
    pub webhooks: WebhookSender,
    pub log: LogControl,
    pub metrics: PrometheusHandle,
    /// This process's identity as a holder of hand-off claims.
    pub replica_id: String,
    /// Wakes the monitor when an immediate callback is booked, so it is handed over at once.
    pub handoff_wake: Arc<tokio::sync::Notify>,
    /// Refused bookings not yet in the outcome report's roll-up (`ops::refusals`).
    pub refusals: RefusalTally,
    /// The monitor's passes so far on this replica (so a caller can wait for passes, not time).
    pub monitor_passes: Arc<MonitorPasses>,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        coord: Coord,
        bookings: BookingWriter,
        log: LogControl,
        metrics: PrometheusHandle,
    ) -> Self {
        let Coord { keys, throttles, handoff_stream, webhooks } = coord;
        AppState {
            keys,
            widget_bookings: PerAddressLimit::per_minute(settings.clients.widget_bookings_per_minute),
            trusted_proxies: settings.clients.trusted_networks().unwrap_or_default(),
            services: service_cache(),
            reservations: reservation_reads(),
            directory: TenantDirectory::default(),
            origins: OriginCache::default(),
            throttles,
            handoff_stream,
            webhooks,
            bookings,
            settings,
            store,
            log,
            metrics,
            replica_id: uuid::Uuid::now_v7().to_string(),
            handoff_wake: Arc::new(tokio::sync::Notify::new()),
            refusals: Default::default(),
            monitor_passes: Arc::default(),
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same state over another store handle (background tasks use their own connections).
    pub fn with_store(&self, store: Store) -> AppState {
        AppState { store, ..self.clone() }
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// The store's fault switches (admin fault injection, only with `faults.enabled`).
    pub fn store_faults(&self) -> &crate::store::StoreFaults {
        self.store.faults()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Pool gauges, set at scrape time so they are never a check period old.
    pub fn publish_pool_gauges(&self) {
        let state = self;
        let (idle, in_use) = state.store.pool_connections();
        metrics::gauge!(DB_POOL, "state" => "idle").set(f64::from(idle));
        metrics::gauge!(DB_POOL, "state" => "in_use").set(f64::from(in_use));
        let pools = [("cache", state.throttles.pool()), ("ors", state.handoff_stream.pool())];
        for (name, pool) in pools {
            if let Some(pool) = pool {
                let status = pool.status();
                let idle = status.available as f64;
                metrics::gauge!(REDIS_POOL, "pool" => name, "state" => "idle").set(idle);
                metrics::gauge!(REDIS_POOL, "pool" => name, "state" => "in_use").set(status.size as f64 - idle);
            }
        }
    }
}
