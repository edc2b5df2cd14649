//! tinylet's hand-written CRI messages against the upstream proto: each message is filled from
//! `k8s-cri`'s `proto/v1.proto` (every field set, to a value that names it), built as k8s-cri's
//! generated type, encoded, decoded with ours, encoded again and decoded with theirs. A wrong tag,
//! a wrong wire type or a missing field changes the value and fails. The RPC table is checked
//! against the proto's services, and every message of the proto is either ours or listed as
//! deliberately left out.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

/// Messages tinylet does not carry: Windows-only ones and those of RPCs it does not call.
const LEFT_OUT: &[&str] = &[
    "CheckpointContainerRequest",
    "CheckpointContainerResponse",
    "GetEventsRequest",
    "ContainerEventResponse",
    "ListMetricDescriptorsRequest",
    "ListMetricDescriptorsResponse",
    "MetricDescriptor",
    "ListPodSandboxMetricsRequest",
    "ListPodSandboxMetricsResponse",
    "PodSandboxMetrics",
    "ContainerMetrics",
    "Metric",
];

#[derive(Debug, Clone)]
struct Field {
    name: String,
    ty: String,
    tag: u32,
    repeated: bool,
    map: bool,
}

#[derive(Debug, Default)]
struct Proto {
    messages: BTreeMap<String, Vec<Field>>,
    enums: Vec<String>,
    /// (service, method, request, response)
    rpcs: Vec<(String, String, String, String)>,
}

fn proto_path() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let pkgs = meta["packages"].as_array().cloned().unwrap_or_default();
    let pkg = pkgs
        .iter()
        .find(|p| p["name"] == "k8s-cri")
        .unwrap_or_else(|| panic!("k8s-cri is not a dependency"));
    let manifest = PathBuf::from(pkg["manifest_path"].as_str().unwrap_or_default());
    manifest.with_file_name("proto").join("v1.proto")
}

