//! IR address rule → Envoy's RBAC HTTP filter, as Emissary writes it
//! (`python/ambassador/src/ambassador/envoy/v3/v3httpfilter.py`, `V3HTTPFilter_ipallowdeny`):
//! one policy, `ambassador-ip-allow` or `ambassador-ip-deny`, any permission, its principals
//! OR-ed.

use std::collections::HashMap;

use envoy_types::{
    pb::{
        envoy::{
            config::{
                core::v3::CidrRange,
                rbac::v3::{
                    Permission, Policy, Principal, Rbac as Rules, permission, principal,
                    rbac::Action as RbacAction,
                },
            },
            extensions::filters::{
                http::rbac::v3::Rbac,
                network::http_connection_manager::v3::{HttpFilter, http_filter},
            },
        },
        google::protobuf::UInt32Value,
    },
    util::pack_any,
};

use crate::ir::ip_filter::{Action, IpFilter, Source};

const FILTER_NAME: &str = "envoy.filters.http.rbac";

pub(super) fn http_filter(f: &IpFilter) -> HttpFilter {
    let (action, policy) = match f.action {
        Action::Allow => (RbacAction::Allow, "ambassador-ip-allow"),
        Action::Deny => (RbacAction::Deny, "ambassador-ip-deny"),
    };
    // Envoy refuses a policy without principals: an allowlist left with none is a rule without
    // policies, which allows nobody.
    let policies = (!f.principals.is_empty())
        .then(|| {
            let ids = f.principals.iter().map(principal).collect();
            (
                policy.to_owned(),
                Policy {
                    permissions: vec![Permission {
                        rule: Some(permission::Rule::Any(true)),
                    }],
                    principals: vec![Principal {
                        identifier: Some(principal::Identifier::OrIds(principal::Set { ids })),
                    }],
                    ..Default::default()
                },
            )
        })
        .into_iter()
        .collect::<HashMap<_, _>>();
    let rbac = Rbac {
        rules: Some(Rules {
            action: action as i32,
            policies,
            ..Default::default()
        }),
        ..Default::default()
    };
    HttpFilter {
        name: FILTER_NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(rbac))),
        ..Default::default()
    }
}

fn principal(p: &crate::ir::ip_filter::Principal) -> Principal {
    let range = CidrRange {
        address_prefix: p.address.to_string(),
        prefix_len: Some(UInt32Value {
            value: u32::from(p.prefix_len),
        }),
    };
    Principal {
        identifier: Some(match p.source {
            Source::Peer => principal::Identifier::DirectRemoteIp(range),
            Source::Remote => principal::Identifier::RemoteIp(range),
        }),
    }
}
