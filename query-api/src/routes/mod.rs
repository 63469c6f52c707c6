//! The read routes, one module per resource.

pub mod audit;
pub mod deployments;
pub mod dora;
pub mod environments;
pub mod exceptions;
pub mod releases;
pub mod trace;
