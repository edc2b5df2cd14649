//! Pods bound to this node. The sources (`source`: the API server's watch; `files`: static
//! pods) tell the one owner (`owner`), a state machine that never blocks, what should run; it
//! steps each pod with the pure core (`state` over `plan`), and its `runner` carries the work
//! out on threads: the observer (`observe`), pod jobs (`execute`, with `container`,
//! `runtime_config`, `volumes` and `subpath`), probes (`probe`), status and mirror writes
//! (`report`) and clean-up (`gc`). I/O goes through two seams (`seams`: CRI and API).

pub mod admit;
pub mod atomic;
pub mod cgroups;
pub mod checkpoint;
pub mod config;
pub mod container;
pub mod dns;
pub mod env;
pub mod error;
pub mod execute;
#[cfg(test)]
mod fake;
pub mod files;
pub mod gc;
mod image;
pub mod image_gc;
pub mod layout;
pub mod log_rotation;
pub mod msg;
pub mod observe;
pub mod owner;
pub mod plan;
pub mod pod_metrics;
pub mod pod_resources;
pub mod probe;
mod probe_https;
pub mod probe_metrics;
pub mod pull;
pub mod qos_cgroups;
pub mod report;
pub mod resources;
pub mod runner;
pub mod runtime_config;
pub mod seams;
pub mod security;
pub mod services;
pub mod source;
pub mod spec;
pub mod state;
pub mod status;
pub mod subpath;
pub mod sysctls;
pub mod view;
pub mod volumes;

/// The pods the agent runs, for the 10250 API (written by the owner's loop, read by the
/// server).
pub type Snapshot = std::sync::Arc<std::sync::RwLock<Vec<view::PodView>>>;
