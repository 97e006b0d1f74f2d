//! `ringback serve --demo`: make sure tenant `demo` and its always-open service `demo-callbacks`
//! exist, issue a fresh API key (older ones stay valid) and print how to call the service.

use crate::domain::api_key::KeySigner;
use crate::domain::key_scope::KeyScope;
use crate::domain::service::ServiceConfig;
use crate::ops::keys::issue_key;
use crate::store::AuditEntry;
use crate::store::Store;

pub const TENANT: &str = "demo";
pub const SERVICE: &str = "demo-callbacks";

pub async fn prepare(store: &Store, signer: &KeySigner) -> anyhow::Result<DemoKeys> {
    let tenant = match store.get_tenant(TENANT).await? {
        Some(t) => t,
        None => {
            let audit = AuditEntry::new("demo", "PUT", format!("tenants/{TENANT}"), None);
            store.put_tenant(TENANT, &[], true, None, &audit, crate::time::now()).await?
        }
    };
    if store.get_service(&tenant.id, SERVICE).await?.is_none() {
        let config = ServiceConfig { virtual_queue: Some(SERVICE.to_string()), ..ServiceConfig::default() };
        let audit = AuditEntry::new("demo", "PUT", format!("tenants/{TENANT}/services/{SERVICE}"), None);
        crate::ops::services::put_service(store, &tenant.id, SERVICE, &config, &audit, crate::time::now())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let full = issue_key(store, signer, &tenant.id, TENANT, KeyScope::Full, "demo")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let widget = issue_key(store, signer, &tenant.id, TENANT, KeyScope::Widget, "demo")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(DemoKeys { full: full.key, widget: widget.key })
}

/// The demo's keys: a full one for the `curl` lines, a widget one for the booking page.
pub struct DemoKeys {
    pub full: String,
    pub widget: String,
}

/// What the operator sees on the console (stderr, so stdout stays pure JSON logs). `port` is the
/// listener for public calls (the external one when it is on). The page's key and service travel
/// in the URL fragment, which browsers never send to a server, so they stay out of access logs.
pub fn instructions(keys: &DemoKeys, port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}/engagement/v3/callbacks");
    let key = &keys.full;
    let page = format!("http://127.0.0.1:{port}/ui/#service={SERVICE}&key={}", keys.widget);
    format!(
        "open the booking page: {page}\n\
         demo api key: {key}\n\
         book a callback:\n  \
         curl -s -X POST {base}/create -H 'content-type: application/json' -H 'x-api-key: {key}' \
         -d '{{\"serviceName\":\"{SERVICE}\",\"phoneNumber\":\"+14155552671\"}}'\n\
         book one and read it back:\n  \
         id=$(curl -s -X POST {base}/create -H 'content-type: application/json' -H 'x-api-key: {key}' \
         -d '{{\"serviceName\":\"{SERVICE}\",\"phoneNumber\":\"+14155552671\"}}' | grep -o '\"id\":\"[^\"]*\"' | cut -d'\"' -f4) && \
         curl -s -X POST {base}/retrieve -H 'content-type: application/json' -H 'x-api-key: {key}' -d \"{{\\\"id\\\":\\\"$id\\\"}}\"\n"
    )
}
