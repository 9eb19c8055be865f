//! Reverse-time samplers.

pub mod categorical;
