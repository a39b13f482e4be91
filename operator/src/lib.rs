//! The operator as a library: pure builders and status, and the reconciler that applies them.

pub mod apply;
pub mod build;
pub mod capabilities;
pub mod children;
pub mod controller;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod status;
