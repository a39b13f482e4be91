//! Image references, checked by the grammar of `distribution/reference` (what the kubelet's
//! container runtime parses): `[domain[:port]/]path[:tag][@algorithm:hex]`.

/// Whether `reference` is an image reference a container runtime will accept.
pub fn is_valid_image_reference(reference: &str) -> bool {
    reference
        .parse::<oci_spec::distribution::Reference>()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::is_valid_image_reference as valid;

    #[test]
    fn accepts_what_runtimes_accept() {
        for image in [
            "envoy",
            "envoyproxy/envoy:v1.36.2",
            "docker.io/envoyproxy/envoy:v1.36.2",
            "ghcr.io/legate-dev/legate-agent:0.1.0",
            "localhost:5000/legate-agent",
            "localhost/legate-agent:dev",
            "registry.example.com:443/team/a__b/c-d:1.0_rc.1",
            "envoy@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "envoy:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(valid(image), "{image} should be valid");
        }
    }

    #[test]
    fn rejects_the_rest() {
        for image in [
            "",
            "Envoy",
            "envoy:",
            "envoy:-tag",
            "envoy proxy",
            "docker.io/",
            "/envoy",
            "envoy//proxy",
            "envoy@sha256:short",
            "envoy@sha256",
            "-envoy",
            "envoy.",
            "envoy:v1:v2",
            "docker.io:/envoy",
        ] {
            assert!(!valid(image), "{image} should be invalid");
        }
    }
}
