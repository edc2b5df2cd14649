//! The owner's probes: which are due for each pod's running containers (handed to the probe
//! workers; until a startup probe succeeds the others wait), and what their outcomes do
//! (thresholds, Unhealthy events, a liveness or startup failure stopping the container).

use super::*;

impl Owner {
    /// The probes due for the pod's running containers, for the probe workers; until a
    /// startup probe succeeds the others wait.
    pub(super) fn probe(&mut self, uid: &str, now_ms: u64) -> Vec<Work> {
        let ip = match self.pods.get(uid) {
            Some(e) => crate::pods::execute::pod_ip(&self.cfg, &e.obs),
            None => return Vec::new(),
        };
        let Some(e) = self.pods.get_mut(uid) else {
            return Vec::new();
        };
        let mut work = Vec::new();
        let sidecars = e.pod.spec.init_containers.iter().filter(|c| c.is_sidecar());
        for spec in e.pod.spec.containers.iter().chain(sidecars) {
            let Some(c) = e
                .obs
                .container(&spec.name)
                .filter(|c| c.state == CState::Running)
            else {
                continue;
            };
            let started_ms = (c.started_at.max(0) / 1_000_000) as u64;
            let started = e
                .probes
                .get(&(spec.name.clone(), Kind::Startup))
                .is_some_and(|t| t.container_id == c.id && t.result == Some(true));
            let probes: &[(Kind, &Option<crate::pods::spec::Probe>)] =
                if spec.startup_probe.is_some() && !started {
                    &[(Kind::Startup, &spec.startup_probe)]
                } else {
                    &[
                        (Kind::Readiness, &spec.readiness_probe),
                        (Kind::Liveness, &spec.liveness_probe),
                    ]
                };
            for &(kind, p) in probes {
                let Some(p) = p else { continue };
                let t = e
                    .probes
                    .entry((spec.name.clone(), kind))
                    .or_insert_with(|| Tracker::new(&c.id));
                if t.container_id != c.id {
                    *t = Tracker::new(&c.id);
                }
                if !t.due(p, now_ms, started_ms) {
                    continue;
                }
                t.start(now_ms);
                work.push(Work::Probe(Box::new(probe::Job {
                    uid: uid.to_string(),
                    pod: e.pod.metadata.name.clone(),
                    namespace: e.pod.metadata.namespace.clone(),
                    container: spec.name.clone(),
                    kind,
                    container_id: c.id.clone(),
                    probe: p.clone(),
                    pod_ip: ip.clone(),
                    ports: spec.ports.clone(),
                })));
            }
        }
        work
    }

    /// A probe's outcome: thresholds, Unhealthy events, and a liveness or startup failure past
    /// its threshold stops the container (the restart policy then decides), as the kubelet's.
    pub(super) fn take_probe(&mut self, done: probe::Done, now_ms: u64) -> Vec<Work> {
        let probe::Done { job, outcome, .. } = done;
        let Some(e) = self.pods.get_mut(&job.uid) else {
            return Vec::new();
        };
        let Some(t) = e
            .probes
            .get_mut(&(job.container.clone(), job.kind))
            .filter(|t| t.container_id == job.container_id)
        else {
            return Vec::new();
        };
        let (name, kind) = (job.container.as_str(), job.kind);
        let changed = t.record(&job.probe, now_ms, &outcome);
        let failed_for_good = changed && t.result == Some(false);
        let succeeded = t.result == Some(true);
        let pod = e.pod.clone();
        // What the runtime showed of the pod, for the stop (its preStop hook's pod IP).
        let obs = if failed_for_good {
            e.obs.clone()
        } else {
            Observed::default()
        };
        let key = pod.key();
        self.changed |= changed;
        if let probe::Outcome::Failure(why) = &outcome {
            vinfo!(
                2,
                "Probe failed: {} probe of {key}/{name}: {why}",
                kind.name()
            );
            self.event(
                &pod,
                Some(name),
                true,
                Reason::Unhealthy,
                format!("{} probe failed: {why}", kind.title()),
            );
        }
        if changed {
            let result = if succeeded { "success" } else { "failure" };
            info!("{} probe of {key}/{name}: {result}", kind.name());
        }
        if kind == Kind::Readiness || !failed_for_good {
            return Vec::new();
        }
        let what = format!(
            "Container {name} failed {} probe, will be restarted",
            kind.name()
        );
        info!("{what}");
        // The probe's own grace period, when it names one, else the pod's.
        let grace = job
            .probe
            .termination_grace_period_seconds
            .map_or_else(|| pod.grace_seconds(), |g| g.max(0));
        vec![Work::Stop {
            pod: Box::new(pod),
            obs: Box::new(obs),
            id: job.container_id,
            grace,
            why: what,
        }]
    }
}
