//! IR compression → Envoy's compressor HTTP filter with the gzip library, as Emissary writes it
//! (`python/ambassador/src/ambassador/envoy/v3/v3httpfilter.py`, `V3HTTPFilter_gzip`): the
//! settings in `response_direction_config`, the library's in its typed config, the same names.

use envoy_types::{
    pb::envoy::{
        config::core::v3::TypedExtensionConfig,
        extensions::{
            compression::gzip::compressor::v3::{
                Gzip,
                gzip::{CompressionLevel, CompressionStrategy},
            },
            filters::{
                http::compressor::v3::{
                    Compressor,
                    compressor::{CommonDirectionConfig, ResponseDirectionConfig},
                },
                network::http_connection_manager::v3::{HttpFilter, http_filter},
            },
        },
    },
    util::pack_any,
};

use super::u32_value;
use crate::ir::compression::{Compression, Level, Strategy};

/// The filter's name in the chain, Emissary's.
const FILTER_NAME: &str = "envoy.filters.http.gzip";
/// The library's name, Emissary's: it is part of the compressor's stat names.
const LIBRARY_NAME: &str = "envoy.compression.gzip.compressor";

/// The compressor filter; it goes before the router (and, as in Emissary's chain, before any
/// other filter Legate adds: gzip is saved with the `ambassador` Module's filters, ahead of
/// CORS, auth and rate limiting, in `ir.py`).
pub(super) fn http_filter(c: &Compression) -> HttpFilter {
    let gzip = Gzip {
        memory_level: u32_value(c.memory_level),
        compression_level: level(c.level) as i32,
        compression_strategy: strategy(c.strategy) as i32,
        window_bits: u32_value(c.window_bits),
        // Emissary leaves it at Envoy's default.
        chunk_size: None,
    };
    // `content_type` is what Emissary writes; Envoy has deprecated it for `content_type_matcher`
    // but still reads it, with its own list of types when it is empty.
    #[allow(deprecated)]
    let compressor = Compressor {
        compressor_library: Some(TypedExtensionConfig {
            name: LIBRARY_NAME.into(),
            typed_config: Some(pack_any(gzip)),
        }),
        response_direction_config: Some(ResponseDirectionConfig {
            common_config: Some(CommonDirectionConfig {
                min_content_length: u32_value(c.min_content_length),
                // Empty: Envoy's own list of types.
                content_type: c.content_types.clone(),
                ..Default::default()
            }),
            disable_on_etag_header: c.disable_on_etag_header,
            remove_accept_encoding_header: c.remove_accept_encoding_header,
            ..Default::default()
        }),
        ..Default::default()
    };
    HttpFilter {
        name: FILTER_NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(compressor))),
        ..Default::default()
    }
}

fn level(l: Level) -> CompressionLevel {
    match l {
        Level::Default => CompressionLevel::DefaultCompression,
        Level::Level(1) => CompressionLevel::BestSpeed,
        Level::Level(2) => CompressionLevel::CompressionLevel2,
        Level::Level(3) => CompressionLevel::CompressionLevel3,
        Level::Level(4) => CompressionLevel::CompressionLevel4,
        Level::Level(5) => CompressionLevel::CompressionLevel5,
        Level::Level(6) => CompressionLevel::CompressionLevel6,
        Level::Level(7) => CompressionLevel::CompressionLevel7,
        Level::Level(8) => CompressionLevel::CompressionLevel8,
        Level::Level(9) => CompressionLevel::CompressionLevel9,
        // The IR holds 1 to 9 only (`ir::compression`'s names); zlib's default otherwise.
        Level::Level(_) => CompressionLevel::DefaultCompression,
    }
}

fn strategy(s: Strategy) -> CompressionStrategy {
    match s {
        Strategy::Default => CompressionStrategy::DefaultStrategy,
        Strategy::Filtered => CompressionStrategy::Filtered,
        Strategy::HuffmanOnly => CompressionStrategy::HuffmanOnly,
        Strategy::Rle => CompressionStrategy::Rle,
        Strategy::Fixed => CompressionStrategy::Fixed,
    }
}
