//! Library half of the operator: the pure builders.

pub mod build;
