//! Each rule as a table: values Envoy 1.40 takes, values it refuses (each checked against it
//! with `envoy --mode validate`; `tests/hostile.rs` serves them to a running Envoy).

use super::{Problem, Side, re2};

#[test]
fn regexes_re2_refuses_are_refused() {
    for pattern in [
        "",                   // RegexMatcher.regex: min_len 1
        "\\u0041",            // \u is not RE2's
        "\\U00000041",        //
        "\\x{100}",           // Envoy's RE2 reads Latin-1
        "\\p{greek}",         // RE2 names are exact
        "\\p{Letter}",        // no long names
        "\\p{sc=Greek}",      // no name=value
        "\\p{Cn}",            // not in RE2's tables
        "a**",                // stacked repetition
        "a{2}{3}",            //
        "a{1001}",            // kMaxRepeat
        "(a{40}){30}",        // nested counts over 1000 in all
        "(?x)a b",            // flags RE2 does not know
        "(?u)a",              //
        "(?R)a",              //
        "(?<name>a)",         // RE2 wants (?P<name>...)
        "[a&&b]",             // class set operations
        "[a--b]",             //
        "[a[bc]]",            // a nested class reads otherwise
        "\\<word\\>",         // word boundaries RE2 does not know
        "\\b{start}",         //
        "(a",                 // plain syntax errors
        "a)",                 //
        "[z-a]",              //
        "\\1",                // backreferences
        "(?=a)",              // lookaround
        "a{97}",              // 101 instructions: over Envoy's 100
        "^/bad/[a-z]{1000}$", //
    ] {
        assert!(
            super::regex("f", pattern, 100).is_err(),
            "{pattern:?} is accepted"
        );
    }
}

#[test]
fn regexes_envoy_compiles_are_accepted() {
    for pattern in [
        "^/api/v[0-9]+/users/[^/]+/.*$",
        "\\d+\\.\\w*\\s?",
        "(?i)^/CaseLess/",
        "(?P<id>[0-9a-f]{8})",
        "(?s:.)(?m:^x$)(?U:a*)",
        "\\pL\\PN\\p{Lu}\\p{Greek}",
        "[[:alpha:]][[:^digit:]]",
        "\\x41\\x{ff}\\t\\n\\r\\f\\v\\a",
        "\\/\\-\\\"\\@",
        "\\A/x\\z\\bfoo\\B",
        "a{0,5}b{3,}c{2}",
        "(?:a{5}){5}",
        "(?:a*)*",
        "a{96}", // exactly 100 instructions
        "é+",
    ] {
        assert_eq!(super::regex("f", pattern, 100), Ok(()), "{pattern:?}");
    }
}

/// Program sizes Envoy 1.40 reported for these patterns (`re2.max_program_size.warn_level: 0`
/// logs each): the estimate must never be below.
#[test]
fn the_program_size_estimate_is_never_below_envoys() {
    for (pattern, envoy) in [
        ("a", 5),
        ("^/api/.*/v1$", 9),
        (".", 6),
        ("\\pL", 11),
        ("\\pN", 8),
        ("abc|def", 10),
        ("abcdefghij", 14),
        ("a{100}", 104),
        ("a{50}b{50}", 104),
        ("(a|b|c|d|e|f|g|h)", 7),
        ("[a-z]{30}", 34),
        ("\\pLx", 12),
        ("(?i)abc", 7),
        ("é", 6),
        ("é+", 7),
        ("жж", 8),
        ("[жщ]", 7),
        ("(?i)ж", 6),
        ("[^/]", 6),
        ("\\D", 6),
        ("(?s).", 5),
        ("[α-ω]", 6),
        ("\\x{FF}", 5),
        ("[^a]", 6),
        ("\\d", 5),
        ("\\w", 7),
        ("\\s", 7),
        ("\\W", 9),
        ("[^/]+/[^/]+", 11),
        ("\\pL+", 12),
        ("[\\pL\\pN]", 14),
        ("\\PL", 12),
        ("(?i)k", 5),
    ] {
        let estimate = re2::estimate(pattern);
        assert!(
            estimate >= envoy,
            "{pattern:?}: estimated {estimate}, Envoy {envoy}"
        );
    }
}

#[test]
fn header_values_refuse_nul_cr_and_lf() {
    for value in ["a\0", "a\r", "a\nb"] {
        let e = super::header_value("rewrite", value).unwrap_err();
        assert_eq!(e.problem, Problem::ControlCharacter);
    }
    assert_eq!(
        super::header_value("rewrite", "/x\0")
            .unwrap_err()
            .to_string(),
        "rewrite: \"/x\\0\" contains a NUL, CR or LF character, which Envoy refuses here"
    );
    for value in ["", "/a b/", "é", "x?y#z"] {
        assert_eq!(super::header_value("rewrite", value), Ok(()));
    }
    assert_eq!(
        super::non_empty_header_value("allow_upgrade", "")
            .unwrap_err()
            .problem,
        Problem::Empty
    );
}

