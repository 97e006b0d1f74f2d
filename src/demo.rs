//! `ringback serve --demo`: make sure tenant `demo` and its always-open service `demo-callbacks`
//! exist, issue a fresh API key (older ones stay valid) and print how to call the service.

use crate::domain::key_scope::KeyScope;
use crate::domain::service::ServiceConfig;
use crate::ops::keys::issue_key;
use crate::store::AuditEntry;
use crate::store::Store;
use crate::time::now_ms;

pub const TENANT: &str = "demo";
pub const SERVICE: &str = "demo-callbacks";

pub async fn prepare(store: &Store) -> anyhow::Result<String> {
    let tenant = match store.get_tenant(TENANT).await? {
        Some(t) => t,
        None => {
            let audit = AuditEntry::new("demo", "PUT", format!("tenants/{TENANT}"), None);
            store.put_tenant(TENANT, &[], true, &audit, now_ms()).await?
        }
    };
    if store.get_service(&tenant.id, SERVICE).await?.is_none() {
        let config = ServiceConfig { virtual_queue: Some(SERVICE.to_string()), ..ServiceConfig::default() };
        let audit = AuditEntry::new("demo", "PUT", format!("tenants/{TENANT}/services/{SERVICE}"), None);
        crate::ops::services::put_service(store, &tenant.id, SERVICE, &config, &audit, now_ms())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let key = issue_key(store, &tenant.id, TENANT, KeyScope::Full, "demo").await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(key.key)
}

/// What the operator sees on the console (stderr, so stdout stays pure JSON logs).
pub fn instructions(key: &str, port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}/engagement/v3/callbacks");
    format!(
        "demo api key: {key}\n\
         book a callback:\n  \
         curl -s -X POST {base}/create -H 'content-type: application/json' -H 'x-api-key: {key}' \
         -d '{{\"serviceName\":\"{SERVICE}\",\"phoneNumber\":\"+14155552671\"}}'\n\
         book one and read it back:\n  \
         id=$(curl -s -X POST {base}/create -H 'content-type: application/json' -H 'x-api-key: {key}' \
         -d '{{\"serviceName\":\"{SERVICE}\",\"phoneNumber\":\"+14155552671\"}}' | grep -o '\"id\":\"[^\"]*\"' | cut -d'\"' -f4) && \
         curl -s -X POST {base}/retrieve -H 'content-type: application/json' -H 'x-api-key: {key}' -d \"{{\\\"id\\\":\\\"$id\\\"}}\"\n"
    )
}
