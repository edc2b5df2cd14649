//! Entry point: argv -> configuration -> the agent; one top-level error, printed once.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};
use tinylet::config::flags::{self, Command};
use tinylet::config::{self, Settings, Strictness};
use tinylet::error::Error;
use tinylet::{error, info, log, vinfo, warn};

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
    if settings.bootstrapping {
        start_bootstrap(&settings);
    }
    info!(
        "running; node registration, pods and the 10250 server are not implemented yet; waiting for SIGTERM or SIGINT"
    );
    wait_for_termination(&signals)
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

/// Runs the client-certificate bootstrap on its own thread, retrying with backoff (2 s doubling to
/// 32 s) and logging one line per failure, as the kubelet's certificate manager does.
fn start_bootstrap(s: &Settings) {
    let (Some(api), Some(kubeconfig)) = (s.api_server.clone(), s.flags.kubeconfig.clone()) else {
        return;
    };
    let node = s.node_name.clone();
    let cert_dir = s.flags.cert_dir.clone();
    let (qps, burst) = (s.kubelet.kube_api_qps, s.kubelet.kube_api_burst);
    std::thread::spawn(move || {
        let b = tinylet::certs::bootstrap::Bootstrap {
            node_name: &node,
            cert_dir: &cert_dir,
            kubeconfig: &kubeconfig,
            bootstrap: &api,
            qps,
            burst,
            approval_timeout: std::time::Duration::from_secs(3600),
        };
        let mut delay = std::time::Duration::from_secs(2);
        loop {
            info!("Rotating certificates");
            match b.run() {
                Ok(file) => {
                    info!(
                        "bootstrap done: client certificate {}, kubeconfig {}",
                        file.display(),
                        kubeconfig.display()
                    );
                    return;
                }
                Err(e) => {
                    error!("Failed while requesting a signed certificate from the master: {e}");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(std::time::Duration::from_secs(32));
                }
            }
        }
    });
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
