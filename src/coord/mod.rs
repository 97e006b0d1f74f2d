//! Coordination state shared by handlers and replicas: the API-key cache, the CORS origin set,
//! throttle counters (Redis or in-process) and the Redis pools behind them.

pub mod key_cache;
pub mod origins;
pub mod redis;
pub mod stream;
pub mod throttle;
