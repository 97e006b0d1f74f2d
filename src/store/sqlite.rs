//! SQLite, the embedded default: one file in WAL mode, one writer connection, several readers.

use super::backend::{Backend, BackendKind};
use crate::config::DatabaseSettings;

pub(super) struct Sqlite;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Backend for Sqlite {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    /// `sqlite://ringback.db` creates the file when it is missing.
    fn connect_url(&self, url: &str) -> String {
        if url.contains("mode=") || url.contains(":memory:") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        }
    }

    fn session_setup(&self, settings: &DatabaseSettings) -> Vec<String> {
        vec![
            "PRAGMA journal_mode = WAL".to_string(),
            // FULL: an acknowledged booking survives power loss, not only a process crash.
            "PRAGMA synchronous = FULL".to_string(),
            "PRAGMA foreign_keys = ON".to_string(),
            format!("PRAGMA busy_timeout = {}", settings.statement_timeout_ms),
        ]
    }

    fn writer_connections(&self, _settings: &DatabaseSettings) -> Option<u32> {
        Some(1)
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }
}
