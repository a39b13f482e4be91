//! TLS termination as Envoy has it: SDS secrets (certificate and key inline, over ADS only, so
//! no key ever touches a disk), the `DownstreamTlsContext` of a chain, and the TLS inspector that
//! reads SNI before a chain is chosen.

use std::fmt;

use envoy_types::{
    pb::envoy::{
        config::{
            core::v3::{
                AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, TransportSocket,
                config_source, data_source, transport_socket,
            },
            listener::v3::{ListenerFilter, listener_filter},
        },
        extensions::{
            filters::listener::tls_inspector::v3::TlsInspector,
            transport_sockets::tls::v3::{
                CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret, TlsCertificate,
                TlsParameters, secret, tls_parameters::TlsProtocol,
            },
        },
    },
    util::pack_any,
};
use legate_crds::tls_context::TlsVersion;

use crate::ir::{Certificate, DownstreamTls};

/// An SDS secret. `Debug` leaves the private key out (golden files and logs print configs).
#[derive(Clone, PartialEq)]
pub struct SdsSecret(pub Secret);

impl fmt::Debug for SdsSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if let Some(secret::Type::TlsCertificate(c)) = &mut shown.r#type {
            c.private_key = Some(inline("<redacted>".into()));
        }
        fmt::Debug::fmt(&shown, f)
    }
}

/// The secret a certificate is served as, under its SDS name.
pub(super) fn secret(name: &str, c: &Certificate) -> SdsSecret {
    SdsSecret(Secret {
        name: name.to_owned(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(c.chain.clone())),
            private_key: Some(inline(c.key.expose().to_owned())),
            ..Default::default()
        })),
    })
}

/// A TLSContext's version as Envoy names it; none is Envoy's default.
pub(super) fn version(v: Option<TlsVersion>) -> i32 {
    (match v {
        None => TlsProtocol::TlsAuto,
        Some(TlsVersion::V1_0) => TlsProtocol::TlSv10,
        Some(TlsVersion::V1_1) => TlsProtocol::TlSv11,
        Some(TlsVersion::V1_2) => TlsProtocol::TlSv12,
        Some(TlsVersion::V1_3) => TlsProtocol::TlSv13,
    }) as i32
}

/// The transport socket of a chain: TLS with the chain's certificate fetched over ADS.
pub(super) fn transport_socket(t: &DownstreamTls) -> TransportSocket {
    let mut context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: Some(TlsParameters {
                tls_minimum_protocol_version: version(t.min_version),
                tls_maximum_protocol_version: version(t.max_version),
                cipher_suites: t.cipher_suites.clone(),
                ecdh_curves: t.ecdh_curves.clone(),
                signature_algorithms: t.signature_algorithms.clone(),
                ..Default::default()
            }),
            tls_certificate_sds_secret_configs: vec![sds_config(&t.certificate)],
            alpn_protocols: t.alpn_protocols.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Some(c) = &t.client_certificates {
        super::client_certs::apply(c, &mut context);
    }
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
    }
}

/// Reads SNI (and tells TLS from cleartext) so a chain can be chosen by it.
pub(super) fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

/// An SDS secret fetched over ADS, by name.
pub(super) fn sds_config(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                AggregatedConfigSource {},
            )),
            ..Default::default()
        }),
    }
}

pub(super) fn inline(text: String) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(text)),
        ..Default::default()
    }
}