fn strip_comments(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn tokens(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in src.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    out
}

fn parse(src: &str) -> Proto {
    let t = tokens(&strip_comments(src));
    let mut p = Proto::default();
    let mut i = 0;
    // Skips a `{ ... }` block starting at t[i] == "{", returns the index after it.
    let skip_block = |mut i: usize| {
        let mut depth = 0;
        loop {
            match t[i].as_str() {
                "{" => depth += 1,
                "}" => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    };
    while i < t.len() {
        match t[i].as_str() {
            "message" => {
                let name = t[i + 1].clone();
                i += 3;
                let mut fields = Vec::new();
                while t[i] != "}" {
                    if t[i] == "enum" {
                        p.enums.push(t[i + 1].clone());
                        i = skip_block(i + 2);
                        continue;
                    }
                    let (repeated, map, ty) = if t[i] == "repeated" {
                        i += 1;
                        (true, false, t[i].clone())
                    } else if t[i] == "map" {
                        // map < K , V >
                        i += 5;
                        (false, true, t[i - 1].clone())
                    } else {
                        (false, false, t[i].clone())
                    };
                    let name = t[i + 1].clone();
                    let tag: u32 = t[i + 3].parse().unwrap_or_else(|_| panic!("tag of {name}"));
                    i += 4;
                    while t[i] != ";" {
                        i += 1; // [deprecated=true]
                    }
                    i += 1;
                    fields.push(Field {
                        name,
                        ty,
                        tag,
                        repeated,
                        map,
                    });
                }
                p.messages.insert(name, fields);
                i += 1;
            }
            "enum" => {
                p.enums.push(t[i + 1].clone());
                i = skip_block(i + 2);
            }
            "service" => {
                let service = t[i + 1].clone();
                i += 3;
                while t[i] != "}" {
                    if t[i] == "rpc" {
                        // rpc Name ( [stream] Req ) returns ( [stream] Resp ) { }
                        let method = t[i + 1].clone();
                        let mut j = i + 3;
                        if t[j] == "stream" {
                            j += 1;
                        }
                        let req = t[j].clone();
                        j += 4;
                        if t[j] == "stream" {
                            j += 1;
                        }
                        let resp = t[j].clone();
                        p.rpcs.push((service.clone(), method, req, resp));
                        i = j + 2;
                        i = if t[i] == "{" { skip_block(i) } else { i + 1 };
                    } else {
                        i += 1;
                    }
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    p
}

/// The Rust field name prost-build gives a proto field (`uidMappings` -> `uid_mappings`).
fn snake(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_lowercase());
    }
    out
}

/// A JSON value (in the shape of k8s-cri's serde types) with every field of `message` set.
fn fill(p: &Proto, message: &str, seed: u32) -> Value {
    let fields = p
        .messages
        .get(message)
        .unwrap_or_else(|| panic!("no message {message}"));
    let mut obj = serde_json::Map::new();
    for f in fields {
        if f.ty.starts_with("Windows") {
            continue;
        }
        let one = |k: u32| -> Value {
            let n = (seed.wrapping_mul(31) + f.tag * 10 + k) % 1_000_000;
            match f.ty.as_str() {
                "string" => json!(format!("{message}.{}#{n}", f.name)),
                "bool" => json!(true),
                "bytes" => json!([f.tag as u8, k as u8, 0xff]),
                "int32" | "int64" => json!(-(n as i64)),
                "uint32" | "uint64" => json!(n),
                t if p.enums.iter().any(|e| e == t) => json!(1),
                t => fill(p, t, n),
            }
        };
        let v = if f.map {
            json!({ format!("{}-a", f.name): format!("{message}-{seed}-1"), format!("{}-b", f.name): format!("{message}-{seed}-2") })
        } else if f.repeated {
            json!([one(1), one(2)])
        } else {
            one(0)
        };
        obj.insert(snake(&f.name), v);
    }
    Value::Object(obj)
}

fn round_trip<Ours, Theirs>(p: &Proto, name: &str)
where
    Ours: prost::Message + Default + PartialEq + Debug,
    Theirs: prost::Message + Default + PartialEq + Debug + serde::de::DeserializeOwned,
{
    let filled = fill(p, name, 1);
    let theirs: Theirs = serde_json::from_value(filled.clone())
        .unwrap_or_else(|e| panic!("{name}: k8s-cri's type does not take {filled}: {e}"));
    let has_fields = p.messages.get(name).is_some_and(|f| !f.is_empty());
    assert!(
        !has_fields || theirs != Theirs::default(),
        "{name}: filled value is empty"
    );
    let ours = Ours::decode(theirs.encode_to_vec().as_slice())
        .unwrap_or_else(|e| panic!("{name}: ours cannot decode upstream bytes: {e}"));
    let back = Theirs::decode(ours.encode_to_vec().as_slice())
        .unwrap_or_else(|e| panic!("{name}: upstream cannot decode our bytes: {e}"));
    assert_eq!(
        back, theirs,
        "{name}: a field is lost or mistyped on the way through ours"
    );
    assert_eq!(
        Ours::decode(back.encode_to_vec().as_slice()).ok().as_ref(),
        Some(&ours),
        "{name}: not stable"
    );
}

macro_rules! messages {
    ($($proto:literal => $ty:ident),* $(,)?) => {
        const OURS: &[&str] = &[$($proto),*];
        fn check_all(p: &Proto) {
            $(round_trip::<tinylet::cri::api::$ty, k8s_cri::v1::$ty>(p, $proto);)*
        }
    };
}

messages! {
    "VersionRequest" => VersionRequest, "VersionResponse" => VersionResponse,
    "DNSConfig" => DnsConfig, "PortMapping" => PortMapping, "Mount" => Mount,
    "IDMapping" => IdMapping, "UserNamespace" => UserNamespace,
    "NamespaceOption" => NamespaceOption, "Int64Value" => Int64Value,
    "UInt64Value" => UInt64Value,
    "LinuxSandboxSecurityContext" => LinuxSandboxSecurityContext,
    "SecurityProfile" => SecurityProfile, "LinuxPodSandboxConfig" => LinuxPodSandboxConfig,
    "PodSandboxMetadata" => PodSandboxMetadata, "PodSandboxConfig" => PodSandboxConfig,
    "RunPodSandboxRequest" => RunPodSandboxRequest,
    "RunPodSandboxResponse" => RunPodSandboxResponse,
    "StopPodSandboxRequest" => StopPodSandboxRequest,
    "StopPodSandboxResponse" => StopPodSandboxResponse,
    "RemovePodSandboxRequest" => RemovePodSandboxRequest,
    "RemovePodSandboxResponse" => RemovePodSandboxResponse,
    "PodSandboxStatusRequest" => PodSandboxStatusRequest, "PodIP" => PodIp,
    "PodSandboxNetworkStatus" => PodSandboxNetworkStatus, "Namespace" => Namespace,
    "LinuxPodSandboxStatus" => LinuxPodSandboxStatus, "PodSandboxStatus" => PodSandboxStatus,
    "PodSandboxStatusResponse" => PodSandboxStatusResponse,
    "PodSandboxStateValue" => PodSandboxStateValue, "PodSandboxFilter" => PodSandboxFilter,
    "ListPodSandboxRequest" => ListPodSandboxRequest, "PodSandbox" => PodSandbox,
    "ListPodSandboxResponse" => ListPodSandboxResponse,
    "PodSandboxStatsRequest" => PodSandboxStatsRequest,
    "PodSandboxStatsResponse" => PodSandboxStatsResponse,
    "PodSandboxStatsFilter" => PodSandboxStatsFilter,
    "ListPodSandboxStatsRequest" => ListPodSandboxStatsRequest,
    "ListPodSandboxStatsResponse" => ListPodSandboxStatsResponse,
    "PodSandboxAttributes" => PodSandboxAttributes, "PodSandboxStats" => PodSandboxStats,
    "LinuxPodSandboxStats" => LinuxPodSandboxStats, "NetworkUsage" => NetworkUsage,
    "NetworkInterfaceUsage" => NetworkInterfaceUsage, "ProcessUsage" => ProcessUsage,
    "ImageSpec" => ImageSpec, "KeyValue" => KeyValue,
    "LinuxContainerResources" => LinuxContainerResources, "HugepageLimit" => HugepageLimit,
    "SELinuxOption" => SeLinuxOption, "Capability" => Capability,
    "LinuxContainerSecurityContext" => LinuxContainerSecurityContext,
    "LinuxContainerConfig" => LinuxContainerConfig, "LinuxContainerUser" => LinuxContainerUser,
    "ContainerMetadata" => ContainerMetadata, "Device" => Device, "CDIDevice" => CdiDevice,
    "ContainerConfig" => ContainerConfig, "CreateContainerRequest" => CreateContainerRequest,
    "CreateContainerResponse" => CreateContainerResponse,
    "StartContainerRequest" => StartContainerRequest,
    "StartContainerResponse" => StartContainerResponse,
    "StopContainerRequest" => StopContainerRequest,
    "StopContainerResponse" => StopContainerResponse,
    "RemoveContainerRequest" => RemoveContainerRequest,
    "RemoveContainerResponse" => RemoveContainerResponse,
    "ContainerStateValue" => ContainerStateValue, "ContainerFilter" => ContainerFilter,
    "ListContainersRequest" => ListContainersRequest, "Container" => Container,
    "ListContainersResponse" => ListContainersResponse,
    "ContainerStatusRequest" => ContainerStatusRequest, "ContainerStatus" => ContainerStatus,
    "ContainerStatusResponse" => ContainerStatusResponse,
    "ContainerResources" => ContainerResources, "ContainerUser" => ContainerUser,
    "UpdateContainerResourcesRequest" => UpdateContainerResourcesRequest,
    "UpdateContainerResourcesResponse" => UpdateContainerResourcesResponse,
    "ExecSyncRequest" => ExecSyncRequest, "ExecSyncResponse" => ExecSyncResponse,
    "ExecRequest" => ExecRequest, "ExecResponse" => ExecResponse,
    "AttachRequest" => AttachRequest, "AttachResponse" => AttachResponse,
    "PortForwardRequest" => PortForwardRequest, "PortForwardResponse" => PortForwardResponse,
    "ImageFilter" => ImageFilter, "ListImagesRequest" => ListImagesRequest, "Image" => Image,
    "ListImagesResponse" => ListImagesResponse, "ImageStatusRequest" => ImageStatusRequest,
    "ImageStatusResponse" => ImageStatusResponse, "AuthConfig" => AuthConfig,
    "PullImageRequest" => PullImageRequest, "PullImageResponse" => PullImageResponse,
    "RemoveImageRequest" => RemoveImageRequest, "RemoveImageResponse" => RemoveImageResponse,
    "NetworkConfig" => NetworkConfig, "RuntimeConfig" => RuntimeConfig,
    "UpdateRuntimeConfigRequest" => UpdateRuntimeConfigRequest,
    "UpdateRuntimeConfigResponse" => UpdateRuntimeConfigResponse,
    "RuntimeCondition" => RuntimeCondition, "RuntimeStatus" => RuntimeStatus,
    "StatusRequest" => StatusRequest, "RuntimeHandlerFeatures" => RuntimeHandlerFeatures,
    "RuntimeHandler" => RuntimeHandler, "RuntimeFeatures" => RuntimeFeatures,
    "StatusResponse" => StatusResponse, "ImageFsInfoRequest" => ImageFsInfoRequest,
    "FilesystemIdentifier" => FilesystemIdentifier, "FilesystemUsage" => FilesystemUsage,
    "ImageFsInfoResponse" => ImageFsInfoResponse,
    "ContainerStatsRequest" => ContainerStatsRequest,
    "ContainerStatsResponse" => ContainerStatsResponse,
    "ListContainerStatsRequest" => ListContainerStatsRequest,
    "ContainerStatsFilter" => ContainerStatsFilter,
    "ListContainerStatsResponse" => ListContainerStatsResponse,
    "ContainerAttributes" => ContainerAttributes, "ContainerStats" => ContainerStats,
    "CpuUsage" => CpuUsage, "MemoryUsage" => MemoryUsage, "SwapUsage" => SwapUsage,
    "ReopenContainerLogRequest" => ReopenContainerLogRequest,
    "ReopenContainerLogResponse" => ReopenContainerLogResponse,
    "RuntimeConfigRequest" => RuntimeConfigRequest,
    "RuntimeConfigResponse" => RuntimeConfigResponse,
    "LinuxRuntimeConfiguration" => LinuxRuntimeConfiguration,
}

fn proto() -> Proto {
    let path = proto_path();
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let p = parse(&src);
    assert!(
        p.messages.len() > 100 && p.rpcs.len() > 30,
        "parsed too little of {}",
        path.display()
    );
    p
}

#[test]
fn every_message_round_trips_through_the_upstream_types() {
    check_all(&proto());
}

#[test]
fn every_upstream_message_is_ours_or_deliberately_left_out() {
    let p = proto();
    let missing: Vec<&String> = p
        .messages
        .keys()
        .filter(|m| !m.starts_with("Windows"))
        .filter(|m| !OURS.contains(&m.as_str()) && !LEFT_OUT.contains(&m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "upstream messages neither implemented nor left out: {missing:?}"
    );
    let stale: Vec<&&str> = OURS
        .iter()
        .chain(LEFT_OUT)
        .filter(|m| !p.messages.contains_key(**m))
        .collect();
    assert!(stale.is_empty(), "not in the upstream proto: {stale:?}");
}

#[test]
fn every_rpc_matches_the_upstream_service_definition() {
    let p = proto();
    let rust_name = |proto: &str| {
        OURS.iter()
            .position(|m| *m == proto)
            .map(|_| proto.to_string())
            .unwrap_or_else(|| panic!("{proto} is not one of ours"))
    };
    for (path, req, resp) in tinylet::cri::RPCS {
        let (service, method) = path.split_once('/').unwrap_or_else(|| panic!("{path}"));
        let rpc = p
            .rpcs
            .iter()
            .find(|(s, m, _, _)| s == service && m == method);
        let Some((_, _, preq, presp)) = rpc else {
            panic!("{path} is not in the upstream proto")
        };
        assert_eq!(
            (rust_name(preq), rust_name(presp)),
            (req.to_string(), resp.to_string()),
            "{path}"
        );
    }
    // The calls the issue lists are all there.
    for want in [
        "Version",
        "Status",
        "RunPodSandbox",
        "StopPodSandbox",
        "RemovePodSandbox",
        "PodSandboxStatus",
        "ListPodSandbox",
        "CreateContainer",
        "StartContainer",
        "StopContainer",
        "RemoveContainer",
        "ListContainers",
        "ContainerStatus",
        "UpdateContainerResources",
        "ReopenContainerLog",
        "ExecSync",
        "Exec",
        "Attach",
        "PortForward",
        "ContainerStats",
        "ListContainerStats",
        "PodSandboxStats",
        "ListPodSandboxStats",
        "UpdateRuntimeConfig",
        "ListImages",
        "ImageStatus",
        "PullImage",
        "RemoveImage",
        "ImageFsInfo",
    ] {
        assert!(
            tinylet::cri::RPCS
                .iter()
                .any(|(p, _, _)| p.ends_with(&format!("/{want}"))),
            "{want}"
        );
    }
}
