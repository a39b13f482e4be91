//! Response compression: the gateway Module's `spec.config.gzip`, validated into what every HTTP
//! listener compresses with.
//!
//! Emissary (`python/ambassador/src/ambassador/ir/irgzip.py`, `envoy/v3/v3httpfilter.py`
//! `V3HTTPFilter_gzip`) copies each key as written into Envoy's compressor filter with the gzip
//! library, and a key not written becomes `null`, which leaves Envoy's default in place. So
//! Emissary's defaults are Envoy's, written out here: `min_content_length` 30, `memory_level` 5,
//! `window_bits` 12, `DEFAULT_COMPRESSION`, `DEFAULT_STRATEGY`, Envoy's own list of text types,
//! and neither `disable_on_etag_header` nor `remove_accept_encoding_header`.
//!
//! Level and strategy are Envoy's enum names, exactly as written: Emissary's `ambex` decodes the
//! configuration with Go's `protojson`, which knows those names only, case-sensitive (`best_speed`,
//! or Emissary 1.x's `BEST`, is refused). Emissary then applies no configuration at all; here the
//! Module is rejected with the field named, compression is off, and everything else is served.

use std::sync::Arc;

use legate_crds::{Module, module::Gzip};

use super::Rejection;

/// What an HTTP listener compresses, and how: Emissary's defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compression {
    /// Smallest response compressed, in bytes (`Content-Length`).
    pub min_content_length: u32,
    /// zlib's memory level, 1 to 9.
    pub memory_level: u32,
    /// zlib's window, as its base-two logarithm, 9 to 15.
    pub window_bits: u32,
    pub level: Level,
    pub strategy: Strategy,
    /// The content types compressed; empty means Envoy's own list (`text/html`, `text/plain`,
    /// `application/json`, ... and their synonyms), which is what Emissary's `[]` gives.
    pub content_types: Vec<String>,
    /// A response with an `ETag` is left uncompressed.
    pub disable_on_etag_header: bool,
    /// `Accept-Encoding` is removed from the request before it goes upstream.
    pub remove_accept_encoding_header: bool,
}

/// Envoy's defaults, which are Emissary's (see the module's header).
pub const DEFAULT_MIN_CONTENT_LENGTH: u32 = 30;
pub const DEFAULT_MEMORY_LEVEL: u32 = 5;
pub const DEFAULT_WINDOW_BITS: u32 = 12;

/// zlib's compression level, by Envoy's names (`CompressionLevel` of
/// `envoy.extensions.compression.gzip.compressor.v3.Gzip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// zlib's default, level 6.
    Default,
    /// 1 (`BEST_SPEED`) to 9 (`BEST_COMPRESSION`).
    Level(u8),
}

/// zlib's strategy, by Envoy's names (`CompressionStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Default,
    Filtered,
    HuffmanOnly,
    Rle,
    Fixed,
}

impl Level {
    /// Every name Envoy's enum has, aliases included (`BEST_SPEED` is `COMPRESSION_LEVEL_1`).
    const NAMES: &[(&str, Level)] = &[
        ("DEFAULT_COMPRESSION", Level::Default),
        ("BEST_SPEED", Level::Level(1)),
        ("COMPRESSION_LEVEL_1", Level::Level(1)),
        ("COMPRESSION_LEVEL_2", Level::Level(2)),
        ("COMPRESSION_LEVEL_3", Level::Level(3)),
        ("COMPRESSION_LEVEL_4", Level::Level(4)),
        ("COMPRESSION_LEVEL_5", Level::Level(5)),
        ("COMPRESSION_LEVEL_6", Level::Level(6)),
        ("COMPRESSION_LEVEL_7", Level::Level(7)),
        ("COMPRESSION_LEVEL_8", Level::Level(8)),
        ("COMPRESSION_LEVEL_9", Level::Level(9)),
        ("BEST_COMPRESSION", Level::Level(9)),
    ];
}

impl Strategy {
    const NAMES: &[(&str, Strategy)] = &[
        ("DEFAULT_STRATEGY", Strategy::Default),
        ("FILTERED", Strategy::Filtered),
        ("HUFFMAN_ONLY", Strategy::HuffmanOnly),
        ("RLE", Strategy::Rle),
        ("FIXED", Strategy::Fixed),
    ];
}

