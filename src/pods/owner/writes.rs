//! The owner's writes to the API: each pod's status when it differs from what the API has (one
//! write in flight per pod), static pods' mirror pods, and what the API worker says of them.

use super::*;

impl Owner {
    /// Makes the API hold a live mirror pod of static pod `uid`, as the kubelet: a mirror that
    /// is being deleted or is of another version of the manifest is replaced.
    pub(super) fn ensure_mirror(&mut self, uid: &str, now_ms: u64) -> Vec<Work> {
        let Some(e) = self.pods.get_mut(uid) else {
            return Vec::new();
        };
        if !self.cfg.api_source
            || !files::is_static(&e.pod)
            || e.pod.deleting()
            || e.mirror_in_flight
            || now_ms < e.mirror_retry
        {
            return Vec::new();
        }
        let key = e.pod.key();
        let stale = match self.mirrors.get(&key) {
            Some(m) if files::mirrors(m, &e.pod) => return Vec::new(),
            Some(_) => self.mirrors.remove(&key).map(Box::new),
            None => None,
        };
        e.mirror_in_flight = true;
        vec![Work::Api(ApiJob::CreateMirror {
            pod: Box::new(e.pod.clone()),
            stale,
        })]
    }

    /// The pod's status, written when it differs from what the API has (one write in flight
    /// per pod), with the pod's uid as the precondition. A static pod's status goes to its
    /// mirror; without one it is only kept here (and served on 10250).
    pub(super) fn report(&mut self, uid: &str, now_ms: u64) -> Vec<Work> {
        let Some(e) = self.pods.get_mut(uid) else {
            return Vec::new();
        };
        if e.status_in_flight {
            return Vec::new();
        }
        let next = crate::pods::report::desired(
            &e.pod,
            &e.state,
            &e.obs,
            &e.probes,
            &self.cfg.host_ip,
            now_ms,
        );
        match next["phase"].as_str() {
            Some("Running") => {
                if let Some(seen) = e.first_seen_ms.take() {
                    let secs = now_ms.saturating_sub(seen) as f64 / 1000.0;
                    self.health.pods.pod_started(secs);
                }
            }
            Some("Succeeded" | "Failed") => e.first_seen_ms = None,
            _ => {}
        }
        let key = e.pod.key();
        let (base, target_uid, mirror) = if files::is_static(&e.pod) {
            match self.mirrors.get(&key).filter(|m| files::mirrors(m, &e.pod)) {
                Some(m) => (&m.status, m.metadata.uid.clone(), Some(key.clone())),
                None => {
                    if e.pod.status != next {
                        e.pod.status = next;
                        self.changed = true;
                    }
                    return Vec::new();
                }
            }
        } else {
            (&e.pod.status, e.pod.metadata.uid.clone(), None)
        };
        let Some(patch) = crate::kube::patch::diff(base, &next) else {
            return Vec::new();
        };
        let m = &e.pod.metadata;
        vinfo!(
            3,
            "Patch status for pod {}/{}: patch {patch}",
            m.namespace,
            m.name
        );
        e.status_in_flight = true;
        vec![Work::Api(ApiJob::Status {
            uid: uid.to_string(),
            path: format!("/api/v1/namespaces/{}/pods/{}/status", m.namespace, m.name),
            body: json!({"metadata": {"uid": target_uid}, "status": patch}),
            mirror,
        })]
    }

    pub(super) fn take_api(&mut self, done: ApiDone, now_ms: u64) {
        match done {
            ApiDone::Status {
                uid,
                mirror,
                result,
            } => {
                let Some(e) = self.pods.get_mut(&uid) else {
                    return;
                };
                e.status_in_flight = false;
                let key = e.pod.key();
                match result {
                    Ok(v) => {
                        vinfo!(
                            2,
                            "Patch status for pod {key:?}: phase {}",
                            v["status"]["phase"]
                        );
                        e.pod.status = v["status"].clone();
                        e.status_error.clear();
                        let rv = v["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        match mirror.and_then(|k| self.mirrors.get_mut(&k)) {
                            Some(m) => {
                                m.status = v["status"].clone();
                                m.metadata.resource_version = rv;
                            }
                            None => e.status_rv = rv,
                        }
                        self.changed = true;
                    }
                    Err(err) => {
                        // Once per distinct failure: with the API server away this repeats.
                        if e.status_error != err {
                            warn!("Failed to update status for pod {key:?}: {err}");
                            e.status_error = err;
                        }
                    }
                }
            }
            ApiDone::Mirror { key, uid, result } => {
                let e = self.pods.get_mut(&uid);
                match result {
                    Ok(m) => {
                        info!("Created mirror pod {key} (uid {})", m.metadata.uid);
                        self.mirrors.insert(key, *m);
                        if let Some(e) = e {
                            e.mirror_in_flight = false;
                        }
                    }
                    Err(why) => {
                        warn!("creating mirror pod for static pod {key}: {why}; retrying in 10s");
                        if let Some(e) = e {
                            e.mirror_in_flight = false;
                            e.mirror_retry = now_ms + 10_000;
                        }
                    }
                }
            }
            ApiDone::MirrorDeleted { key } => {
                self.mirrors.remove(&key);
            }
        }
    }
}
