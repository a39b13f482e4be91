//! Client certificates as Envoy has them: the validation context is an SDS secret of its own
//! (CA and CRL inline, over ADS), which the chain's `DownstreamTlsContext` names, so a rotated CA
//! changes that secret alone and no listener; `cert_required` is `require_client_certificate`
//! (Emissary's `v3tls.py` writes the same fields, as files, in the listener).

use envoy_types::pb::{
    envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, DownstreamTlsContext, Secret, common_tls_context, secret,
    },
    google::protobuf::BoolValue,
};

use super::tls::{SdsSecret, inline, sds_config};
use crate::ir::{ClientCertificates, ValidationContext};

/// The secret a validation context is served as, under its SDS name.
pub(super) fn secret(name: &str, v: &ValidationContext) -> SdsSecret {
    SdsSecret(Secret {
        name: name.to_owned(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(inline(v.trusted_ca.clone())),
                crl: v.crl.as_ref().map(|(_, pem)| inline(pem.clone())),
                ..Default::default()
            },
        )),
    })
}

/// Asks for client certificates on a chain's TLS context, verified against the named secret.
pub(super) fn apply(c: &ClientCertificates, context: &mut DownstreamTlsContext) {
    if let Some(common) = &mut context.common_tls_context {
        common.validation_context_type = Some(
            common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(
                sds_config(&c.validation),
            ),
        );
    }
    if c.required {
        context.require_client_certificate = Some(BoolValue { value: true });
    }
}
