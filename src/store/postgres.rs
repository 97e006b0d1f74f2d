//! PostgreSQL: one shared pool; the server enforces the statement timeout too.

use super::backend::{Backend, BackendKind};
use crate::config::DatabaseSettings;

pub(super) struct Postgres;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Backend for Postgres {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    fn connect_url(&self, url: &str) -> String {
        url.to_string()
    }

    fn session_setup(&self, settings: &DatabaseSettings) -> Vec<String> {
        vec![
            format!("SET statement_timeout = {}", settings.statement_timeout_ms),
            "SET lock_timeout = 2000".to_string(),
            // Queue queries ("due before $1") are selective only for their actual parameter; a
            // generic plan guesses a third of the table and scans it all. Plan each execution.
            "SET plan_cache_mode = force_custom_plan".to_string(),
        ]
    }

    fn writer_connections(&self, _settings: &DatabaseSettings) -> Option<u32> {
        None
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }
}
