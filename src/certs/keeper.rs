//! The certificate thread: the client certificate's bootstrap when `--kubeconfig` is not usable
//! (retried with back-off, one log line per failure, as the kubelet's certificate manager),
//! then the managers that keep the client certificate (rotated with `rotateCertificates`; in
//! any case bootstrapped again once it has expired) and the serving certificate
//! (`serverTLSBootstrap`) valid. The serving manager is woken when the client certificate it
//! renews with changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::bootstrap::{Bootstrap, Template};
use super::manager::{Kick, Manager, Stats, backoff};
use crate::config::kubeconfig::ApiServer;

pub struct Keeper {
    pub node: String,
    pub cert_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// The bootstrap kubeconfig, resolved, when the bootstrap must run first.
    pub bootstrap_now: Option<ApiServer>,
    pub qps: i32,
    pub burst: i32,
    pub rotate: bool,
    /// The serving certificate's template, with `serverTLSBootstrap`.
    pub serving: Option<Template>,
    pub client_stats: Arc<Stats>,
    pub server_stats: Arc<Stats>,
}

/// How long a CSR may wait for approval before it is sent again (the kubelet: an hour).
const APPROVAL: Duration = Duration::from_secs(3600);

impl Keeper {
    fn manager(
        &self,
        template: Template,
        stats: Arc<Stats>,
        rotate: bool,
        kick: &Arc<Kick>,
    ) -> Manager {
        Manager {
            template,
            cert_dir: self.cert_dir.clone(),
            kubeconfig: self.kubeconfig.clone(),
            bootstrap_kubeconfig: self.bootstrap_kubeconfig.clone(),
            rotate,
            qps: self.qps,
            burst: self.burst,
            approval_timeout: APPROVAL,
            stats,
            kick: kick.clone(),
        }
    }

    /// Bootstraps when needed, then keeps both certificates; runs until the process ends.
    pub fn run(self) {
        if let Some(api) = &self.bootstrap_now {
            let b = Bootstrap {
                node_name: &self.node,
                cert_dir: &self.cert_dir,
                kubeconfig: &self.kubeconfig,
                bootstrap: api,
                qps: self.qps,
                burst: self.burst,
                approval_timeout: APPROVAL,
            };
            let mut failures = 0;
            loop {
                crate::info!("Rotating certificates");
                match b.run() {
                    Ok(file) => {
                        crate::info!(
                            "bootstrap done: client certificate {}, kubeconfig {}",
                            file.display(),
                            self.kubeconfig.display()
                        );
                        break;
                    }
                    Err(e) => {
                        crate::error!(
                            "Failed while requesting a signed certificate from the master: {e}"
                        );
                        failures += 1;
                        std::thread::sleep(backoff(failures));
                    }
                }
            }
        }
        let kick = Arc::new(Kick::default());
        if let Some(t) = self.serving.clone() {
            let m = self.manager(t, self.server_stats.clone(), true, &kick);
            let spawned = std::thread::Builder::new()
                .name("serving-cert".into())
                .spawn(move || m.run());
            if let Err(e) = spawned {
                crate::error!("starting the serving certificate manager: {e}");
            }
        }
        // With rotation off the client certificate is still replaced once it has expired
        // (bootstrapped again), so a box offline past its life comes back by itself.
        self.manager(
            Template::client(&self.node),
            self.client_stats.clone(),
            self.rotate,
            &kick,
        )
        .run();
    }
}
