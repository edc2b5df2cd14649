//! Entry point: argv -> configuration -> the agent; one top-level error, printed once.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};
use tinylet::config::flags::{self, Command};
use tinylet::config::{self, Settings, Strictness};
use tinylet::fatal::Error;
use tinylet::{info, log, vinfo, warn};

fn main() -> ExitCode {
    match run(std::env::args().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tinylet: {}", e.chain());
            ExitCode::from(e.exit_code())
        }
    }
}

fn hostname() -> std::io::Result<String> {
    nix::unistd::gethostname()
        .map_err(std::io::Error::from)
        .map(|h| h.to_string_lossy().into_owned())
}

fn run(args: impl Iterator<Item = String>) -> Result<(), Error> {
    let flags = flags::parse(args).map_err(Error::Flags)?;
    match flags.command {
        Command::Help => {
            print!("{}", flags::help_text());
            return Ok(());
        }
        Command::Version => {
            println!(
                "tinylet {} (Kubernetes {})",
                env!("CARGO_PKG_VERSION"),
                tinylet::KUBERNETES_VERSION
            );
            return Ok(());
        }
        Command::CheckConfig => return check_config(flags),
        Command::Run => {}
    }
    log::set_verbosity(flags.verbosity.unwrap_or(0));
    for w in &flags.warnings {
        warn!("{w}");
    }
    for (name, value) in &flags.given {
        vinfo!(1, "FLAG: --{name}={value:?}");
    }
    let settings = config::load(flags, Strictness::Lenient, hostname)?;
    log::set_verbosity(settings.kubelet.logging.verbosity);
    // Blocked before any thread starts, so every thread inherits the mask and only the main
    // thread receives the signals (in sigwait).
    let signals = block_signals()?;
    announce(&settings);
    tinylet::node::startup::check_swap(
        settings.kubelet.fail_swap_on,
        &tinylet::node::host::Roots::host(),
    )?;
    match tinylet::node::startup::open_files_limit(settings.kubelet.max_open_files) {
        Ok(n) => vinfo!(2, "open files limit {n}"),
        Err(e) => warn!("maxOpenFiles: {e}"),
    }
    tinylet::node::startup::data_dirs(
        &settings.flags.root_dir,
        std::path::Path::new(&settings.kubelet.pod_logs_dir),
    )?;
    let client_stats = std::sync::Arc::new(tinylet::certs::manager::Stats::default());
    let server_stats = std::sync::Arc::new(tinylet::certs::manager::Stats::default());
    start_certificates(&settings, client_stats.clone(), server_stats.clone())?;
    let pods = tinylet::pods::Snapshot::default();
    let runtime = open_runtime(&settings)?;
    let health = std::sync::Arc::new(tinylet::pods::runner::Health::default());
    {
        let (health, every) = (health.clone(), settings.kubelet.sync_frequency.as_std());
        tinylet::node::startup::watchdog(move || {
            health.check(every, tinylet::timefmt::now_secs()).is_ok()
        })
        .map_err(|e| Error::Thread("watchdog", e))?;
    }
    let k = &settings.kubelet;
    // The node's and the pods' stats, for 10250 and the eviction manager.
    let stats = std::sync::Arc::new(
        tinylet::stats::Collector::new(
            &settings.node_name,
            tinylet::node::host::Roots::host(),
            &settings.flags.root_dir,
            k.cgroup_driver,
            &k.cgroup_root,
        )
        .with_volume_stats(
            std::path::Path::new(&k.pod_logs_dir),
            k.volume_stats_agg_period.as_std(),
        ),
    );
    start_servers(
        &settings,
        vec![("client", client_stats), ("server", server_stats)],
        pods.clone(),
        runtime.clone(),
        health.clone(),
        stats.clone(),
    )?;
    let stop = std::sync::Arc::new(tinylet::stop::Stop::default());
    let node_threads = start_node(&settings, stop.clone(), pods, runtime, health, stats)?;
    info!("running; waiting for SIGTERM or SIGINT");
    wait_for_termination(&signals)?;
    // Heartbeats stop cleanly; containers are left running, as the kubelet leaves them.
    stop.stop();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for t in node_threads {
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    info!("stopped");
    Ok(())
}

/// The container runtime client, the node loop (registration and status), the lease renewer
/// and the event sender. Without a kubeconfig (standalone) only the runtime is opened.
/// The container runtime client (nothing is dialled until the first call).
fn open_runtime(s: &Settings) -> Result<std::sync::Arc<tinylet::cri::Runtime>, Error> {
    let k = &s.kubelet;
    let image = match k.image_service_endpoint.as_str() {
        "" => None,
        e => Some(
            tinylet::config::kubelet::RuntimeEndpoint::parse(e).map_err(Error::ImageEndpoint)?,
        ),
    };
    let runtime = tinylet::cri::Runtime::new(
        &k.container_runtime_endpoint,
        image.as_ref(),
        tinylet::cri::Options::new(k.runtime_request_timeout.as_std()),
    )
    .map_err(Error::Runtime)?;
    info!("container runtime endpoint {}", runtime.endpoint());
    Ok(std::sync::Arc::new(runtime))
}

fn start_node(
    s: &Settings,
    stop: std::sync::Arc<tinylet::stop::Stop>,
    pods: tinylet::pods::Snapshot,
    runtime: std::sync::Arc<tinylet::cri::Runtime>,
    health: std::sync::Arc<tinylet::pods::runner::Health>,
    stats: std::sync::Arc<tinylet::stats::Collector>,
) -> Result<Vec<std::thread::JoinHandle<()>>, Error> {
    use std::sync::Arc;
    use tinylet::node::agent;
    let cfg = Arc::new(agent::Config::from_settings(s));
    let client = Arc::new(tinylet::kube::Lazy::new(
        s.flags.kubeconfig.clone(),
        s.kubelet.kube_api_qps,
        s.kubelet.kube_api_burst,
    ));
    if s.flags.kubeconfig.is_none() {
        notify_ready();
        // Standalone: static pods only.
        return start_pods(s, &cfg, client, None, runtime, pods, stop, health, stats);
    }
    let uid = Arc::new(std::sync::Mutex::new(String::new()));
    let (recorder, sender) = tinylet::events::recorder(
        &cfg.spec.name,
        cfg.event_qps,
        cfg.event_burst,
        client.clone(),
        stop.clone(),
    );
    let mut threads = vec![spawn("events", move || sender.run())?];
    {
        let (cfg, client, uid, stop) = (cfg.clone(), client.clone(), uid.clone(), stop.clone());
        threads.push(spawn("lease", move || {
            agent::run_lease(&cfg, &client, &uid, &stop)
        })?);
    }
    threads.extend(start_pods(
        s,
        &cfg,
        client.clone(),
        Some(recorder.clone()),
        runtime.clone(),
        pods,
        stop.clone(),
        health,
        stats,
    )?);
    threads.push(spawn("node", move || {
        agent::run(
            &cfg,
            &client,
            Some(&runtime),
            &recorder,
            &stop,
            &uid,
            notify_ready,
        )
    })?);
    Ok(threads)
}

/// The pod owner and its sources: the API server's pods bound to this node (with a kubeconfig)
/// and the static pods of `staticPodPath` (when set).
#[allow(clippy::too_many_arguments)]
fn start_pods(
    s: &Settings,
    cfg: &tinylet::node::agent::Config,
    client: std::sync::Arc<tinylet::kube::Lazy>,
    recorder: Option<tinylet::events::Recorder>,
    runtime: std::sync::Arc<tinylet::cri::Runtime>,
    snapshot: tinylet::pods::Snapshot,
    stop: std::sync::Arc<tinylet::stop::Stop>,
    health: std::sync::Arc<tinylet::pods::runner::Health>,
    stats: std::sync::Arc<tinylet::stats::Collector>,
) -> Result<Vec<std::thread::JoinHandle<()>>, Error> {
    let k = &s.kubelet;
    let api_source = s.flags.kubeconfig.is_some();
    let static_path = (!k.static_pod_path.is_empty()).then(|| k.static_pod_path.clone());
    if !api_source && static_path.is_none() {
        return Ok(vec![]);
    }
    // The services for containers' environment: the checkpoint of the last run until the API
    // server has been read (pods restored offline get the same variables).
    let services: tinylet::pods::services::Services = std::sync::Arc::new(std::sync::RwLock::new(
        tinylet::pods::services::load(&s.flags.root_dir),
    ));
    let pods_cfg = tinylet::pods::config::Config::from_settings(s, cfg);
    let qos = tinylet::pods::qos_cgroups::Deps {
        cgroups: tinylet::pods::cgroups::Cgroups::new(&pods_cfg.cgroup_mount),
        driver: pods_cfg.cgroup_driver,
        cgroup_root: pods_cfg.cgroup_root.clone(),
        node: pods_cfg.kubepods,
        pods: snapshot.clone(),
        stop: stop.clone(),
    };
    let pods = tinylet::pods::runner::start(
        pods_cfg,
        client.clone(),
        runtime.clone(),
        snapshot.clone(),
        recorder.clone(),
        services.clone(),
        stop.clone(),
        health.clone(),
    )
    .map_err(|e| Error::Thread("pods", e))?;
    let mut threads = vec![pods.thread];
    threads.push(spawn("qos-cgroups", move || {
        tinylet::pods::qos_cgroups::run(&qos)
    })?);
    let eviction = tinylet::eviction::run::Deps {
        cfg: tinylet::eviction::Config::from_kubelet(k),
        stats,
        runtime,
        pods: snapshot,
        inbox: pods.inbox.clone(),
        events: recorder,
        health,
        image_min_age: k.image_minimum_gc_age.as_std(),
        stop: stop.clone(),
    };
    threads.push(spawn("eviction", move || {
        tinylet::eviction::run::run(&eviction)
    })?);
    if api_source {
        let (source_client, source_stop, inbox, node) = (
            client.clone(),
            stop.clone(),
            pods.inbox.clone(),
            s.node_name.clone(),
        );
        threads.push(spawn("pod-source", move || {
            tinylet::pods::source::run(&source_client, &node, &inbox, &source_stop)
        })?);
        let (client, stop, root) = (client.clone(), stop.clone(), s.flags.root_dir.clone());
        threads.push(spawn("services", move || {
            tinylet::pods::services::run(&client, &services, &root, &stop)
        })?);
    }
    if let Some(path) = static_path {
        let (stop, inbox, node) = (stop.clone(), pods.inbox.clone(), s.node_name.clone());
        let every = k.file_check_frequency.as_std();
        info!("static pods from {path} (read every {every:?})");
        threads.push(spawn("static-pods", move || {
            tinylet::pods::files::run(std::path::Path::new(&path), &node, every, &inbox, &stop)
        })?);
    }
    Ok(threads)
}

fn spawn(
    name: &'static str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::Thread(name, e))
}

/// systemd `Type=notify`: READY=1 once the node is registered (or at once when standalone).
fn notify_ready() {
    match tinylet::node::startup::sd_notify("READY=1") {
        Ok(true) => vinfo!(2, "notified systemd: READY=1"),
        Ok(false) => {}
        Err(e) => warn!("sd_notify READY=1: {e}"),
    }
}

/// `tinylet check-config`: strict load, effective YAML on stdout, warnings on stderr.
fn check_config(flags: flags::Flags) -> Result<(), Error> {
    for w in &flags.warnings {
        eprintln!("warning: {w}");
    }
    let settings = config::load(flags, Strictness::Strict, hostname)?;
    print!(
        "{}{}",
        settings.summary_comment(),
        config::effective_yaml(&settings.kubelet)
    );
    Ok(())
}

fn announce(s: &Settings) {
    for u in &s.unknown_fields {
        warn!(
            "{u}; ignored (the kubelet's lenient decoding ignores it too; `tinylet check-config` reports it as an error)"
        );
    }
    info!(
        "tinylet {} (Kubernetes {}) starting for node {:?}",
        env!("CARGO_PKG_VERSION"),
        tinylet::KUBERNETES_VERSION,
        s.node_name
    );
    if let Some(f) = &s.config_file {
        info!("loaded config {}", f.display());
    }
    let ni = s.not_implemented();
    if !ni.is_empty() {
        info!("accepted but not implemented: {}", ni.join(", "));
    }
    match &s.api_server {
        Some(a) => info!("api server {} (from {})", a.server, a.file.display()),
        None => info!("no kubeconfig given: standalone mode"),
    }
}

/// The certificate thread (`certs::keeper`), when there is a kubeconfig.
fn start_certificates(
    s: &Settings,
    client_stats: std::sync::Arc<tinylet::certs::manager::Stats>,
    server_stats: std::sync::Arc<tinylet::certs::manager::Stats>,
) -> Result<(), Error> {
    let Some(kubeconfig) = s.flags.kubeconfig.clone() else {
        return Ok(());
    };
    let serving = s.kubelet.server_tls_bootstrap.then(|| {
        let ips = tinylet::node::node_ips(
            &s.flags.node_ip,
            s.kubelet.address,
            std::path::Path::new("/proc"),
        );
        tinylet::certs::bootstrap::Template::serving(&s.node_name, &s.node_name, &ips)
    });
    let keeper = tinylet::certs::keeper::Keeper {
        node: s.node_name.clone(),
        cert_dir: s.flags.cert_dir.clone(),
        kubeconfig,
        bootstrap_kubeconfig: s.flags.bootstrap_kubeconfig.clone(),
        bootstrap_now: s.bootstrapping.then(|| s.api_server.clone()).flatten(),
        qps: s.kubelet.kube_api_qps,
        burst: s.kubelet.kube_api_burst,
        rotate: s.kubelet.rotate_certificates,
        serving,
        client_stats,
        server_stats,
    };
    spawn("certificates", move || keeper.run()).map(drop)
}

/// The 10250 API (when a serving certificate source is configured) and the plain-HTTP healthz
/// endpoint, each on its own threads. A port that cannot be bound is fatal, as for the kubelet.
fn start_servers(
    s: &Settings,
    certificates: Vec<(&'static str, std::sync::Arc<tinylet::certs::manager::Stats>)>,
    pods: tinylet::pods::Snapshot,
    runtime: std::sync::Arc<tinylet::cri::Runtime>,
    health: std::sync::Arc<tinylet::pods::runner::Health>,
    stats: std::sync::Arc<tinylet::stats::Collector>,
) -> Result<(), Error> {
    use tinylet::server;
    let k = &s.kubelet;
    let sync_frequency = k.sync_frequency.as_std();
    let probes = health.clone();
    let syncloop: server::healthz::SyncLoopCheck =
        std::sync::Arc::new(move || health.check(sync_frequency, tinylet::timefmt::now_secs()));
    if k.healthz_port != 0 {
        server::healthz::start(
            std::net::SocketAddr::new(k.healthz_bind_address, k.healthz_port),
            syncloop.clone(),
        );
    }
    if !k.enable_server {
        return Ok(());
    }
    let certs = tinylet::certs::serving::ServingCerts::new(
        &s.flags.cert_dir,
        k.server_tls_bootstrap,
        &k.tls_cert_file,
        &k.tls_private_key_file,
        &s.node_name,
    )
    .map_err(Error::Certs)?;
    let suites: Vec<String> = k
        .tls_cipher_suites
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    let tls = server::tls_config(
        std::sync::Arc::new(certs),
        &k.authentication.x509.client_ca_file,
        k.tls_min_version,
        &suites,
    )
    .map_err(Error::Server)?;
    let addr = std::net::SocketAddr::new(k.address, k.port);
    let l = std::net::TcpListener::bind(addr)
        .map_err(|err| Error::Server(server::ServerError::Listen { addr, err }))?;
    let state = std::sync::Arc::new(server::State {
        auth: server::auth::Auth::new(&s.node_name, k, s.flags.kubeconfig.clone()),
        config_json: serde_json::to_value(k).unwrap_or_default(),
        debugging_handlers: k.enable_debugging_handlers,
        metrics: server::metrics::Metrics::new(certificates),
        pods,
        pod_logs_dir: k.pod_logs_dir.clone().into(),
        node_log_dir: "/var/log".into(),
        system_log_handler: k.enable_system_log_handler,
        log_query: k.enable_system_log_query.then(|| {
            std::sync::Arc::new(server::journal::Journalctl::default())
                as std::sync::Arc<dyn server::journal::Journal>
        }),
        runtime: Some(runtime),
        stats: Some(stats),
        probes: Some(probes),
        syncloop,
    });
    {
        // CPU rates come from two samples: one every 10 s, as cAdvisor's housekeeping, so a
        // scrape always has a rate (usageNanoCores) to give; skipped when the eviction
        // manager's summary (every 10 s too) or a scrape has just read the cgroups.
        let state = state.clone();
        let period = std::time::Duration::from_secs(10);
        std::thread::Builder::new()
            .name("stats-sampler".into())
            .spawn(move || {
                loop {
                    if let Some(st) = &state.stats {
                        let pods = tinylet::stats::sources(&state.pods);
                        st.sample(&pods, std::time::SystemTime::now(), period);
                    }
                    std::thread::sleep(period);
                }
            })
            .map_err(|e| Error::Thread("stats-sampler", e))?;
    }
    std::thread::spawn(move || server::serve(l, tls, state));
    info!("kubelet API on https://{addr}");
    Ok(())
}

fn block_signals() -> Result<SigSet, Error> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().map_err(Error::Signals)?;
    Ok(set)
}

fn wait_for_termination(set: &SigSet) -> Result<(), Error> {
    let sig = set.wait().map_err(Error::Signals)?;
    info!("received {sig:?}, exiting");
    Ok(())
}
