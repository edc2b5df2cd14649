//! The threads around the owner: its loop (inputs in, a round every sync period, work out,
//! the pods published, the sync loop's health noted), the observer
//! (a relist every sync period), a thread per pod job (starts bounded by permits, stops never
//! held back), the probe workers, one API worker (status and mirror writes, coalesced per pod
//! by the one-in-flight rule) and one clean-up thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::config::Config;
use super::execute::{Executor, now_ms};
use super::msg::Inbox;
use super::owner::{Input, Owner, Work};
use super::report::{ApiJob, ApiWorker};
use super::seams::{Api, Cri};
use crate::events::Recorder;
use crate::stop::Stop;
use crate::{error, warn};

/// Threads that run probes (each probe bounded by its timeout).
const PROBE_WORKERS: usize = 4;
/// A full round at most this often when inputs keep coming (outcomes step their pod at once).
const MIN_ROUND: Duration = Duration::from_millis(100);

/// When the owner last completed a round (seconds since the epoch; 0: not yet), for
/// `/healthz/syncloop`.
#[derive(Default)]
pub struct Health {
    last_round: AtomicU64,
    /// Every probe run, for /metrics/probes.
    pub probes: super::probe_metrics::ProbeCounts,
    /// Running pods and containers, pod start durations, for /metrics.
    pub pods: super::pod_metrics::PodMetrics,
}

