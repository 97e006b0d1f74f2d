//! The client's address, for per-client limits: the TCP peer, or — only when the peer is one of
//! the configured trusted proxies (`clients.trusted_proxies`) — the nearest address in
//! `X-Forwarded-For` that is not itself a trusted proxy. From anyone else the header is ignored:
//! a client cannot choose its own address to dodge a limit.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

pub fn client_address(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Each proxy appends the address it received from; read from the nearest hop outwards. An
    // entry that does not parse ends the walk at the peer: skipping it would let a client-forged
    // entry further out be chosen.
    let forwarded: Vec<&str> = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
    for hop in forwarded.iter().flat_map(|v| v.split(',')).rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => continue,
            Ok(ip) => return Some(ip),
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(peer: &str, forwarded: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr(format!("{peer}:40000").parse().unwrap());
        if let Some(f) = forwarded {
            req = req.insert_header(("x-forwarded-for", f));
        }
        req.to_http_request()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(client_address(&request("203.0.113.9", Some("198.51.100.1")), &trusted), ip("203.0.113.9"));
        assert_eq!(client_address(&request("10.1.2.3", Some("198.51.100.1")), &trusted), ip("198.51.100.1"));
        // A client's own forged entry sits further out than the one our proxy appended.
        assert_eq!(
            client_address(&request("10.1.2.3", Some("1.2.3.4, 198.51.100.1, 10.9.9.9")), &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(client_address(&request("10.1.2.3", None), &trusted), ip("10.1.2.3"));
        assert_eq!(client_address(&request("10.1.2.3", Some("garbage")), &[]), ip("10.1.2.3"));
        // An entry that does not parse stops the walk: the forged one beyond it is never chosen.
        assert_eq!(client_address(&request("10.1.2.3", Some("1.2.3.4, garbage, 10.9.9.9")), &trusted), ip("10.1.2.3"));
    }
}
