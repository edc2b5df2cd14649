//! Pods bound to this node: their source (a watch on the API server), their lifecycle (a pure
//! step function in `plan`, a pure status in `status`) and the one thread that owns their state
//! and drives the container runtime (`owner`).

pub mod admit;
pub mod cgroups;
pub mod dns;
pub mod env;
pub mod files;
pub mod layout;
pub mod owner;
pub mod plan;
pub mod probe;
pub mod pull;
pub mod resources;
pub mod security;
pub mod source;
pub mod spec;
pub mod status;
pub mod subpath;
pub mod sysctls;
pub mod volumes;

/// The pods the agent runs, as API objects with their latest status, for the 10250 API's
/// `/pods`, `/runningpods/` and `/containerLogs` (written by the owner, read by the server).
pub type Snapshot = std::sync::Arc<std::sync::RwLock<Vec<serde_json::Value>>>;
