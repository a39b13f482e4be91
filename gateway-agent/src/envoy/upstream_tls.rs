//! TLS origination as Envoy has it: a cluster's `UpstreamTlsContext` (Emissary's
//! `envoy/v3/v3cluster.py` and `v3tls.py`), with the client certificate and the CA fetched over
//! ADS as SDS secrets, so rotating either Secret changes that secret alone, never the cluster.

use envoy_types::{
    pb::envoy::{
        config::core::v3::{DataSource, TransportSocket, data_source, transport_socket},
        extensions::transport_sockets::tls::v3::{
            CertificateValidationContext, CommonTlsContext, Secret, SubjectAltNameMatcher,
            TlsParameters, UpstreamTlsContext, common_tls_context, secret,
            subject_alt_name_matcher::SanType,
        },
        r#type::matcher::v3::{StringMatcher, string_matcher},
    },
    util::pack_any,
};

use super::tls::{self, SdsSecret};
use crate::ir::{Cluster, upstream_tls::Secrets};

/// The transport socket of a cluster that originates TLS: with its TLSContext's settings, or
/// Emissary's null context (`tls: true`, `https://`) with SNI only. `None` for cleartext.
pub(super) fn transport_socket(c: &Cluster) -> Option<TransportSocket> {
    if !c.tls && c.upstream_tls.is_none() {
        return None;
    }
    let mut common = CommonTlsContext::default();
    let mut sni = c.host.clone();
    if let Some(t) = &c.upstream_tls {
        if let Some(s) = &t.sni {
            sni.clone_from(s);
        }
        common.tls_params = Some(TlsParameters {
            tls_minimum_protocol_version: tls::version(t.min_version),
            tls_maximum_protocol_version: tls::version(t.max_version),
            cipher_suites: t.cipher_suites.clone(),
            ecdh_curves: t.ecdh_curves.clone(),
            signature_algorithms: t.signature_algorithms.clone(),
            ..Default::default()
        });
        common.tls_certificate_sds_secret_configs = t
            .certificate
            .iter()
            .map(|name| tls::sds_config(name))
            .collect();
        common.validation_context_type = t.validation.as_ref().map(|name| {
            // The CA over SDS; the upstream's name, when the context gives one, checked here.
            let names = t.sni.iter().map(|sni| SubjectAltNameMatcher {
                san_type: SanType::Dns as i32,
                matcher: Some(StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact(sni.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            });
            common_tls_context::ValidationContextType::CombinedValidationContext(
                common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: names.collect(),
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(tls::sds_config(name)),
                    ..Default::default()
                },
            )
        });
        common.alpn_protocols = t.alpn_protocols.clone();
    }
    // gRPC servers refuse TLS that does not negotiate h2 (Emissary offers nothing).
    if common.alpn_protocols.is_empty() && c.http2 {
        common.alpn_protocols = vec!["h2".to_owned()];
    }
    let context = UpstreamTlsContext {
        // None with nothing set: a `tls: true` cluster encodes as it always has.
        common_tls_context: (common != CommonTlsContext::default()).then_some(common),
        sni,
        ..Default::default()
    };
    Some(TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context))),
    })
}

/// The SDS secrets origination uses: client certificates (as termination serves its own) and CA
/// bundles as validation contexts.
pub(super) fn secrets(s: &Secrets) -> impl Iterator<Item = SdsSecret> + '_ {
    let certificates = s
        .certificates
        .iter()
        .map(|(name, c)| super::tls::secret(name, c));
    let authorities = s.authorities.iter().map(|(name, pem)| {
        SdsSecret(Secret {
            name: name.clone(),
            r#type: Some(secret::Type::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(DataSource {
                        specifier: Some(data_source::Specifier::InlineString(pem.clone())),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )),
        })
    });
    certificates.chain(authorities)
}
