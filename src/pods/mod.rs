//! Pods bound to this node: their source (a watch on the API server), their lifecycle (a pure
//! step function in `plan`, a pure status in `status`) and the one thread that owns their state
//! and drives the container runtime (`owner`).

pub mod owner;
pub mod plan;
pub mod source;
pub mod spec;
pub mod status;
