//! Coordination state shared by handlers: the API-key cache and the CORS origin set.
//! (Redis-backed throttle counters and the dispatch stream join here in later work.)

pub mod key_cache;
pub mod origins;
