//! Application: listeners, shared state, background tasks, graceful shutdown. Built the same way
//! by `main` and by the tests.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::coord::key_cache::KeyCache;
use crate::coord::stream::{HandOffStream, RedisStream};
use crate::http::{middleware, routes, Surface};
use crate::ops::AppState;
use crate::store::Store;
use crate::telemetry::catalogue::{self, register_tenant_alarms};
use crate::telemetry::logging::LogControl;
use crate::telemetry::{event_loop, supervise};

/// How often histogram samples are drained into their buckets (`metrics_upkeep`).
const METRICS_UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// How often replicated state (CORS origins, log level) is re-read from the store.
const SYNC_PERIOD: Duration = Duration::from_secs(10);

pub struct Application {
    state: AppState,
    internal: Option<Listener>,
    external: Option<Listener>,
    tasks: Vec<JoinHandle<()>>,
}

struct Listener {
    server: Server,
    port: u16,
}

/// How `serve` was asked to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// Run the dialer simulator in-process (`serve --demo`), so callbacks complete.
    pub demo: bool,
}

impl Application {
    /// Connect the store (migrating it), bind the listeners, start background tasks.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with(settings, LogControl::detached("info"), BuildOptions::default()).await
    }

    pub async fn build_with(
        mut settings: Settings,
        log: LogControl,
        options: BuildOptions,
    ) -> anyhow::Result<Application> {
        if options.demo && settings.internal.tokens.is_empty() {
            // The in-process simulator reports over the internal API like a real platform.
            settings.internal.tokens.push(format!("demo-{}", uuid::Uuid::new_v4().simple()));
        }
        if let Some(problem) = settings.dispatch_problem(options.demo) {
            anyhow::bail!(problem);
        }
        let settings = Arc::new(settings);
        let metrics = catalogue::install();
        crate::telemetry::publish_tolerances(&settings.alerts);
        let store = Store::connect(&settings.database).await?;
        if store.kind() == crate::store::BackendKind::Postgres {
            // The database's health gauge; SQLite is in-process and has none.
            store.breaker().report_to(catalogue::POSTGRES_STATUS);
        }
        let cache_redis = match settings.redis.url.as_str() {
            "" => None,
            url => Some(crate::coord::redis::pool(url, 16)?),
        };
        let throttles =
            crate::coord::throttle::Throttles::start(cache_redis, crate::ops::keys::load_number_hasher(&store).await?);
        let (handoff_stream, local_stream) = handoff_stream_for(&settings, options.demo)?;
        if settings.clients.unknown_key_lookups_per_minute.is_some() {
            tracing::warn!(
                "clients.unknown_key_lookups_per_minute is removed and ignored: forged API keys are refused without a \
                 lookup (signed keys); delete the setting"
            );
        }
        let key_ttl = Duration::from_secs(settings.cache.key_ttl_seconds);
        let signer = crate::ops::keys::load_signer(&settings, &store).await?;
        let keys = KeyCache::new(key_ttl, signer, store.legacy_key_hashes().await?);
        let webhooks = crate::coord::webhook_sender::WebhookSender::new(
            settings.webhooks.rules()?,
            settings.webhooks.secret_box()?,
        )?;
        let coord = crate::ops::Coord { keys, throttles, handoff_stream: handoff_stream.clone(), webhooks };
        // Every long-running task starts here: the booking writer's and throttles' batching
        // loops above and below, the monitor, the health checker and the followers further down.
        let bookings = crate::store::BookingWriter::spawn(store.clone(), settings.booking.queue_limit);
        let state = AppState::new(settings.clone(), store, coord, bookings, log, metrics);
        for tenant in state.store.list_tenants().await? {
            register_tenant_alarms(&tenant.name);
        }
        state.origins.refresh(&state.store).await?;
        sync_log_level(&state).await;

        let internal = match settings.internal_addr() {
            Some(addr) => Some(serve(&state, TcpListener::bind(addr)?, Surface::Internal)?),
            None => None,
        };
        let external = match settings.external_addr() {
            Some(addr) => Some(serve(&state, TcpListener::bind(addr)?, Surface::External)?),
            None => None,
        };
        let probe_period = Duration::from_millis(settings.health.lag_probe_ms);
        // The monitor and the health checker run on connections HTTP load cannot take.
        let background = state.with_store(state.store.for_background());
        let mut tasks = vec![
            supervise::spawn("replicated-state-sync", {
                let state = state.clone();
                move || sync_replicated_state(state.clone())
            }),
            supervise::spawn("metrics-upkeep", {
                let metrics = state.metrics.clone();
                move || metrics_upkeep(metrics.clone())
            }),
            supervise::spawn("legacy-key-sync", {
                let state = state.clone();
                move || sync_legacy_keys(state.clone(), key_ttl)
            }),
            supervise::spawn("refusal-tally", {
                let state = background.clone();
                move || crate::ops::refusals::flush_loop(state.refusals.clone(), state.store.clone())
            }),
            supervise::spawn("health-checker", {
                let state = background.clone();
                move || crate::health_checker::run(state.clone())
            }),
            // The runtime that hosts the monitor watches its own lag too.
            supervise::spawn("eventloop-probe-monitor", move || event_loop::probe("monitor".into(), probe_period)),
        ];
        tasks.extend(crate::monitor::spawn(background, handoff_stream.clone()));
        if options.demo {
            let port = internal
                .as_ref()
                .map(|l| l.port)
                .ok_or_else(|| anyhow::anyhow!("--demo needs the internal listener"))?;
            let config = crate::simulator::SimulatorConfig {
                internal_url: format!("http://127.0.0.1:{port}"),
                token: settings.internal.tokens[0].clone(),
                ..Default::default()
            };
            let source = match (local_stream, &handoff_stream) {
                (Some(rx), _) => crate::simulator::Source::Local(rx),
                (None, HandOffStream::Redis(stream)) => crate::simulator::Source::Redis {
                    url: settings.ors_redis_url().to_string(),
                    stream: stream.stream_name().to_string(),
                    group: "ringback-demo".into(),
                    consumer: state.replica_id.clone(),
                },
                (None, _) => unreachable!("demo without Redis always has a local stream"),
            };
            tasks.push(tokio::spawn(async move {
                if let Err(e) = crate::simulator::run(source, config).await {
                    tracing::error!(error = %e, "the in-process dialer simulator stopped");
                }
            }));
        }
        Ok(Application { state, internal, external, tasks })
    }

    pub fn internal_port(&self) -> Option<u16> {
        self.internal.as_ref().map(|l| l.port)
    }

    pub fn external_port(&self) -> Option<u16> {
        self.external.as_ref().map(|l| l.port)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A handle that stops the application gracefully (what SIGTERM does).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            state: self.state.clone(),
            handles: [&self.internal, &self.external].into_iter().flatten().map(|l| l.server.handle()).collect(),
        }
    }

    /// Serve until SIGTERM/SIGINT or a `Stopper`, then drain and close.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopper = self.stopper();
        let signals = tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received; draining");
            stopper.stop().await;
        });
        let servers: Vec<Server> = [self.internal, self.external].into_iter().flatten().map(|l| l.server).collect();
        let results = futures_util::future::join_all(servers).await;
        signals.abort();
        for task in self.tasks {
            task.abort();
        }
        self.state.store.close().await;
        tracing::info!("stopped");
        results.into_iter().collect()
    }
}

