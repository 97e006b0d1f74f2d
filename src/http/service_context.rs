//! A service with its calendar, loaded for one request, and the rules booking derives from them.

use jiff::tz::TimeZone;

use crate::domain::booking::ServiceRules;
use crate::domain::calendar::{Calendar, Hours};
use crate::domain::names::is_valid_name;
use crate::error::{ApiError, Reason};
use crate::state::AppState;
use crate::store::{ServiceRecord, Tenant};

pub struct ServiceContext {
    pub record: ServiceRecord,
    pub calendar: Option<Calendar>,
}

impl ServiceContext {
    pub fn rules(&self) -> ServiceRules<'_> {
        let config = &self.record.config;
        let tz = config
            .timezone
            .as_deref()
            .and_then(|z| TimeZone::get(z).ok())
            .or_else(|| self.calendar.as_ref().map(|c| c.timezone().clone()))
            .unwrap_or(TimeZone::UTC);
        let hours = match &self.calendar {
            Some(c) => Hours::Calendar(c),
            None => Hours::AlwaysOpen,
        };
        ServiceRules { config, hours, tz }
    }

    pub fn name(&self) -> &str {
        &self.record.name
    }
}

pub fn unknown_service() -> ApiError {
    ApiError::new(Reason::UnknownService, "serviceName is not a service of this tenant")
}

/// An enabled service of the tenant, or 400 `UNKNOWN_SERVICE`.
pub async fn load(state: &AppState, tenant: &Tenant, name: &str) -> Result<ServiceContext, ApiError> {
    let record = match is_valid_name(name) {
        true => state.store.get_service(&tenant.id, name).await?,
        false => None,
    };
    let record = record.filter(|r| r.config.enabled).ok_or_else(unknown_service)?;
    let calendar = load_calendar(state, tenant, record.config.calendar.as_deref()).await?;
    Ok(ServiceContext { record, calendar })
}

pub async fn load_calendar(
    state: &AppState,
    tenant: &Tenant,
    name: Option<&str>,
) -> Result<Option<Calendar>, ApiError> {
    let Some(name) = name else { return Ok(None) };
    match state.store.get_calendar(&tenant.id, name).await? {
        Some(body) => Ok(Calendar::parse(&body).ok()),
        None => {
            // Deleting a calendar in use is refused, so this is a race with such a delete.
            tracing::warn!(calendar = %name, "service refers to a missing calendar; treating it as always open");
            Ok(None)
        }
    }
}
