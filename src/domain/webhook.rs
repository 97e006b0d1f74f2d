//! Webhooks (issue 24), the pure part: an endpoint's configuration with whole-body validation,
//! secrets in the Standard Webhooks form (`whsec_` + base64), the signature of a delivery, and
//! which addresses an outbound request may reach (SSRF rules).
//!
//! Standard Webhooks (standardwebhooks.com): headers `webhook-id`, `webhook-timestamp` (Unix
//! seconds) and `webhook-signature`, `v1,<base64 of HMAC-SHA256("{id}.{timestamp}.{body}")>`
//! under the secret's base64-decoded bytes; several signatures are space-separated (rotation).

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::error::FieldProblem;
use crate::time::Moment;

pub const SECRET_PREFIX: &str = "whsec_";
/// The longest a receiver may take to answer one delivery.
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// A lifecycle event: what an endpoint subscribes to (`events`) and the `type` of its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// Booked (the booking's transaction).
    Created,
    /// Moved to a new time while `SCHEDULED`.
    Rescheduled,
    /// Cancelled by the API, an operator or the monitor (reason `CANCELLED`).
    Cancelled,
    /// Claimed by the monitor and handed to the platform as its next attempt (`QUEUED`).
    Dispatched,
    /// The platform reported a new state short of `COMPLETED`.
    StateChanged,
    /// Finished otherwise than by a cancel: the platform's report, `SUBMIT_FAILED`, a TTL.
    Completed,
    /// An inbound call matched a call-in request.
    CallInMatched,
}

impl LifecycleEvent {
    pub const ALL: [LifecycleEvent; 7] = [
        LifecycleEvent::Created,
        LifecycleEvent::Rescheduled,
        LifecycleEvent::Cancelled,
        LifecycleEvent::Dispatched,
        LifecycleEvent::StateChanged,
        LifecycleEvent::Completed,
        LifecycleEvent::CallInMatched,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleEvent::Created => "callback.created",
            LifecycleEvent::Rescheduled => "callback.rescheduled",
            LifecycleEvent::Cancelled => "callback.cancelled",
            LifecycleEvent::Dispatched => "callback.dispatched",
            LifecycleEvent::StateChanged => "callback.state_changed",
            LifecycleEvent::Completed => "callback.completed",
            LifecycleEvent::CallInMatched => "call_in.matched",
        }
    }

    fn known(name: &str) -> bool {
        LifecycleEvent::ALL.iter().any(|e| e.as_str() == name)
    }
}

/// An endpoint as an admin writes it (`PUT …/webhooks/{name}`); its secret is kept apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EndpointConfig {
    pub url: String,
    /// Lifecycle events sent here; empty: a hand-off-only endpoint.
    pub events: Vec<String>,
    /// Services whose events are sent here; empty: all.
    pub services: Vec<String>,
    pub enabled: bool,
    /// Lifecycle events carry the number in clear (hand-offs always do: the platform dials it).
    pub include_phone_number: bool,
    pub timeout_ms: u64,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            url: String::new(),
            events: Vec::new(),
            services: Vec::new(),
            enabled: true,
            include_phone_number: false,
            timeout_ms: 5_000,
        }
    }
}

/// Where outbound requests may go (`webhooks.allow_http`, `webhooks.allowed_networks`).
#[derive(Debug, Clone, Default)]
pub struct OutboundRules {
    /// Hosts that may be called over plain `http` (tests, a receiver on the same host).
    pub allow_http: Vec<String>,
    /// Networks allowed although private, loopback or link-local.
    pub allowed_networks: Vec<IpNet>,
}

impl OutboundRules {
    /// Whether a request may be sent to `ip`: public addresses, or ones inside an allowed network.
    pub fn may_reach(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_internal(ip) || self.allowed_networks.iter().any(|n| n.contains(&ip))
    }

    /// The URL's problem, if any: `https` only (but for `allow_http` hosts), no credentials, a
    /// host, and an IP literal only where it may be reached.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("is not a URL: {e}"))?;
        let host = url.host_str().ok_or("must name a host")?.to_string();
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http.iter().any(|h| h.eq_ignore_ascii_case(&host)) => {}
            "http" => return Err(format!("must be https (http only for hosts in webhooks.allow_http; {host} is not)")),
            other => return Err(format!("must be https, not {other}")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials; the signature authenticates Ringback".into());
        }
        if let Some(ip) = literal_ip(&url) {
            if !self.may_reach(ip) {
                return Err(format!("{ip} is a private, loopback, link-local or reserved address"));
            }
        }
        Ok(url)
    }
}

