//! The node's I/O loops: registration with backoff and reconciliation, the status loop (compute
//! every nodeStatusUpdateFrequency, patch at once on a change, else every
//! nodeStatusReportFrequency) and the lease renewer. Every loop ends at the shared [`Stop`];
//! events go out through the recorder (`crate::events`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use super::host::{self, FsStats, Machine, Observations, Roots};
use super::status::{self, Facts, NodeEvent, Pressure, Spec};
use crate::config::Settings;
use crate::cri::Runtime;
use crate::cri::api::{ImageFsInfoRequest, ListImagesRequest, StatusRequest, VersionRequest};
use crate::events::Recorder;
use crate::kube::types::{
    Lease, LeaseSpec, Node, NodeAddress, NodeSpec, ObjectMeta, OwnerReference,
};
use crate::kube::{KubeError, Lazy, PatchKind};
use crate::stop::Stop;
use crate::timefmt::Civil;
use crate::{error, info, vinfo, warn};

/// Everything the node loops need from the configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub spec: Spec,
    pub roots: Roots,
    pub root_dir: PathBuf,
    pub node_ip_flag: Vec<IpAddr>,
    pub config_address: IpAddr,
    pub hostname: String,
    pub update_every: Duration,
    pub report_every: Duration,
    pub lease_seconds: i32,
    pub register: bool,
    pub pressure_transition: Duration,
    pub event_qps: i32,
    pub event_burst: i32,
    /// The scheme of the runtime endpoint's name before the runtime first answers.
    pub runtime_name: String,
    /// The pressure conditions of the last status, for pod admission.
    pub pressure: std::sync::Arc<status::SharedPressure>,
}

impl Config {
    pub fn from_settings(s: &Settings) -> Config {
        let k = &s.kubelet;
        let arch = status::go_arch();
        let mut labels: BTreeMap<String, String> = [
            ("kubernetes.io/hostname", s.node_name.as_str()),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", arch),
            ("beta.kubernetes.io/os", "linux"),
            ("beta.kubernetes.io/arch", arch),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        labels.extend(s.flags.node_labels.clone());
        let mut annotations = BTreeMap::new();
        if k.enable_controller_attach_detach {
            annotations.insert(CMAD.to_string(), "true".to_string());
        }
        Config {
            spec: Spec {
                name: s.node_name.clone(),
                labels,
                annotations,
                taints: s
                    .flags
                    .register_with_taints
                    .clone()
                    .unwrap_or_else(|| k.register_with_taints.clone()),
                provider_id: k.provider_id.clone(),
                max_pods: i64::from(k.max_pods),
                pods_per_core: i64::from(k.pods_per_core),
                system_reserved: k.system_reserved.clone(),
                kube_reserved: k.kube_reserved.clone(),
                eviction_hard: k.eviction_hard.clone(),
                eviction_soft: k.eviction_soft.clone(),
                port: i32::from(k.port),
                kubelet_version: crate::KUBERNETES_VERSION.into(),
                max_images: k.node_status_max_images,
            },
            roots: Roots::host(),
            root_dir: s.flags.root_dir.clone(),
            node_ip_flag: s.flags.node_ip.clone(),
            config_address: k.address,
            hostname: s.node_name.clone(),
            update_every: k.node_status_update_frequency.as_std(),
            report_every: k.node_status_report_frequency.as_std(),
            lease_seconds: k.node_lease_duration_seconds,
            register: k.register_node,
            pressure_transition: k.eviction_pressure_transition_period.as_std(),
            pressure: Default::default(),
            event_qps: k.event_record_qps,
            event_burst: k.event_burst,
            runtime_name: "remote".into(),
        }
    }

    fn node_path(&self) -> String {
        format!("/api/v1/nodes/{}", self.spec.name)
    }
}

const CMAD: &str = "volumes.kubernetes.io/controller-managed-attach-detach";

/// The labels the kubelet keeps in line on an existing node (`updateDefaultLabels`).
const DEFAULT_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

fn now_text() -> String {
    Civil::now().rfc3339()
}

/// Reads what the host and the runtime say each round.
struct Gatherer<'a> {
    cfg: &'a Config,
    runtime: Option<&'a Runtime>,
    version: Option<String>,
    machine: Option<Machine>,
    held: status::Held,
    /// The runtime's image filesystem as last seen.
    imagefs: Option<FsStats>,
}

