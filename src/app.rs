//! Application: listeners, shared state, background tasks, graceful shutdown. Built the same way
//! by `main` and by the tests.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::http::{middleware, routes};
use crate::state::AppState;
use crate::store::Store;
use crate::telemetry::catalogue::{self, register_tenant_alarms};
use crate::telemetry::logging::LogControl;

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

impl Application {
    /// Connect the store (migrating it), bind the listeners, start background tasks.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with_log(settings, LogControl::detached("info")).await
    }

    pub async fn build_with_log(settings: Settings, log: LogControl) -> anyhow::Result<Application> {
        let settings = Arc::new(settings);
        let metrics = catalogue::install();
        crate::telemetry::publish_tolerances(&settings.alerts);
        let store = Store::connect(&settings.database).await?;
        let cache_redis = match settings.redis.url.as_str() {
            "" => None,
            url => Some(crate::coord::redis::pool(url, 16)?),
        };
        let throttles = crate::coord::throttle::Throttles::new(cache_redis);
        let state = AppState::new(settings.clone(), store, throttles, log, metrics);
        for tenant in state.store.list_tenants().await? {
            register_tenant_alarms(&tenant.name);
        }
        state.origins.refresh(&state.store).await?;
        sync_log_level(&state).await;

        let internal = match settings.internal_addr() {
            Some(addr) => Some(serve(&state, TcpListener::bind(addr)?, true)?),
            None => None,
        };
        let external = match settings.external_addr() {
            Some(addr) => Some(serve(&state, TcpListener::bind(addr)?, false)?),
            None => None,
        };
        let tasks = vec![tokio::spawn(sync_replicated_state(state.clone()))];
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

fn serve(state: &AppState, listener: TcpListener, internal: bool) -> std::io::Result<Listener> {
    let port = listener.local_addr()?.port();
    let data = web::Data::new(state.clone());
    let settings = &state.settings;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(from_fn(middleware::request_telemetry))
            .configure(|cfg| {
                routes::public(cfg);
                if internal {
                    routes::internal_only(cfg);
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

async fn sync_log_level(state: &AppState) {
    match state.store.get_setting(crate::http::admin::log_level::SETTING_KEY).await {
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
