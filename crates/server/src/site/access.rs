//! `allow`/`deny` as nginx's access module checks them: the rules in
//! order, the first that matches the client decides, none matching allows.
//! `all` matches every client; a CIDR matches clients of its own family
//! (an IPv4-mapped IPv6 client, `::ffff:a.b.c.d`, is checked as IPv4, as
//! nginx does); `unix:` matches clients on unix sockets.

use std::net::IpAddr;

use portico_config::site::{AccessNet, AccessRule};

/// Who is asking: an IP client, or a client on a unix socket (`None`).
pub(crate) fn allowed(rules: &[AccessRule], client: Option<IpAddr>) -> bool {
    let client = client.map(|ip| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    });
    rules
        .iter()
        .find(|rule| matches(&rule.net, client))
        .is_none_or(|rule| rule.allow)
}

fn matches(net: &AccessNet, client: Option<IpAddr>) -> bool {
    match (net, client) {
        (AccessNet::All, _) => true,
        (AccessNet::Unix, None) => true,
        (AccessNet::Unix, Some(_)) | (AccessNet::Cidr { .. }, None) => false,
        (AccessNet::Cidr { addr, prefix }, Some(ip)) => in_net(ip, *addr, *prefix),
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = mask32(prefix);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = mask128(prefix);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

fn mask32(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - p),
    }
}

fn mask128(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => u128::MAX,
        p => u128::MAX << (128 - p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, net: &str) -> AccessRule {
        let net = match net {
            "all" => AccessNet::All,
            "unix:" => AccessNet::Unix,
            cidr => {
                let (addr, prefix) = cidr.split_once('/').unwrap_or((cidr, ""));
                let addr: IpAddr = addr.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
                let full = if addr.is_ipv4() { 32 } else { 128 };
                AccessNet::Cidr {
                    addr,
                    prefix: prefix.parse().unwrap_or(full),
                }
            }
        };
        AccessRule { allow, net }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn first_matching_rule_wins_and_none_allows() {
        let rules = [
            rule(false, "192.168.1.1"),
            rule(true, "192.168.1.0/24"),
            rule(false, "all"),
        ];
        let table = [
            ("192.168.1.1", false),
            ("192.168.1.2", true),
            ("10.0.0.1", false),
            ("::1", false),
        ];
        for (client, want) in table {
            assert_eq!(allowed(&rules, ip(client)), want, "{client}");
        }
        assert!(allowed(&[], ip("10.0.0.1")));
        assert!(allowed(&[rule(false, "10.0.0.0/8")], ip("11.0.0.1")));
    }

    #[test]
    fn ipv6_cidrs_match_by_prefix() {
        let rules = [rule(true, "2001:db8::/32"), rule(false, "all")];
        assert!(allowed(&rules, ip("2001:db8:1::5")));
        assert!(!allowed(&rules, ip("2001:db9::1")));
        assert!(!allowed(&rules, ip("10.0.0.1")));
        assert!(allowed(&[rule(false, "::1")], ip("::2")));
        assert!(!allowed(&[rule(false, "::/0")], ip("fe80::1")));
    }

    #[test]
    fn mapped_ipv4_clients_are_checked_as_ipv4() {
        let rules = [rule(false, "127.0.0.1"), rule(true, "all")];
        assert!(!allowed(&rules, ip("::ffff:127.0.0.1")));
        assert!(!allowed(&[rule(false, "0.0.0.0/0")], ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn unix_rules_match_only_unix_clients() {
        let rules = [rule(true, "unix:"), rule(false, "all")];
        assert!(allowed(&rules, None));
        assert!(!allowed(&rules, ip("127.0.0.1")));
        assert!(!allowed(&[rule(false, "unix:")], None));
        assert!(allowed(&[rule(false, "127.0.0.1")], None));
    }
}
