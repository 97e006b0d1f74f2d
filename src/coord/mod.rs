//! Coordination state shared by handlers and replicas: the API-key cache, the CORS origin set,
//! throttle counters (Redis or in-process), the dispatch stream, the Redis pools behind them, and
//! loads shared while recent (`recent_loads`).

pub mod client_limit;
pub mod key_cache;
pub mod origins;
pub mod recent_loads;
pub mod redis;
pub mod stream;
pub mod throttle;
pub mod webhook_sender;