#[derive(Clone)]
pub struct Stopper {
    state: AppState,
    handles: Vec<ServerHandle>,
}

impl Stopper {
    /// Fail readiness, stop accepting, let in-flight requests finish.
    pub async fn stop(&self) {
        self.state.begin_shutdown();
        futures_util::future::join_all(self.handles.iter().map(|h| h.stop(true))).await;
    }

    /// Ask the listeners to stop without waiting for them (for `Drop` in tests).
    pub fn request_stop(&self) {
        self.state.begin_shutdown();
        for handle in &self.handles {
            // The stop command is sent when `stop` is called; the future only awaits completion.
            drop(handle.stop(false));
        }
    }
}

/// The dispatch stream: Redis when configured; else the in-process simulator's channel in demo
/// mode; else hand-offs are only logged.
fn handoff_stream_for(
    settings: &Settings,
    demo: bool,
) -> anyhow::Result<(HandOffStream, Option<tokio::sync::mpsc::UnboundedReceiver<crate::coord::stream::Message>>)> {
    let url = settings.ors_redis_url();
    // `monitor.dispatch = "webhooks"`: no stream at all, even with a Redis URL (the cache's).
    if settings.monitor.dispatch == crate::config::DispatchMode::Webhooks {
        return Ok((HandOffStream::LogOnly, None));
    }
    if !url.is_empty() {
        let pool = crate::coord::redis::pool(url, 8)?;
        metrics::gauge!(crate::telemetry::catalogue::ORS_REDIS_STATUS).set(0.0);
        let stream = RedisStream::new(pool, settings.ors_redis.stream.clone(), settings.ors_redis.max_len);
        return Ok((HandOffStream::Redis(stream), None));
    }
    if demo {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        return Ok((HandOffStream::Local(tx), Some(rx)));
    }
    Ok((HandOffStream::LogOnly, None))
}