impl Health {
    /// The kubelet's syncloop check: unhealthy once no round has completed for twice
    /// `syncFrequency`, at least 5 minutes.
    pub fn check(&self, sync_frequency: Duration, now_secs: u64) -> Result<(), String> {
        let last = self.last_round.load(Ordering::Relaxed);
        let limit = (sync_frequency * 2).max(Duration::from_secs(300)).as_secs();
        if last != 0 && now_secs > last + limit {
            return Err("sync Loop took longer than expected".into());
        }
        Ok(())
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(f) {
        error!("starting the {name} thread: {e}");
    }
}

/// The pod machinery, running: its inbox for the sources.
pub struct Pods {
    pub inbox: Inbox,
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts the owner and its threads. `api` is the agent's API client (every call fails when
/// standalone), `cri` the runtime.
#[allow(clippy::too_many_arguments)]
pub fn start(
    cfg: Config,
    api: Arc<dyn Api>,
    cri: Arc<dyn Cri>,
    snapshot: super::Snapshot,
    events: Option<Recorder>,
    services: super::services::Services,
    stop: Arc<Stop>,
    health: Arc<Health>,
) -> std::io::Result<Pods> {
    let cfg = Arc::new(cfg);
    let (tx, rx) = mpsc::channel::<Input>();
    let known = Arc::new(super::gc::Known::default());
    let mut owner =
        Owner::new(cfg.clone(), events.clone(), known.clone()).with_health(health.clone());
    if cfg.api_source {
        owner.restore();
    }
    let exec = Arc::new(Executor::new(
        cfg.clone(),
        cri.clone(),
        api.clone(),
        events.clone(),
        services,
    ));
    // The observer: a relist every sync period.
    {
        let (tx, cri, stop, cfg) = (tx.clone(), cri.clone(), stop.clone(), cfg.clone());
        let health = health.clone();
        spawn("pods-observer", move || {
            let mut observer = super::observe::Observer::new(&cfg.root_dir);
            let mut failing = String::new();
            while !stop.is_stopped() {
                match observer.relist(&*cri, now_ms()) {
                    Ok(o) => {
                        failing.clear();
                        health.pods.set_counts(o.counts.clone());
                        if tx.send(Input::Observed(o)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e != failing => {
                        warn!("listing the runtime's pods: {e}");
                        failing = e;
                    }
                    Err(_) => {}
                }
                if stop.sleep(cfg.sync_every) {
                    return;
                }
            }
        });
    }
    // The API worker: status and mirror writes in order.
    let (api_jobs, api_rx) = mpsc::channel::<ApiJob>();
    {
        let (tx, api, node) = (tx.clone(), api.clone(), cfg.node.clone());
        spawn("pods-api", move || {
            let mut w = ApiWorker::new(&node);
            while let Ok(job) = api_rx.recv() {
                if tx.send(Input::Api(w.run(&*api, job))).is_err() {
                    return;
                }
            }
        });
    }
    // The clean-up: requests coalesce (one pass covers them all).
    let (gc_jobs, gc_rx) = mpsc::channel::<()>();
    {
        let (cri, cfg, known) = (cri.clone(), cfg.clone(), known.clone());
        spawn("pods-gc", move || {
            while gc_rx.recv().is_ok() {
                while gc_rx.try_recv().is_ok() {}
                super::gc::remove_orphans(&*cri, &cfg, &known);
            }
        });
    }
    // Container log rotation, on a thread of its own.
    {
        let (cri, policy, stop) = (cri.clone(), cfg.log_rotation, stop.clone());
        spawn("pods-log-rotation", move || {
            while !stop.sleep(policy.every) {
                super::log_rotation::pass(&*cri, &policy);
            }
        });
    }
    // Image garbage collection, on a thread of its own; the pods' sandbox images are in use.
    if cfg.image_gc.enabled() {
        let (cri, policy, stop) = (cri.clone(), cfg.image_gc, stop.clone());
        let (snapshot, health, events) = (snapshot.clone(), health.clone(), events.clone());
        spawn("pods-image-gc", move || {
            let sandbox_images = || super::image_gc::sandbox_images(&snapshot);
            let removed = |why| health.pods.image_collected(why);
            super::image_gc::run(
                &*cri,
                &policy,
                &sandbox_images,
                &removed,
                events.as_ref(),
                &stop,
            );
        });
    }
    let probes = {
        let (tx, health) = (tx.clone(), health.clone());
        super::probe::workers(PROBE_WORKERS, cri.clone(), move |d| {
            health.probes.count(&d.job, &d.outcome, d.took);
            tx.send(Input::Probed(d)).is_ok()
        })
    };
    let inbox = Inbox(tx.clone());
    let dispatch = Dispatch {
        tx,
        exec,
        probes,
        api_jobs,
        gc_jobs,
    };
    let thread = std::thread::Builder::new()
        .name("pods".into())
        .spawn(move || run(owner, &rx, &dispatch, &snapshot, &stop, &health, &cfg))?;
    Ok(Pods { inbox, thread })
}

/// Where work goes.
struct Dispatch {
    tx: Sender<Input>,
    exec: Arc<Executor>,
    probes: Sender<super::probe::Job>,
    api_jobs: Sender<ApiJob>,
    gc_jobs: Sender<()>,
}

impl Dispatch {
    fn send(&self, work: Vec<Work>) {
        for w in work {
            match w {
                Work::Pod(job) => {
                    let (exec, tx) = (self.exec.clone(), self.tx.clone());
                    let name = format!("pod-{}", &job.pod.metadata.name);
                    spawn(&name, move || {
                        let _ = tx.send(Input::Done(exec.run(*job)));
                    });
                }
                Work::Stop {
                    pod,
                    obs,
                    id,
                    grace,
                    why,
                } => {
                    let exec = self.exec.clone();
                    spawn("pod-stop", move || {
                        let grace = Duration::from_secs(grace.unsigned_abs());
                        if let Err(e) = exec.stop_container(&pod, &obs, &id, grace, Some(why)) {
                            error!(
                                "pod {}: stopping a container that failed its probe: {e}",
                                pod.key()
                            );
                        }
                    });
                }
                Work::Probe(j) => {
                    if self.probes.send(*j).is_err() {
                        warn!("the probe workers are gone");
                    }
                }
                Work::Api(j) => {
                    let _ = self.api_jobs.send(j);
                }
                Work::Gc => {
                    let _ = self.gc_jobs.send(());
                }
            }
        }
    }
}

fn run(
    mut owner: Owner,
    rx: &Receiver<Input>,
    dispatch: &Dispatch,
    snapshot: &super::Snapshot,
    stop: &Stop,
    health: &Health,
    cfg: &Config,
) {
    let mut last_round = Instant::now() - cfg.sync_every;
    while !stop.is_stopped() {
        let wait = cfg.sync_every.saturating_sub(last_round.elapsed());
        match rx.recv_timeout(wait) {
            Ok(input) => {
                dispatch.send(owner.take(input, now_ms()));
                while let Ok(input) = rx.try_recv() {
                    dispatch.send(owner.take(input, now_ms()));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if last_round.elapsed() >= MIN_ROUND {
            dispatch.send(owner.round(now_ms()));
            last_round = Instant::now();
            health
                .last_round
                .store(crate::timefmt::now_secs(), Ordering::Relaxed);
        }
        if owner.take_changed() {
            let views = owner.snapshot();
            health
                .probes
                .retain(&views.iter().map(|v| v.uid.as_str()).collect());
            *snapshot.write().unwrap_or_else(|p| p.into_inner()) = views;
        }
    }
}
