//! Object names and namespaces, validated as the API server validates them: a name or namespace
//! Kubernetes would refuse never enters the agent from a file either, and what the agent prints
//! of an object's identity is then plain text.

use crate::printable::escaped;

/// A DNS-1123 label: a namespace, a Service's name (which is also a DNS-1035 label).
const LABEL_MAX: usize = 63;
/// A DNS-1123 subdomain: the name of most objects.
const SUBDOMAIN_MAX: usize = 253;

/// Why `name` cannot name an object of `kind`; the message reads as the end of
/// "metadata.name: ...".
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if kind == "Service" {
        // A Service's name becomes a DNS label: it must start with a letter.
        if !is_label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(refusal(
                name,
                "a DNS-1035 label: at most 63 lower case letters, digits and '-', \
                 starting with a letter and ending with a letter or digit",
            ));
        }
        return Ok(());
    }
    let subdomain = name.len() <= SUBDOMAIN_MAX && name.split('.').all(is_label_chars);
    if !subdomain {
        return Err(refusal(
            name,
            "a DNS-1123 subdomain: at most 253 lower case letters, digits, '-' and '.', \
             starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

/// Why `namespace` cannot be a namespace; reads as the end of "metadata.namespace: ...".
pub fn check_namespace(namespace: &str) -> Result<(), String> {
    if is_label(namespace) {
        Ok(())
    } else {
        Err(refusal(
            namespace,
            "a DNS-1123 label: at most 63 lower case letters, digits and '-', \
             starting and ending with a letter or digit",
        ))
    }
}

fn refusal(value: &str, rule: &str) -> String {
    format!("\"{}\" is not {rule}", escaped(value))
}

fn is_label(s: &str) -> bool {
    s.len() <= LABEL_MAX && is_label_chars(s)
}

/// One dot-free part: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_label_chars(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.starts_with(alnum) && s.ends_with(alnum) && s.chars().all(|c| alnum(c) || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_kubernetes_accepts() {
        for name in [
            "quote",
            "quote-v2",
            "a",
            "api.example.com",
            "0x1",
            &"a".repeat(253),
        ] {
            assert_eq!(check_name("Mapping", name), Ok(()), "{name}");
        }
        assert_eq!(check_name("Service", "quote-backend"), Ok(()));
        assert_eq!(check_namespace("team-a"), Ok(()));
    }

    #[test]
    fn names_kubernetes_refuses() {
        for name in [
            "",
            "Quote",
            "-quote",
            "quote-",
            "quote..v2",
            ".quote",
            "quote_v2",
            "quote\nMapping default/forged: accepted",
            "quote\u{2028}x",
            &"a".repeat(254),
        ] {
            assert!(check_name("Mapping", name).is_err(), "{name:?}");
        }
        // A Service name is a label: no dots, a letter first, at most 63.
        for name in ["api.v2", "2fast", &"a".repeat(64)] {
            assert!(check_name("Service", name).is_err(), "{name:?}");
        }
        for namespace in ["Team", "team.a", &"a".repeat(64), "team\n"] {
            assert!(check_namespace(namespace).is_err(), "{namespace:?}");
        }
    }

    #[test]
    fn the_refusal_prints_the_name_escaped() {
        let message = check_name("Mapping", "quote\nforged").unwrap_err();
        assert!(message.starts_with("\"quote\\nforged\" is not a DNS-1123 subdomain"));
        assert!(!message.contains('\n'));
    }
}