fn serve(state: &AppState, listener: TcpListener, surface: Surface) -> std::io::Result<Listener> {
    let port = listener.local_addr()?.port();
    let data = web::Data::new(state.clone());
    let settings = &state.settings;
    let probe_period = Duration::from_millis(settings.health.lag_probe_ms);
    let faults = settings.faults.enabled;
    let workers_started = Arc::new(AtomicUsize::new(0));
    let mut server = HttpServer::new(move || {
        // actix calls this factory once per worker, on that worker's own runtime, in a thread it
        // names `actix-server worker <index>`; a restarted worker keeps its index, so its series
        // carries on instead of leaving a stale one behind.
        let started = workers_started.fetch_add(1, Ordering::Relaxed);
        let n = std::thread::current()
            .name()
            .and_then(|name| name.strip_prefix("actix-server worker "))
            .and_then(|index| index.parse::<usize>().ok())
            .unwrap_or(started);
        let name = match surface {
            Surface::Internal => "internal",
            Surface::External => "external",
        };
        event_loop::start_on_worker(format!("{name}-{n}"), probe_period);
        App::new()
            .app_data(data.clone())
            .app_data(surface)
            .wrap(from_fn(middleware::request_telemetry))
            .configure(|cfg| {
                routes::public(cfg);
                if surface == Surface::Internal {
                    routes::internal_only(cfg, faults);
                }
            })
            .default_service(web::to(routes::not_found))
    })
    .disable_signals()
    .shutdown_timeout(settings.http.shutdown_timeout_seconds);
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    let server = server.listen(listener)?.run();
    Ok(Listener { server, port })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Other replicas' admin writes reach this one within `SYNC_PERIOD` (< 30 s).
async fn sync_replicated_state(state: AppState) {
    let mut tick = tokio::time::interval(SYNC_PERIOD);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = state.origins.refresh(&state.store).await {
            tracing::warn!(error = %e, "could not refresh CORS origins");
        }
        sync_log_level(&state).await;
    }
}

/// Histograms keep each sample until they are drained into their buckets, which a scrape does; with
/// no scraper (the embedded default, a Prometheus outage) a busy replica's memory would grow by ~16
/// bytes a request. Draining every few seconds bounds it whatever the scrapes.
async fn metrics_upkeep(metrics: metrics_exporter_prometheus::PrometheusHandle) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP_PERIOD);
    loop {
        tick.tick().await;
        metrics.run_upkeep();
    }
}

/// The set of legacy keys is re-read every key TTL, so a revoked legacy key leaves it (and costs
/// no lookup) within that time on every replica.
async fn sync_legacy_keys(state: AppState, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        match state.store.legacy_key_hashes().await {
            Ok(hashes) => state.keys.set_legacy(hashes),
            Err(e) => tracing::warn!(error = %e, "could not re-read the legacy API keys; keeping the last set"),
        }
    }
}

async fn sync_log_level(state: &AppState) {
    match state.store.get_setting(crate::ops::configuration::LOG_LEVEL_SETTING).await {
        Ok(Some(level)) if level != state.log.current() => {
            if let Err(e) = state.log.set(&level) {
                tracing::warn!(error = %e, "stored log level is not valid; keeping the current one");
            } else {
                tracing::info!(level = %level, "log level changed by another replica");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the stored log level"),
    }
}
