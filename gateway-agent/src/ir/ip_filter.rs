//! Client address filtering: the gateway Module's `ip_allow` or `ip_deny`, validated into the RBAC
//! rule every HTTP listener enforces.
//!
//! Emissary (`python/ambassador/src/ambassador/ir/iripallowdeny.py`, `envoy/v3/v3httpfilter.py`
//! `V3HTTPFilter_ipallowdeny`): each entry is `peer: <CIDR>` (the connection's address, Envoy's
//! `direct_remote_ip`) or `remote: <CIDR>` (the client's address after `X-Forwarded-For` and
//! the trusted hops, Envoy's `remote_ip`); a bare address is a /32 (or /128) range. The rule is
//! one RBAC policy, `ALLOW` (anything else gets 403) or `DENY` (these get 403), placed after gzip
//! and buffering and before CORS. Setting both is refused (the CRD says so too); as in Emissary, `ip_allow` is
//! then applied and `ip_deny` not.
//!
//! A departure, for safety: Emissary skips an entry it cannot parse and, left with none, drops
//! the whole filter, so an `ip_allow` with a typo lets every client in. Here each bad entry is
//! rejected on the Module naming it, and an `ip_allow` left with no entry allows nobody: an
//! allowlist fails closed.

use std::net::IpAddr;

use ipnet::IpNet;
use legate_crds::{Module, module::IpPrincipal};

use super::Rejection;

/// The gateway's address rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpFilter {
    pub action: Action,
    /// Matching any of these is matching the rule.
    pub principals: Vec<Principal>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Only requests matching a principal are served.
    Allow,
    /// Requests matching a principal get 403.
    Deny,
}

/// One address range, of the connection or of the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub source: Source,
    pub address: IpAddr,
    pub prefix_len: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The TCP connection's peer (`peer`).
    Peer,
    /// The client as `X-Forwarded-For` tells it, within the trusted hops (`remote`).
    Remote,
}

/// The gateway's rule, if its Module sets one; bad entries are rejected on the Module.
pub fn gateway_ip_filter(
    module: Option<&Module>,
    rejections: &mut Vec<Rejection>,
) -> Option<IpFilter> {
    let module = module?;
    let c = &module.spec.config;
    let (action, field, entries) = match (&c.ip_allow, &c.ip_deny) {
        // Emissary reads `ip_allow` first and refuses the second list; so does this.
        (Some(allow), Some(_)) => {
            rejections.push(super::module::invalid(
                module,
                "spec.config.ip_deny: set ip_allow or ip_deny, not both; ip_allow is applied",
            ));
            (Action::Allow, "ip_allow", allow)
        }
        (Some(allow), None) => (Action::Allow, "ip_allow", allow),
        (None, Some(deny)) => (Action::Deny, "ip_deny", deny),
        (None, None) => return None,
    };
    let mut problems = Vec::new();
    let principals = entries
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            principal(entry)
                .map_err(|p| problems.push(format!("spec.config.{field}[{i}]: {p}")))
                .ok()
        })
        .collect();
    if !problems.is_empty() {
        rejections.push(super::module::invalid(module, problems.join("; ")));
    }
    Some(IpFilter { action, principals })
}

/// One entry: exactly one of `peer` and `remote`, an address or a CIDR range.
pub fn principal(entry: &IpPrincipal) -> Result<Principal, String> {
    let (source, text) = match (&entry.peer, &entry.remote) {
        (Some(peer), None) => (Source::Peer, peer),
        (None, Some(remote)) => (Source::Remote, remote),
        _ => return Err("set exactly one of peer and remote".into()),
    };
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?,
    };
    Ok(Principal {
        source,
        address: net.network(),
        prefix_len: net.prefix_len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> IpPrincipal {
        IpPrincipal {
            peer: Some(s.into()),
            remote: None,
        }
    }

    #[test]
    fn an_address_is_a_single_host_range_and_a_cidr_keeps_its_prefix() {
        assert_eq!(
            principal(&peer("127.0.0.1")),
            Ok(Principal {
                source: Source::Peer,
                address: "127.0.0.1".parse().unwrap(),
                prefix_len: 32
            })
        );
        let remote = IpPrincipal {
            peer: None,
            remote: Some("10.1.2.3/8".into()),
        };
        // Host bits are masked, as Envoy does.
        assert_eq!(
            principal(&remote),
            Ok(Principal {
                source: Source::Remote,
                address: "10.0.0.0".parse().unwrap(),
                prefix_len: 8
            })
        );
        assert_eq!(principal(&peer("::1")).unwrap().prefix_len, 128);
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(principal(&peer("10.0.0.0/33")).is_err());
        assert!(principal(&peer("example.com")).is_err());
        assert!(principal(&IpPrincipal::default()).is_err());
    }

    fn module(config: &str) -> legate_crds::Module {
        match crate::ir::module::fixtures::module("ambassador", "gw", config) {
            legate_crds::Resource::Module(m) => m,
            other => unreachable!("{other:?}"),
        }
    }

    #[test]
    fn each_bad_entry_is_named_on_the_module_and_the_good_ones_apply() {
        let mut rejections = Vec::new();
        let filter = gateway_ip_filter(
            Some(&module("ip_deny: [{peer: 10.0.0.0/8}, {remote: nonsense}]")),
            &mut rejections,
        )
        .unwrap();
        assert_eq!(filter.action, Action::Deny);
        assert_eq!(filter.principals.len(), 1);
        assert_eq!(rejections.len(), 1);
        assert_eq!(
            rejections[0].message,
            "spec.config.ip_deny[1]: \"nonsense\" is not an IP address or CIDR range"
        );
    }

    #[test]
    fn both_lists_apply_ip_allow_as_emissary_does_and_reject_ip_deny() {
        // The loader (the CRD's rule) refuses both already; a Module built in code may not.
        let mut both = module("ip_allow: [{peer: 127.0.0.1}]");
        both.spec.config.ip_deny = Some(vec![IpPrincipal {
            peer: Some("10.0.0.1".into()),
            remote: None,
        }]);
        let mut rejections = Vec::new();
        let filter = gateway_ip_filter(Some(&both), &mut rejections).unwrap();
        assert_eq!(filter.action, Action::Allow);
        assert!(rejections[0].message.starts_with("spec.config.ip_deny:"));
    }
}
