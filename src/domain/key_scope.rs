//! What an API key may do (api.md § Admin API, api-keys). A key placed in a web page is public:
//! `widget` keys may book and manage callbacks by id, read availability, open-for, queue status
//! and EWT, and handle call-in requests — everything but the list of callbacks, which returns
//! phone numbers. `full` keys (the default) may do everything.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyScope {
    #[default]
    Full,
    Widget,
    /// A voice platform behind a webhook (issue 24): it may report states of its tenant's
    /// callbacks and queue statistics on the external listener, and nothing else.
    Platform,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Full => "full",
            KeyScope::Widget => "widget",
            KeyScope::Platform => "platform",
        }
    }

    /// Whether a key of this scope may list callbacks.
    pub fn may_list_callbacks(self) -> bool {
        self == KeyScope::Full
    }
}

impl std::str::FromStr for KeyScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(KeyScope::Full),
            "widget" => Ok(KeyScope::Widget),
            "platform" => Ok(KeyScope::Platform),
            other => Err(format!("must be \"full\", \"widget\" or \"platform\", got \"{other}\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_only_full_lists() {
        for scope in [KeyScope::Full, KeyScope::Widget, KeyScope::Platform] {
            assert_eq!(scope.as_str().parse::<KeyScope>(), Ok(scope));
        }
        assert!("admin".parse::<KeyScope>().is_err());
        assert!(KeyScope::Full.may_list_callbacks() && !KeyScope::Widget.may_list_callbacks());
    }
}