/// The gateway Module's compression for every HTTP listener: `None` without a gateway Module
/// (`module`, see [`super::module::gateway_module`]), without `gzip`, or with an invalid `gzip`,
/// which is then rejected.
pub fn gateway_compression(
    module: Option<&Module>,
    rejections: &mut Vec<Rejection>,
) -> Option<Arc<Compression>> {
    let module = module?;
    match compression(module)? {
        Ok(c) => Some(Arc::new(c)),
        Err(problems) => {
            rejections.push(super::module::invalid(module, problems.join("; ")));
            None
        }
    }
}

/// A Module's compression: `None` without `gzip`, else the validated setting or what is wrong
/// with it, one message a field.
pub fn compression(module: &Module) -> Option<Result<Compression, Vec<String>>> {
    module.spec.config.gzip.as_ref().map(validate)
}

fn validate(g: &Gzip) -> Result<Compression, Vec<String>> {
    let mut problems = Vec::new();
    // The CRD bounds these (0..=i32::MAX, 1..=9, 9..=15); a value that still does not fit is
    // refused rather than wrapped.
    let mut number = |value: Option<i64>, field: &str, default: u32| match value {
        None => default,
        Some(v) => u32::try_from(v).unwrap_or_else(|_| {
            problems.push(format!("spec.config.gzip.{field}: {v} is out of range"));
            default
        }),
    };
    let min_content_length = number(
        g.min_content_length.map(|v| v.get()),
        "min_content_length",
        DEFAULT_MIN_CONTENT_LENGTH,
    );
    let memory_level = number(
        g.memory_level.map(|v| v.get()),
        "memory_level",
        DEFAULT_MEMORY_LEVEL,
    );
    let window_bits = number(
        g.window_bits.map(|v| v.get()),
        "window_bits",
        DEFAULT_WINDOW_BITS,
    );
    let level = named(
        g.compression_level.as_deref(),
        "compression_level",
        Level::NAMES,
        &mut problems,
    )
    .unwrap_or(Level::Default);
    let strategy = named(
        g.compression_strategy.as_deref(),
        "compression_strategy",
        Strategy::NAMES,
        &mut problems,
    )
    .unwrap_or(Strategy::Default);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Compression {
        min_content_length,
        memory_level,
        window_bits,
        level,
        strategy,
        content_types: g.content_type.clone().unwrap_or_default(),
        disable_on_etag_header: g.disable_on_etag_header.unwrap_or(false),
        remove_accept_encoding_header: g.remove_accept_encoding_header.unwrap_or(false),
    })
}