impl Gatherer<'_> {
    fn addresses(&self) -> Vec<NodeAddress> {
        let mut v: Vec<NodeAddress> = super::node_ips(
            &self.cfg.node_ip_flag,
            self.cfg.config_address,
            &self.cfg.roots.proc_,
        )
        .into_iter()
        .map(|ip| NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        })
        .collect();
        v.push(NodeAddress {
            type_: "Hostname".into(),
            address: self.cfg.hostname.clone(),
        });
        v
    }

    /// (runtime version, why not ready, images, image filesystem)
    fn runtime(
        &mut self,
    ) -> (
        String,
        Vec<String>,
        Vec<crate::kube::types::ContainerImage>,
        Option<FsStats>,
    ) {
        let Some(rt) = self.runtime else {
            return (
                format!("{}://Unknown", self.cfg.runtime_name),
                vec!["container runtime is down".into()],
                vec![],
                None,
            );
        };
        if self.version.is_none() {
            match rt.version(&VersionRequest::default()) {
                Ok(v) => self.version = Some(format!("{}://{}", v.runtime_name, v.runtime_version)),
                Err(e) => vinfo!(2, "runtime version: {e}"),
            }
        }
        let version = self
            .version
            .clone()
            .unwrap_or_else(|| format!("{}://Unknown", self.cfg.runtime_name));
        let mut not_ready = Vec::new();
        match rt.status(&StatusRequest { verbose: false }) {
            Err(e) => {
                error!("Container runtime sanity check failed: {e}");
                not_ready.push("container runtime is down".to_string());
            }
            Ok(s) => {
                let conds = s.status.map(|s| s.conditions).unwrap_or_default();
                let find = |t: &str| conds.iter().find(|c| c.r#type == t);
                let describe = |t: &str| match find(t) {
                    Some(c) => format!(
                        "{}={} reason:{} message:{}",
                        c.r#type, c.status, c.reason, c.message
                    ),
                    None => "<nil>".into(),
                };
                if !find("RuntimeReady").is_some_and(|c| c.status) {
                    not_ready.push(format!(
                        "container runtime not ready: {}",
                        describe("RuntimeReady")
                    ));
                }
                if !find("NetworkReady").is_some_and(|c| c.status) {
                    not_ready.push(format!(
                        "container runtime network not ready: {}",
                        describe("NetworkReady")
                    ));
                }
            }
        }
        let images = match rt.list_images(&ListImagesRequest::default()) {
            Ok(l) => status::images(&l.images),
            Err(e) => {
                vinfo!(2, "listing images: {e}");
                vec![]
            }
        };
        let imagefs = rt
            .image_fs_info(&ImageFsInfoRequest::default())
            .ok()
            .and_then(crate::cri::api::ImageFsInfoResponse::image_mountpoint)
            .and_then(|m| host::fs_stats(std::path::Path::new(&m)).ok());
        (version, not_ready, images, imagefs)
    }

    fn facts(&mut self) -> Result<Facts, host::HostError> {
        let machine = match Machine::read(&self.cfg.roots) {
            Ok(m) => m,
            Err(e) => match &self.machine {
                Some(m) => {
                    warn!("reading machine facts: {e}; using the last ones");
                    m.clone()
                }
                None => return Err(e),
            },
        };
        self.machine = Some(machine.clone());
        let rootfs = host::fs_stats(&self.cfg.root_dir)?;
        let (runtime_version, not_ready, images, imagefs) = self.runtime();
        self.imagefs = imagefs;
        let observed = match Observations::read(&self.cfg.roots, &self.cfg.root_dir) {
            Ok(o) => status::pressure(&self.cfg.spec, &o, imagefs.as_ref()),
            Err(e) => {
                warn!("reading eviction signals: {e}");
                Pressure::default()
            }
        };
        let pressure = self
            .held
            .update(Instant::now(), observed, self.cfg.pressure_transition);
        self.cfg.pressure.set(pressure);
        Ok(Facts {
            machine,
            rootfs,
            addresses: self.addresses(),
            runtime_version,
            not_ready,
            pressure,
            images,
        })
    }
}

/// The node loop: registers (unless `registerNode: false`), then keeps the status current
/// until stopped. `registered` runs once, after the first successful registration.
pub fn run(
    cfg: &Config,
    client: &Lazy,
    runtime: Option<&Runtime>,
    events: &Recorder,
    stop: &Stop,
    node_uid: &Mutex<String>,
    mut registered: impl FnMut(),
) {
    events.record(NodeEvent::normal("Starting", "Starting kubelet.".into()));
    let mut g = Gatherer {
        cfg,
        runtime,
        version: None,
        machine: None,
        held: status::Held::default(),
        imagefs: None,
    };
    let mut announced = false;
    'register: loop {
        let mut node = if cfg.register {
            match register(cfg, client, &mut g, events, stop) {
                Some(n) => n,
                None => return,
            }
        } else {
            match wait_for_node(cfg, client, stop) {
                Some(n) => n,
                None => return,
            }
        };
        *node_uid.lock().unwrap_or_else(|p| p.into_inner()) = node.metadata.uid.clone();
        if !announced {
            announced = true;
            registered();
        }
        let mut last_report = Instant::now();
        loop {
            if stop.sleep(cfg.update_every) {
                return;
            }
            let facts = match g.facts() {
                Ok(f) => f,
                Err(e) => {
                    error!("Error updating node status, will retry: {e}");
                    continue;
                }
            };
            let (next, evs) = status::build(&cfg.spec, &facts, &node.status, &now_text());
            if !status::changed(&node.status, &next) && last_report.elapsed() < cfg.report_every {
                continue;
            }
            match patch_status(cfg, client, &node, &next) {
                Ok(n) => {
                    node = n;
                    last_report = Instant::now();
                    for e in evs {
                        events.record(e);
                    }
                }
                Err(e) if e.code() == Some(404) && cfg.register => {
                    warn!(
                        "node {:?} is gone from the API server; registering it again",
                        cfg.spec.name
                    );
                    continue 'register;
                }
                Err(e) => {
                    error!("Error updating node status, will retry: {e}");
                    if !matches!(e, KubeError::Api { .. }) {
                        client.forget();
                    }
                }
            }
        }
    }
}

