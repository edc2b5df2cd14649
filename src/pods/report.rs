//! A pod's status as the agent reports it: built from the pod, its state, what the runtime
//! shows and its probes (pure), then written to the API by the API worker as a minimal
//! strategic-merge patch with the pod's uid as the precondition (a static pod's status goes to
//! its mirror pod). The worker also creates and deletes mirror pods.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::plan::Observed;
use super::probe::{Kind, Tracker};
use super::seams::{Api, ApiError};
use super::spec::Pod;
use super::state::{self, PodState};
use crate::kube::PatchKind;
use crate::timefmt::Civil;

/// The status `pod` should have now.
pub fn desired(
    pod: &Pod,
    st: &PodState,
    obs: &Observed,
    probes: &HashMap<(String, Kind), Tracker>,
    host_ip: &str,
    now_ms: u64,
) -> Value {
    if let (Some((reason, message)), false) = (&st.rejected, pod.deleting()) {
        return json!({"phase": "Failed", "reason": reason, "message": message,
            "startTime": st.start_time, "hostIP": host_ip});
    }
    let passed = |name: &str, kind: Kind| {
        probes
            .get(&(name.to_string(), kind))
            .is_some_and(|t| t.result == Some(true))
    };
    let probed = |name: &str| {
        let spec = pod.container(name);
        let started = spec.is_none_or(|s| s.startup_probe.is_none()) || passed(name, Kind::Startup);
        let ready =
            spec.is_none_or(|s| s.readiness_probe.is_none()) || passed(name, Kind::Readiness);
        (started, started && ready)
    };
    // Failed here: the status is built as for a pod the API knows has failed.
    let failed_pod = st.failed.as_ref().map(|_| {
        let mut p = pod.clone();
        p.status["phase"] = json!("Failed");
        p
    });
    let now = Civil::from_system(std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms));
    let mut next = super::status::build(
        failed_pod.as_ref().unwrap_or(pod),
        obs,
        host_ip,
        &st.start_time,
        &now.rfc3339(),
        &|name: &str| state::waiting(pod, st, obs, name, now_ms),
        &probed,
    );
    // A pod failed here keeps its reason; a finished pod never leaves its phase.
    if let Some((reason, message)) = &st.failed {
        next["phase"] = json!("Failed");
        next["reason"] = json!(reason.as_str());
        next["message"] = json!(message);
        if let (Some(e), Some(list)) = (&st.eviction, next["conditions"].as_array_mut())
            && !list.iter().any(|c| c["type"] == "DisruptionTarget")
        {
            // As the kubelet's eviction manager marks the pods it evicts.
            list.push(json!({"type": "DisruptionTarget", "status": "True",
                "lastProbeTime": null, "lastTransitionTime": e.at,
                "reason": "TerminationByKubelet", "message": message}));
        }
    } else if state::terminal(pod) {
        for k in ["phase", "reason", "message"] {
            if !pod.status[k].is_null() {
                next[k] = pod.status[k].clone();
            }
        }
    }
    next
}

/// A write for the API worker.
#[derive(Debug, Clone)]
pub enum ApiJob {
    /// Patch a pod's (or its mirror's) status.
    Status {
        uid: String,
        path: String,
        body: Value,
        /// The patch goes to the static pod's mirror `key`.
        mirror: Option<String>,
    },
    /// Make static pod `pod`'s mirror (deleting `stale` first).
    CreateMirror {
        pod: Box<Pod>,
        stale: Option<Box<Pod>>,
    },
    /// Delete the mirror of a static pod that is gone.
    DeleteMirror { mirror: Box<Pod> },
}

/// How an API job went.
#[derive(Debug)]
pub enum ApiDone {
    Status {
        uid: String,
        mirror: Option<String>,
        result: Result<Value, String>,
    },
    Mirror {
        key: String,
        uid: String,
        result: Result<Box<Pod>, String>,
    },
    MirrorDeleted {
        key: String,
    },
}

/// Deletes a mirror pod (grace 0, its uid as the precondition); gone already is fine.
fn delete_mirror(api: &dyn Api, m: &Pod) {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}",
        m.metadata.namespace, m.metadata.name
    );
    let result = api.delete(
        &path,
        &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": m.metadata.uid}}),
    );
    match result {
        Ok(_) => crate::info!("Deleted mirror pod {} (uid {})", m.key(), m.metadata.uid),
        Err(ApiError {
            code: Some(404 | 409),
            ..
        }) => {}
        Err(e) => crate::warn!("deleting mirror pod {}: {e}", m.key()),
    }
}

/// The API worker's state: the Node object's uid (the mirror pods' owner), once read.
pub struct ApiWorker {
    pub node: String,
    node_uid: Option<String>,
}

impl ApiWorker {
    pub fn new(node: &str) -> ApiWorker {
        ApiWorker {
            node: node.to_string(),
            node_uid: None,
        }
    }

    pub fn run(&mut self, api: &dyn Api, job: ApiJob) -> ApiDone {
        match job {
            ApiJob::Status {
                uid,
                path,
                body,
                mirror,
            } => ApiDone::Status {
                uid,
                mirror,
                result: api
                    .patch(&path, PatchKind::Strategic, &body)
                    .map_err(|e| e.message),
            },
            ApiJob::CreateMirror { pod, stale } => {
                if let Some(m) = stale {
                    delete_mirror(api, &m);
                }
                let result = self.create_mirror(api, &pod).map(Box::new);
                ApiDone::Mirror {
                    key: pod.key(),
                    uid: pod.metadata.uid.clone(),
                    result,
                }
            }
            ApiJob::DeleteMirror { mirror } => {
                delete_mirror(api, &mirror);
                ApiDone::MirrorDeleted { key: mirror.key() }
            }
        }
    }

    fn create_mirror(&mut self, api: &dyn Api, pod: &Pod) -> Result<Pod, String> {
        let node_uid = match &self.node_uid {
            Some(u) => u.clone(),
            None => {
                let n = api
                    .get(&format!("/api/v1/nodes/{}", self.node))
                    .map_err(|e| format!("reading node {}: {e}", self.node))?;
                let u = n["metadata"]["uid"].as_str().unwrap_or("").to_string();
                self.node_uid = Some(u.clone());
                u
            }
        };
        let body = super::files::mirror_of(pod, &self.node, &node_uid);
        let path = format!("/api/v1/namespaces/{}/pods", pod.metadata.namespace);
        api.create(&path, &body)
            .map_err(|e| e.message)
            .and_then(Pod::from_value)
    }
}