/// The URL's host when it is an IP literal.
pub fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// IPv4-mapped IPv6 as the IPv4 address it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Private, loopback, link-local, shared (100.64/10), "this network" (0/8), multicast, broadcast,
/// documentation, unique-local and unspecified addresses: nothing a public receiver lives on.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

impl EndpointConfig {
    /// Parse an admin body (defaults filled, unknown fields refused) and validate it whole.
    pub fn from_admin_body(body: Value, rules: &OutboundRules) -> Result<EndpointConfig, Vec<FieldProblem>> {
        let config: EndpointConfig = serde_path_to_error::deserialize(body).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_string() } else { path };
            vec![FieldProblem::new(field, e.inner().to_string())]
        })?;
        let mut problems = Vec::new();
        if let Err(problem) = rules.check_url(&config.url) {
            problems.push(FieldProblem::new("url", problem));
        }
        for (i, event) in config.events.iter().enumerate() {
            if !LifecycleEvent::known(event) {
                let names: Vec<&str> = LifecycleEvent::ALL.iter().map(|e| e.as_str()).collect();
                problems
                    .push(FieldProblem::new(format!("events[{i}]"), format!("must be one of {}", names.join(", "))));
            }
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&config.timeout_ms) {
            problems.push(FieldProblem::new("timeoutMs", format!("must be 1-{MAX_TIMEOUT_MS}")));
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// The (event, service) pairs this endpoint hears (`""`: every service), as the
    /// `webhook_subscriptions` rows a change's transaction joins; none while disabled.
    pub fn subscriptions(&self) -> Vec<(&str, &str)> {
        if !self.enabled {
            return Vec::new();
        }
        static EVERY_SERVICE: [String; 1] = [String::new()];
        let services = if self.services.is_empty() { &EVERY_SERVICE[..] } else { &self.services[..] };
        let mut pairs: Vec<(&str, &str)> =
            self.events.iter().flat_map(|e| services.iter().map(move |s| (e.as_str(), s.as_str()))).collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }
}

/// A new secret: `whsec_` and the base64 of 24 random bytes (shown once, at creation).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// Secrets at rest (`webhooks.encryption_key_file`): AES-256-GCM under the deployment's key, a
/// fresh 96-bit nonce per value, stored as `enc:v1:` + base64(nonce ‖ ciphertext). A value without
/// the prefix is a secret stored before encryption was configured, read as it is.
#[derive(Clone)]
pub struct SecretBox {
    cipher: aes_gcm::Aes256Gcm,
}

const SEALED_PREFIX: &str = "enc:v1:";

impl SecretBox {
    /// From a 32-byte key (the key file holds its base64).
    pub fn new(key: &[u8]) -> Result<SecretBox, String> {
        use aes_gcm::KeyInit;
        aes_gcm::Aes256Gcm::new_from_slice(key)
            .map(|cipher| SecretBox { cipher })
            .map_err(|_| format!("the key must be 32 bytes, not {}", key.len()))
    }