/// `value` by its exact name in `names`, as `protojson` reads an enum; a problem otherwise.
fn named<T: Copy>(
    value: Option<&str>,
    field: &str,
    names: &[(&str, T)],
    problems: &mut Vec<String>,
) -> Option<T> {
    let value = value?;
    let found = names.iter().find(|(n, _)| *n == value).map(|(_, t)| *t);
    if found.is_none() {
        let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        problems.push(format!(
            "spec.config.gzip.{field}: {value:?} is not one of {} (Envoy's names, upper case)",
            known.join(", ")
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Reason;
    use legate_crds::Resource;

    use crate::ir::module::fixtures::{module, settings};

    fn build(resources: &[Resource]) -> (Option<Arc<Compression>>, Vec<Rejection>) {
        let refs: Vec<&Resource> = resources.iter().collect();
        let mut rejections = Vec::new();
        let module = crate::ir::module::gateway_module(&refs, &settings());
        let c = gateway_compression(module, &mut rejections);
        (c, rejections)
    }

    fn compression_of(config: &str) -> Compression {
        let (c, rejections) = build(&[module("ambassador", "gw", config)]);
        assert_eq!(rejections, []);
        c.map(|c| (*c).clone())
            .unwrap_or_else(|| panic!("compression from {config}"))
    }

    fn refusal_of(config: &str) -> String {
        let (c, rejections) = build(&[module("ambassador", "gw", config)]);
        assert_eq!(c, None, "compression off");
        match &rejections[..] {
            [r] => {
                assert_eq!(r.reason, Reason::Invalid);
                assert_eq!(r.object.to_string(), "Module gw/ambassador");
                r.message.clone()
            }
            other => panic!("one rejection, got {other:?}"),
        }
    }

    #[test]
    fn gzip_empty_turns_compression_on_with_envoys_defaults() {
        // Emissary's `gzip: {}` writes `null` for every key: Envoy's defaults.
        assert_eq!(
            compression_of("gzip: {}"),
            Compression {
                min_content_length: 30,
                memory_level: 5,
                window_bits: 12,
                level: Level::Default,
                strategy: Strategy::Default,
                content_types: vec![],
                disable_on_etag_header: false,
                remove_accept_encoding_header: false,
            }
        );
    }

    #[test]
    fn every_field_is_mapped() {
        let c = compression_of(
            "gzip:
  min_content_length: 32
  memory_level: 9
  window_bits: 15
  compression_level: BEST_COMPRESSION
  compression_strategy: HUFFMAN_ONLY
  content_type: [text/plain, application/json]
  disable_on_etag_header: true
  remove_accept_encoding_header: true",
        );
        assert_eq!(
            c,
            Compression {
                min_content_length: 32,
                memory_level: 9,
                window_bits: 15,
                level: Level::Level(9),
                strategy: Strategy::HuffmanOnly,
                content_types: vec!["text/plain".into(), "application/json".into()],
                disable_on_etag_header: true,
                remove_accept_encoding_header: true,
            }
        );
    }

    #[test]
    fn every_level_and_strategy_name_envoy_has() {
        for (name, level) in [
            ("DEFAULT_COMPRESSION", Level::Default),
            ("BEST_SPEED", Level::Level(1)),
            ("COMPRESSION_LEVEL_1", Level::Level(1)),
            ("COMPRESSION_LEVEL_5", Level::Level(5)),
            ("COMPRESSION_LEVEL_9", Level::Level(9)),
            ("BEST_COMPRESSION", Level::Level(9)),
        ] {
            let c = compression_of(&format!("gzip: {{compression_level: {name}}}"));
            assert_eq!(c.level, level, "{name}");
        }
        for (name, strategy) in [
            ("DEFAULT_STRATEGY", Strategy::Default),
            ("FILTERED", Strategy::Filtered),
            ("HUFFMAN_ONLY", Strategy::HuffmanOnly),
            ("RLE", Strategy::Rle),
            ("FIXED", Strategy::Fixed),
        ] {
            let c = compression_of(&format!("gzip: {{compression_strategy: {name}}}"));
            assert_eq!(c.strategy, strategy, "{name}");
        }
    }

    #[test]
    fn an_unknown_level_or_strategy_is_refused_naming_the_field() {
        let message = refusal_of("gzip: {compression_level: LOUDEST}");
        assert!(
            message.starts_with("spec.config.gzip.compression_level: \"LOUDEST\" is not one of"),
            "{message}"
        );
        // Case-sensitive, as protojson reads enum names; Emissary 1.x's names are not Envoy's.
        for bad in [
            "best_speed",
            "Best_Speed",
            "BEST",
            "SPEED",
            "DEFAULT",
            "\"\"",
        ] {
            let message = refusal_of(&format!("gzip: {{compression_level: {bad}}}"));
            assert!(
                message.starts_with("spec.config.gzip.compression_level:"),
                "{message}"
            );
        }
        let message = refusal_of("gzip: {compression_strategy: HUFFMAN}");
        assert!(
            message.starts_with("spec.config.gzip.compression_strategy: \"HUFFMAN\""),
            "{message}"
        );
        // Both named at once.
        let message = refusal_of("gzip: {compression_level: LOUD, compression_strategy: rle}");
        assert!(
            message.contains("compression_level") && message.contains("compression_strategy"),
            "{message}"
        );
    }

    #[test]
    fn only_the_gateway_module_applies() {
        let on = "gzip: {}";
        assert!(build(&[module("other", "gw", on)]).0.is_none());
        assert!(build(&[module("ambassador", "team", on)]).0.is_none());
        // Not this gateway's.
        let mut blue = module("ambassador", "gw", on);
        if let Resource::Module(m) = &mut blue {
            m.spec.ambassador_id = legate_crds::fields::AmbassadorId(vec!["blue".into()]);
        }
        assert!(build(&[blue]).0.is_none());
        // An invalid gzip elsewhere is not this gateway's problem either.
        let (c, rejections) = build(&[module(
            "ambassador",
            "team",
            "gzip: {compression_level: LOUDEST}",
        )]);
        assert_eq!((c, rejections), (None, vec![]));
    }

    #[test]
    fn without_gzip_compression_is_off() {
        assert_eq!(
            build(&[module(
                "ambassador",
                "gw",
                "cluster_request_timeout_ms: 3000"
            )]),
            (None, vec![])
        );
        assert_eq!(build(&[]), (None, vec![]));
    }
}
