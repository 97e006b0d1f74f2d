//! Service configuration writes (admin API, demo set-up).

use crate::domain::service::ServiceConfig;
use crate::error::ApiError;
use crate::store::{AuditEntry, ServiceRecord, ServiceWrite, Store};
use crate::telemetry::catalogue::RBAC_CREATE_VQ_PROXY_ERROR;
use crate::time::Moment;

/// Store a service with its virtual-queue proxy record, or nothing: a proxy record that cannot be
/// written raises `RBAC_CREATE_VQ_PROXY_ERROR` and answers 500.
pub async fn put_service(
    store: &Store,
    tenant_id: &str,
    name: &str,
    config: &ServiceConfig,
    audit: &AuditEntry,
    now: Moment,
) -> Result<ServiceRecord, ApiError> {
    match store.put_service(tenant_id, name, config, audit, now).await? {
        ServiceWrite::Stored(record) => Ok(*record),
        ServiceWrite::ProxyWriteFailed(cause) => {
            metrics::counter!(RBAC_CREATE_VQ_PROXY_ERROR).increment(1);
            tracing::error!(error = %cause, "could not write the virtual-queue proxy record; the service was not stored");
            Err(ApiError::internal())
        }
    }
}
