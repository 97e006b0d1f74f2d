//! A rate limit per client address (issue 22): widget keys are public, so their bookings are
//! limited per address, never per key (a bucket shared by every visitor of a page would be the
//! very lock-out a limit must not be). IPv6 clients are grouped by /64, the block one subscriber
//! is given. Addresses are held in a bounded cache (`moka`): a flood from many addresses costs
//! constant work per request and bounded memory; an address evicted under such a flood starts
//! a fresh allowance, which errs towards the customer.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use moka::sync::Cache;

/// Addresses tracked at once.
const MAX_ADDRESSES: u64 = 100_000;
/// An address idle this long starts afresh (a full minute's allowance has refilled by then).
const IDLE: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct PerAddressLimit {
    quota: Quota,
    limiters: Cache<IpAddr, Arc<DefaultDirectRateLimiter>>,
}

/// The address a limit counts: IPv6 by its /64 (IPv4-mapped IPv6 as the IPv4 address).
pub fn limit_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl PerAddressLimit {
    /// `per_minute` requests a minute per address, all of them available as a burst.
    pub fn per_minute(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        PerAddressLimit { quota, limiters: Cache::builder().max_capacity(MAX_ADDRESSES).time_to_idle(IDLE).build() }
    }

    /// `Ok` when `client` may go on, else how long until it may.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let quota = self.quota;
        let limiter = self.limiters.get_with(limit_group(client), || Arc::new(RateLimiter::direct(quota)));
        limiter.check().map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_past_its_allowance_waits_and_others_do_not() {
        let limit = PerAddressLimit::per_minute(3);
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.check(a).is_ok());
        }
        let wait = limit.check(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limit.check(b).is_ok(), "another address has its own allowance");
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let limit = PerAddressLimit::per_minute(2);
        assert!(limit.check("2001:db8:1:2::1".parse().unwrap()).is_ok());
        assert!(limit.check("2001:db8:1:2:ffff::9".parse().unwrap()).is_ok());
        assert!(limit.check("2001:db8:1:2:abcd::1".parse().unwrap()).is_err(), "same /64");
        assert!(limit.check("2001:db8:1:3::1".parse().unwrap()).is_ok(), "another /64");
        assert_eq!(limit_group("::ffff:198.51.100.4".parse().unwrap()), "198.51.100.4".parse::<IpAddr>().unwrap());
    }
}
