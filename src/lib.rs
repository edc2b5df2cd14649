//! tinylet: a small Kubernetes node agent for edge boxes, a drop-in for the kubelet.
#![forbid(unsafe_code)]

pub mod certs;
pub mod config;
pub mod cri;
pub mod events;
pub mod eviction;
pub mod fatal;
pub mod kube;
pub mod log;
pub mod logs;
pub mod node;
pub mod pods;
pub mod prom;
pub mod server;
pub mod stats;
pub mod stop;
pub mod timefmt;

/// The Kubernetes version tinylet speaks, reported as the node's kubeletVersion: v1.32.0 (the
/// API it is built and tested against; the seed's cluster is older), or what
/// `TINYLET_KUBERNETES_VERSION` says at build time, for a fleet that pins another.
pub const KUBERNETES_VERSION: &str = match option_env!("TINYLET_KUBERNETES_VERSION") {
    Some(v) => v,
    None => "v1.32.0",
};
