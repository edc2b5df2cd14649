//! tinylet: a small Kubernetes node agent for edge boxes, a drop-in for the kubelet.
#![forbid(unsafe_code)]

pub mod certs;
pub mod config;
pub mod cri;
pub mod error;
pub mod kube;
pub mod log;
pub mod node;
pub mod server;
pub mod timefmt;

/// The Kubernetes version tinylet speaks (reported as the kubelet version).
pub const KUBERNETES_VERSION: &str = "v1.32.0";