fn patch_status(
    cfg: &Config,
    client: &Lazy,
    node: &Node,
    next: &crate::kube::types::NodeStatus,
) -> Result<Node, KubeError> {
    let c = client.get().map_err(|message| KubeError::Tls {
        what: "API client".into(),
        message,
    })?;
    let old = serde_json::to_value(&node.status).unwrap_or_default();
    let new = serde_json::to_value(next).unwrap_or_default();
    let Some(patch) = crate::kube::patch::diff(&old, &new) else {
        // Nothing differs at all (a report with no heartbeat change cannot happen: heartbeats
        // move every round), so there is nothing to send.
        return Ok(node.clone());
    };
    vinfo!(4, "patching node status: {patch}");
    c.patch(
        &format!("{}/status", cfg.node_path()),
        PatchKind::Strategic,
        &json!({ "status": patch }),
    )
}

/// The node as first registered: labels, annotations, taints, providerID, and a full status.
fn initial_node(cfg: &Config, g: &mut Gatherer, events: &Recorder) -> Option<Node> {
    let facts = match g.facts() {
        Ok(f) => f,
        Err(e) => {
            error!("Unable to construct v1.Node object for kubelet: {e}");
            return None;
        }
    };
    let (st, evs) = status::build(&cfg.spec, &facts, &Default::default(), &now_text());
    for e in evs {
        events.record(e);
    }
    if g.imagefs.is_some_and(|f| f.capacity_bytes == 0) {
        events.record(NodeEvent::warning(
            "InvalidDiskCapacity",
            "invalid capacity 0 on image filesystem".into(),
        ));
    }
    Some(Node {
        api_version: "v1".into(),
        kind: "Node".into(),
        metadata: ObjectMeta {
            name: cfg.spec.name.clone(),
            labels: cfg.spec.labels.clone(),
            annotations: cfg.spec.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: NodeSpec {
            taints: cfg.spec.taints.clone(),
            provider_id: cfg.spec.provider_id.clone(),
            ..NodeSpec::default()
        },
        status: st,
    })
}

/// Backoff between registration attempts: 100 ms doubling to 7 s, as the kubelet.
pub fn register_backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(7))).min(Duration::from_secs(7))
}

fn register(
    cfg: &Config,
    client: &Lazy,
    g: &mut Gatherer,
    events: &Recorder,
    stop: &Stop,
) -> Option<Node> {
    let mut attempt = 0;
    let mut waiting_logged = false;
    loop {
        let result = match client.get() {
            Err(e) => {
                if !waiting_logged {
                    info!("waiting for the API client before registering the node: {e}");
                    waiting_logged = true;
                }
                if stop.sleep(Duration::from_secs(1)) {
                    return None;
                }
                continue;
            }
            Ok(c) => {
                info!("Attempting to register node {:?}", cfg.spec.name);
                match initial_node(cfg, g, events) {
                    None => Err(None),
                    Some(n) => try_register(cfg, &c, &n).map_err(Some),
                }
            }
        };
        match result {
            Ok(node) => {
                info!("Successfully registered node {:?}", cfg.spec.name);
                return Some(node);
            }
            Err(e) => {
                if let Some(e) = e {
                    error!("Unable to register node with API server: {e}");
                    if !matches!(e, KubeError::Api { .. }) {
                        client.forget();
                    }
                }
                if stop.sleep(register_backoff(attempt)) {
                    return None;
                }
                attempt += 1;
            }
        }
    }
}

