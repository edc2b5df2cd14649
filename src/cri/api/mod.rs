//! The CRI `runtime.v1` messages tinylet speaks, written by hand with the upstream field numbers
//! (k8s.io/cri-api `pkg/apis/runtime/v1/api.proto`). Windows-only messages and the RPCs tinylet does
//! not call (checkpoint, container events, pod sandbox metrics) are left out; prost skips their
//! fields when a runtime sends them. `tests/cri_messages.rs` checks every message against the
//! generated types of the `k8s-cri` crate.

use std::collections::BTreeMap;

/// A `map<string, string>` field.
pub type StringMap = BTreeMap<String, String>;

macro_rules! enumeration {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $n:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum $name { $($variant = $n,)* }
    };
}

enumeration!(Protocol { Tcp = 0, Udp = 1, Sctp = 2, });
enumeration!(MountPropagation {
    PropagationPrivate = 0,
    PropagationHostToContainer = 1,
    PropagationBidirectional = 2,
});
enumeration!(NamespaceMode { Pod = 0, Container = 1, Node = 2, Target = 3, });
enumeration!(SupplementalGroupsPolicy { Merge = 0, Strict = 1, });
enumeration!(PodSandboxState { SandboxReady = 0, SandboxNotready = 1, });
enumeration!(ContainerState {
    ContainerCreated = 0,
    ContainerRunning = 1,
    ContainerExited = 2,
    ContainerUnknown = 3,
});
enumeration!(
    /// `SecurityProfile.ProfileType`.
    ProfileType { RuntimeDefault = 0, Unconfined = 1, Localhost = 2, }
);
enumeration!(CgroupDriver { Systemd = 0, Cgroupfs = 1, });

#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionRequest {
    #[prost(string, tag = "1")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionResponse {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    #[prost(string, tag = "3")]
    pub runtime_version: String,
    #[prost(string, tag = "4")]
    pub runtime_api_version: String,
}

mod container;
mod image_runtime;
mod sandbox;
mod stats;

pub use container::*;
pub use image_runtime::*;
pub use sandbox::*;
pub use stats::*;
