//! Operators (issue 26): people with an admin-API token of their own, a role, and optionally a
//! list of tenants they may see. The configured `admin.tokens` are operators too: unlimited admins.
//!
//! | role | may |
//! |---|---|
//! | `admin` | everything |
//! | `supervisor` | read; callbacks and call-in requests (cancel, re-drive, edit); pause/resume dispatch |
//! | `monitor` | read |
//! | `developer` | read; API keys and webhook endpoints |

use std::str::FromStr;

use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Supervisor,
    Monitor,
    Developer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Supervisor, Role::Monitor, Role::Developer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Monitor => "monitor",
            Role::Developer => "developer",
        }
    }

    /// Whether this role may do what a route needs.
    pub fn may(self, need: Need) -> bool {
        match need {
            Need::Read => true,
            Need::Admin => self == Role::Admin,
            Need::Operate => matches!(self, Role::Admin | Role::Supervisor),
            Need::ReadKeys => matches!(self, Role::Admin | Role::Developer | Role::Monitor),
            Need::Develop => matches!(self, Role::Admin | Role::Developer),
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| "must be one of admin, supervisor, monitor, developer".to_string())
    }
}

/// What an admin route needs of its caller's role (the rule of each route: `http::roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any role: configuration, callbacks, audit (a tenant-limited operator sees its tenants only).
    Read,
    /// API keys and webhook endpoints, read: not a supervisor's business.
    ReadKeys,
    /// Day-to-day operations on callbacks and call-in requests, and pausing a service's dispatch.
    Operate,
    /// API keys and webhook endpoints, written.
    Develop,
    /// Configuration written, operators, the log level, faults.
    Admin,
}

/// Who calls the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The name the audit log records (`admin-token-<n>` for a configured token).
    pub name: String,
    pub role: Role,
    /// The tenants this operator may see; `None`: all of them.
    pub tenants: Option<Vec<String>>,
}

impl Operator {
    /// The holder of the `n`-th (0-based) configured `admin.tokens`: an unlimited admin.
    pub fn configured_token(n: usize) -> Operator {
        Operator { name: format!("admin-token-{}", n + 1), role: Role::Admin, tenants: None }
    }

    pub fn sees(&self, tenant: &str) -> bool {
        self.tenants.as_ref().is_none_or(|ts| ts.iter().any(|t| t == tenant))
    }

    pub fn is_limited(&self) -> bool {
        self.tenants.is_some()
    }
}

/// An operator's names: those of tenants, plus `@` (an e-mail address reads well in the audit log).
pub fn is_valid_operator_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
        && !name.starts_with("admin-token-")
}

/// A new operator token: `rbo_` and 32 random bytes, URL-safe base64. Shown once, stored hashed.
pub fn new_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub const TOKEN_PREFIX: &str = "rbo_";

/// How a token is stored and looked up: it has 256 random bits, so one SHA-256 is enough.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_what_the_table_says() {
        use Need::*;
        let table = [
            (Role::Admin, [true, true, true, true, true]),
            (Role::Supervisor, [true, false, true, false, false]),
            (Role::Monitor, [true, true, false, false, false]),
            (Role::Developer, [true, true, false, true, false]),
        ];
        for (role, expected) in table {
            let got = [Read, ReadKeys, Operate, Develop, Admin].map(|n| role.may(n));
            assert_eq!(got, expected, "{role:?}");
        }
    }

    #[test]
    fn roles_parse_and_tokens_hash() {
        assert_eq!("supervisor".parse::<Role>(), Ok(Role::Supervisor));
        assert!("root".parse::<Role>().is_err());
        let token = new_token();
        assert!(token.starts_with("rbo_") && token.len() == 47, "{token}");
        assert_ne!(new_token(), token);
        assert_eq!(token_hash(&token), token_hash(&token));
        assert!(is_valid_operator_name("ana@example.com"));
        assert!(!is_valid_operator_name("admin-token-1"), "a configured token's name is not an operator's");
        assert!(!is_valid_operator_name("a b"));
    }

    #[test]
    fn a_limited_operator_sees_its_tenants_only() {
        let op = Operator { name: "ana".into(), role: Role::Monitor, tenants: Some(vec!["acme".into()]) };
        assert!(op.sees("acme") && !op.sees("globex") && op.is_limited());
        assert!(Operator::configured_token(0).sees("globex"));
    }
}