    pub fn seal(&self, plaintext: &str) -> String {
        use aes_gcm::aead::{Aead, AeadCore, OsRng};
        let nonce = aes_gcm::Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self.cipher.encrypt(&nonce, plaintext.as_bytes()).expect("AES-GCM encrypts any length we store");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(&self, stored: &str) -> Result<String, String> {
        use aes_gcm::aead::Aead;
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else { return Ok(stored.to_string()) };
        let bytes = STANDARD.decode(encoded).map_err(|_| "a sealed secret that is not base64".to_string())?;
        if bytes.len() < 12 {
            return Err("a sealed secret too short to hold its nonce".into());
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(aes_gcm::Nonce::from_slice(nonce), sealed)
            .map_err(|_| "a sealed secret that does not open with this key (another key, or altered)".to_string())?;
        String::from_utf8(plain).map_err(|_| "a sealed secret that is not text".to_string())
    }
}

/// A value as it is stored: sealed when a box is configured, else as given.
pub fn at_rest(secrets: Option<&SecretBox>, plaintext: &str) -> String {
    secrets.map_or_else(|| plaintext.to_string(), |b| b.seal(plaintext))
}

/// The `webhook-timestamp` header of a request sent at `at`: whole seconds since the epoch.
pub fn timestamp_header(at: Moment) -> String {
    // Whole seconds, truncated toward zero (as `jiff::Timestamp::as_second`).
    (at.as_ms() / 1000).to_string()
}

/// The `webhook-signature` header of a request sent at `at`: one `v1,<signature>` per secret,
/// space-separated.
pub fn signature_header(secrets: &[&str], id: &str, at: Moment, body: &[u8]) -> String {
    let timestamp = timestamp_header(at);
    secrets.iter().map(|s| format!("v1,{}", sign(s, id, &timestamp, body))).collect::<Vec<_>>().join(" ")
}

fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = STANDARD.decode(secret.trim_start_matches(SECRET_PREFIX)).unwrap_or_else(|_| secret.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> OutboundRules {
        OutboundRules { allow_http: vec!["127.0.0.1".into()], allowed_networks: vec!["127.0.0.0/8".parse().unwrap()] }
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_test_vector() {
        // From the Standard Webhooks specification's reference libraries' tests.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let header =
            signature_header(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", Moment::from_ms(1_614_265_330_000), body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn sealed_secrets_open_with_their_key_only_and_old_plain_ones_read_as_given() {
        let key = [7u8; 32];
        let sealed_box = SecretBox::new(&key).unwrap();
        let sealed = sealed_box.seal("whsec_abc");
        assert!(sealed.starts_with("enc:v1:") && !sealed.contains("whsec_abc"));
        assert_ne!(sealed, sealed_box.seal("whsec_abc"), "a fresh nonce each time");
        assert_eq!(sealed_box.open(&sealed).unwrap(), "whsec_abc");
        assert!(SecretBox::new(&[8u8; 32]).unwrap().open(&sealed).is_err(), "another key");
        assert_eq!(sealed_box.open("whsec_plain").unwrap(), "whsec_plain");
        assert!(SecretBox::new(&[1u8; 16]).is_err());
    }

    #[test]
    fn two_secrets_sign_twice() {
        let header = signature_header(&[&new_secret(), &new_secret()], "a:1", Moment::from_ms(1_000), b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let strict = OutboundRules::default();
        for ip in [
            "10.0.0.1",
            "169.254.169.254",
            "127.0.0.1",
            "100.64.1.1",
            "0.1.2.3",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!strict.may_reach(ip.parse().unwrap()), "{ip}");
        }
        assert!(strict.may_reach("93.184.216.34".parse().unwrap()));
        assert!(rules().may_reach("127.0.0.1".parse().unwrap()));
        assert!(!rules().may_reach("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn urls_must_be_https_but_for_allowed_hosts_and_never_internal_literals() {
        let strict = OutboundRules::default();
        assert!(strict.check_url("https://hooks.example.com/x").is_ok());
        assert!(strict.check_url("http://hooks.example.com/x").is_err());
        assert!(strict.check_url("https://169.254.169.254/latest").is_err());
        assert!(strict.check_url("https://10.0.0.1/").is_err());
        assert!(strict.check_url("https://user:pw@hooks.example.com/").is_err());
        assert!(strict.check_url("ftp://hooks.example.com/").is_err());
        assert!(rules().check_url("http://127.0.0.1:9/x").is_ok());
    }

    #[test]
    fn an_endpoint_body_is_validated_whole() {
        let e = EndpointConfig::from_admin_body(
            json!({ "url": "http://x.example", "events": ["callback.nope"], "timeoutMs": 40_000 }),
            &OutboundRules::default(),
        )
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["url", "events[0]", "timeoutMs"]);
        let ok = EndpointConfig::from_admin_body(json!({ "url": "http://127.0.0.1:9/h" }), &rules()).unwrap();
        assert_eq!((ok.enabled, ok.timeout_ms, ok.events.len()), (true, 5_000, 0));
        assert!(ok.subscriptions().is_empty(), "no events: a hand-off-only endpoint");
        let mut hears = ok.clone();
        hears.events = vec!["callback.created".into(), "callback.created".into()];
        assert_eq!(hears.subscriptions(), [("callback.created", "")]);
        hears.services = vec!["sales".into(), "support".into()];
        assert_eq!(hears.subscriptions(), [("callback.created", "sales"), ("callback.created", "support")]);
        hears.enabled = false;
        assert!(hears.subscriptions().is_empty(), "a disabled endpoint hears nothing");
    }
}
