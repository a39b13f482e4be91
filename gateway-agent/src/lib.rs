//! The gateway agent's pipeline, top to bottom: `source` (a directory of YAML, or Kubernetes)
//! → `ir` (validated, resolved, conflict-free model) → `envoy` (Envoy resources) → `xds` (the
//! ADS server Envoy connects to). `bootstrap` prints the Envoy bootstrap that points at it.

pub mod bootstrap;
pub mod convert;
pub mod diag;
pub mod drain;
pub mod envoy;
pub mod envoy_stats;
/// Test-only: the ADS session state machine for the fuzz targets.
#[doc(hidden)]
pub mod fuzzing;
mod hex;
pub mod ir;
mod memo;
pub mod pipeline;
pub mod quarantine;
pub mod run;
pub mod source;
pub mod status;
pub mod xds;