#[test]
fn names_to_match_and_query_names_have_envoys_lengths() {
    assert_eq!(
        super::matcher_name("headers", "").unwrap_err().problem,
        Problem::Empty
    );
    assert!(super::matcher_name("headers", "x\0").is_err());
    assert_eq!(super::matcher_name("headers", "x a"), Ok(()));
    assert_eq!(
        super::query_name("query_parameters", "")
            .unwrap_err()
            .problem,
        Problem::Empty
    );
    assert_eq!(
        super::query_name("query_parameters", &"q".repeat(1025))
            .unwrap_err()
            .problem,
        Problem::TooLong(1024)
    );
    assert_eq!(
        super::query_name("query_parameters", &"q".repeat(1024)),
        Ok(())
    );
}

#[test]
fn headers_to_add_are_tokens_and_their_values_format() {
    assert_eq!(
        super::header_name("f", ":path", Side::Request)
            .unwrap_err()
            .problem,
        Problem::Reserved
    );
    assert_eq!(
        super::header_name("f", "Host", Side::Request)
            .unwrap_err()
            .problem,
        Problem::Reserved
    );
    assert_eq!(super::header_name("f", "host", Side::Response), Ok(()));
    for name in ["", "a b", "x\0", "é"] {
        assert_eq!(
            super::header_name("f", name, Side::Response)
                .unwrap_err()
                .problem,
            Problem::NotAToken
        );
    }
    for value in [
        "plain",
        "100%%",
        "%DOWNSTREAM_REMOTE_ADDRESS%",
        "by %HOSTNAME% at %START_TIME%",
        "%REQ(x-a)%",
        "%REQ(x-a?x-b):10%",
        "%PROTOCOL%:5",
    ] {
        assert_eq!(super::added_header_value("f", value), Ok(()), "{value:?}");
    }
    for value in [
        "50%",
        "%",
        "%%%",
        "%FOO%",
        "%REQ%",
        "%REQ()%",
        "%REQ(x a)%",
        "%PROTOCOL:5%",
        "v\r\n",
    ] {
        assert!(
            super::added_header_value("f", value).is_err(),
            "{value:?} is accepted"
        );
    }
    assert_eq!(
        super::added_header_value("f", &"v".repeat(16 * 1024 + 1))
            .unwrap_err()
            .problem,
        Problem::TooLong(16 * 1024)
    );
}

#[test]
fn upstream_hosts_are_names_or_addresses() {
    for host in [
        "quote",
        "quote.default.svc.cluster.local",
        "10.0.0.1",
        "::1",
        "my_host",
    ] {
        assert_eq!(super::upstream_host("service", host), Ok(()), "{host:?}");
    }
    for host in ["a\0b", "a b", "é.com", "a/b"] {
        assert_eq!(
            super::upstream_host("service", host).unwrap_err().problem,
            Problem::NotAHost
        );
    }
    assert_eq!(
        super::upstream_host("service", &"a".repeat(254))
            .unwrap_err()
            .problem,
        Problem::TooLong(253)
    );
}

#[test]
fn tls_names_are_those_boringssl_knows() {
    for entry in [
        "ECDHE-RSA-AES128-GCM-SHA256",
        "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
        "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
    ] {
        assert_eq!(super::cipher_suite("cipher_suites", entry), Ok(()));
    }
    for entry in [
        "NOPE",
        "!aNULL",
        "TLS_AES_128_GCM_SHA256",
        "ecdhe-rsa-aes128-gcm-sha256",
        "",
    ] {
        assert!(
            super::cipher_suite("cipher_suites", entry).is_err(),
            "{entry:?}"
        );
    }
    assert_eq!(super::ecdh_curve("ecdh_curves", "X25519"), Ok(()));
    assert!(super::ecdh_curve("ecdh_curves", "secp256r1").is_err());
    assert_eq!(
        super::signature_algorithm("signature_algorithms", "ed25519"),
        Ok(())
    );
    assert!(super::signature_algorithm("signature_algorithms", "rsa_pss_pss_sha256").is_err());
    assert_eq!(
        super::alpn_protocol("alpn_protocols", &"a".repeat(255)),
        Ok(())
    );
    assert!(super::alpn_protocol("alpn_protocols", &"a".repeat(256)).is_err());
    assert!(super::alpn_protocol("alpn_protocols", "").is_err());
}

#[test]
fn a_listener_needs_a_stats_prefix() {
    assert_eq!(
        super::stat_prefix("statsPrefix", "").unwrap_err().problem,
        Problem::Empty
    );
    assert_eq!(super::stat_prefix("statsPrefix", "ingress_http"), Ok(()));
}

#[test]
fn long_values_are_cut_short_in_messages() {
    let e = super::header_value("rewrite", &format!("{}\n", "x".repeat(20_000))).unwrap_err();
    assert!(e.to_string().len() < 300, "{e}");
}