/// Creates the node; on AlreadyExists, brings the existing one's default labels and the
/// attach/detach annotation in line (as the kubelet's reconcile) and returns it.
fn try_register(cfg: &Config, c: &crate::kube::Client, node: &Node) -> Result<Node, KubeError> {
    match c.create::<_, Node>("/api/v1/nodes", node) {
        Ok(n) => Ok(n),
        Err(e) if e.code() == Some(409) => {
            let existing: Node = c.get(&cfg.node_path())?;
            info!("Node {:?} was previously registered", cfg.spec.name);
            let mut labels = serde_json::Map::new();
            for k in DEFAULT_LABELS {
                let want = cfg.spec.labels.get(*k);
                if existing.metadata.labels.get(*k) != want {
                    labels.insert((*k).into(), json!(want));
                }
            }
            let mut annotations = serde_json::Map::new();
            let want = cfg.spec.annotations.get(CMAD);
            if existing.metadata.annotations.get(CMAD) != want {
                annotations.insert(CMAD.into(), json!(want));
            }
            if labels.is_empty() && annotations.is_empty() {
                return Ok(existing);
            }
            c.patch(
                &cfg.node_path(),
                PatchKind::Strategic,
                &json!({"metadata": {"labels": labels, "annotations": annotations}}),
            )
        }
        Err(e) => Err(e),
    }
}

/// With `registerNode: false` the node must exist already (made by an admin); wait for it.
fn wait_for_node(cfg: &Config, client: &Lazy, stop: &Stop) -> Option<Node> {
    let mut logged = false;
    loop {
        match client
            .get()
            .and_then(|c| c.get::<Node>(&cfg.node_path()).map_err(|e| e.to_string()))
        {
            Ok(n) => return Some(n),
            Err(e) if !logged => {
                info!(
                    "registerNode is false; waiting for node {:?} to exist: {e}",
                    cfg.spec.name
                );
                logged = true;
            }
            Err(_) => {}
        }
        if stop.sleep(Duration::from_secs(2)) {
            return None;
        }
    }
}

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

/// Renews the node's Lease every quarter of its duration (10 s of 40, as the kubelet), with the
/// node as owner; conflicts and failures re-read it, backing off 200 ms doubling to 7 s.
pub fn run_lease(cfg: &Config, client: &Lazy, node_uid: &Mutex<String>, stop: &Stop) {
    let every = Duration::from_secs_f64(f64::from(cfg.lease_seconds.max(1)) * 0.25);
    let mut cached: Option<Lease> = None;
    let mut failures: u32 = 0;
    loop {
        let uid = node_uid.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let wait = if uid.is_empty() {
            Duration::from_millis(200)
        } else {
            match renew(cfg, client, cached.take(), &uid) {
                Ok(l) => {
                    if failures > 0 {
                        info!("node lease renewed again after {failures} failures");
                    }
                    failures = 0;
                    cached = Some(l);
                    every
                }
                Err(e) => {
                    failures += 1;
                    error!("Failed to update lease: {e}");
                    if !matches!(e, KubeError::Api { .. }) {
                        client.forget();
                    }
                    Duration::from_millis(200u64.saturating_mul(1 << (failures - 1).min(6)))
                        .min(Duration::from_secs(7))
                        .min(every)
                }
            }
        };
        if stop.sleep(wait) {
            return;
        }
    }
}

fn renew(
    cfg: &Config,
    client: &Lazy,
    cached: Option<Lease>,
    uid: &str,
) -> Result<Lease, KubeError> {
    let c = client.get().map_err(|message| KubeError::Tls {
        what: "API client".into(),
        message,
    })?;
    let path = format!("{LEASES}/{}", cfg.spec.name);
    let existing = match cached {
        Some(l) => Some(l),
        None => match c.get::<Lease>(&path) {
            Ok(l) => Some(l),
            Err(e) if e.code() == Some(404) => None,
            Err(e) => return Err(e),
        },
    };
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: cfg.spec.name.clone(),
        uid: uid.into(),
    };
    let mut lease = existing.clone().unwrap_or_else(|| Lease {
        api_version: "coordination.k8s.io/v1".into(),
        kind: "Lease".into(),
        metadata: ObjectMeta {
            name: cfg.spec.name.clone(),
            namespace: "kube-node-lease".into(),
            ..ObjectMeta::default()
        },
        spec: LeaseSpec::default(),
    });
    lease.spec.holder_identity = Some(cfg.spec.name.clone());
    lease.spec.lease_duration_seconds = Some(cfg.lease_seconds);
    lease.spec.renew_time = Some(Civil::now().rfc3339_micros());
    if !lease.metadata.owner_references.iter().any(|o| o.uid == uid) {
        lease.metadata.owner_references = vec![owner];
    }
    if existing.is_some() {
        c.update(&path, &lease)
    } else {
        c.create(LEASES, &lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_backoff_doubles_to_seven_seconds() {
        let v: Vec<u128> = (0..9).map(|a| register_backoff(a).as_millis()).collect();
        assert_eq!(v, [100, 200, 400, 800, 1600, 3200, 6400, 7000, 7000]);
    }
}
