//! The certificate manager: keeps one certificate (client or serving) valid and matching its
//! template, renewing at NotBefore + uniform(70%..90%) of its lifetime (with rotation; else only
//! once it has expired) through the CSR API with the current client certificate, with the
//! kubelet's backoff, and exposes its state for metrics. A client certificate that has expired
//! (an edge box offline for longer than its life) cannot authenticate its own renewal: it is
//! bootstrapped again with the bootstrap kubeconfig, in-process, where the kubelet exits for
//! systemd to restart it into the bootstrap.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::bootstrap::{Template, obtain};
use super::{CertInfo, CertStore};
use crate::config::kubeconfig::Kubeconfig;
use crate::kube::Client;

/// What /metrics will report about a managed certificate.
#[derive(Debug, Default)]
pub struct Stats {
    /// NotAfter of the current certificate (unix seconds), 0 when there is none.
    pub expiry_unix: AtomicI64,
    pub rotations: AtomicU64,
    pub errors: AtomicU64,
}

/// When to renew: NotBefore + `fraction` of the lifetime, `fraction` in [0.7, 0.9).
pub fn rotation_deadline(info: &CertInfo, fraction: f64) -> SystemTime {
    let life = info
        .not_after
        .duration_since(info.not_before)
        .unwrap_or_default();
    info.not_before + life.mul_f64(fraction.clamp(0.7, 0.9))
}

/// A uniform fraction in [0.7, 0.9), from the system's CSPRNG.
fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let r = ring::rand::SystemRandom::new().fill(&mut b);
    let u = if r.is_ok() {
        f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
    } else {
        0.5
    };
    0.7 + 0.2 * u.min(0.999_999)
}

/// Retry delays after failed attempts: 2 s doubling for 5 steps, then every 32 s (client-go's
/// certificate manager).
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        Duration::ZERO
    } else if failures <= 5 {
        Duration::from_secs(2u64 << (failures - 1))
    } else {
        Duration::from_secs(32)
    }
}

/// Wakes managers waiting out a back-off when another certificate changed (the serving
/// manager retries at once once the client certificate it renews with is new again).
#[derive(Default)]
pub struct Kick {
    generation: std::sync::Mutex<u64>,
    cv: std::sync::Condvar,
}

impl Kick {
    pub fn kick(&self) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.cv.notify_all();
    }

    fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps up to `d` or until kicked after `seen`; true when kicked.
    fn wait(&self, seen: u64, d: Duration) -> bool {
        let g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, d, |g| *g == seen)
            .unwrap_or_else(|p| p.into_inner());
        *g != seen
    }
}

pub struct Manager {
    pub template: Template,
    pub cert_dir: PathBuf,
    /// The kubeconfig whose client certificate authenticates renewals (the kubelet's own).
    pub kubeconfig: PathBuf,
    /// `--bootstrap-kubeconfig`: for the client certificate, how to start over once it has
    /// expired.
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// Renew ahead of expiry (`rotateCertificates`, and always for the serving certificate);
    /// else only an expired or mismatching certificate is replaced.
    pub rotate: bool,
    pub qps: i32,
    pub burst: i32,
    pub approval_timeout: Duration,
    pub stats: Arc<Stats>,
    /// Kicked after each renewal; waited on during back-off.
    pub kick: Arc<Kick>,
}

impl Manager {
    fn store(&self) -> CertStore {
        CertStore::new(&self.cert_dir, self.template.prefix)
    }

    /// When the next renewal is due: now if there is no usable certificate, or it expired, or it
    /// no longer matches the template; else the jittered deadline.
    pub fn next_deadline(&self, now: SystemTime, fraction: f64) -> (SystemTime, &'static str) {
        match self.store().current() {
            Ok(Some(info)) => {
                self.stats.expiry_unix.store(
                    info.not_after
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0),
                    Ordering::Relaxed,
                );
                if !info.valid_at(now) {
                    (now, "the current certificate is expired or not yet valid")
                } else if !self.template.matches(&info) {
                    (
                        now,
                        "the current certificate no longer matches the template (CN, O or SANs)",
                    )
                } else if self.rotate {
                    (rotation_deadline(&info, fraction), "the rotation deadline")
                } else {
                    (info.not_after, "the certificate expires")
                }
            }
            Ok(None) => (now, "there is no certificate yet"),
            Err(_) => (now, "the current certificate cannot be read"),
        }
    }

    /// One renewal: a client from the kubelet's kubeconfig (read now, so a rotated client
    /// certificate is used), a CSR, the wait, the atomic swap.
    pub fn renew(&self) -> Result<PathBuf, String> {
        if let Some(b) = self
            .bootstrap_kubeconfig
            .as_ref()
            .filter(|_| self.template.signer == super::bootstrap::CLIENT_SIGNER)
            .filter(|_| !super::bootstrap::kubeconfig_usable(&self.kubeconfig))
        {
            crate::info!(
                "{}: the client certificate of {} is expired or unusable: bootstrapping again with {}",
                self.template.prefix,
                self.kubeconfig.display(),
                b.display()
            );
            let api = Kubeconfig::load(b)
                .and_then(|k| k.resolve(b))
                .map_err(|e| e.to_string())?;
            let node = self
                .template
                .common_name
                .strip_prefix("system:node:")
                .unwrap_or(&self.template.common_name);
            return super::bootstrap::Bootstrap {
                node_name: node,
                cert_dir: &self.cert_dir,
                kubeconfig: &self.kubeconfig,
                bootstrap: &api,
                qps: self.qps,
                burst: self.burst,
                approval_timeout: self.approval_timeout,
            }
            .run()
            .map_err(|e| e.to_string());
        }
        let api = Kubeconfig::load(&self.kubeconfig)
            .and_then(|k| k.resolve(&self.kubeconfig))
            .map_err(|e| e.to_string())?;
        let client = Client::new(&api, self.qps, self.burst).map_err(|e| e.to_string())?;
        obtain(
            &client,
            &self.template,
            &self.cert_dir,
            self.approval_timeout,
        )
        .map_err(|e| e.to_string())
    }

    /// Runs forever: sleep until the deadline, renew, back off on failure.
    pub fn run(self) {
        let mut failures = 0;
        let mut fraction = jitter();
        loop {
            let now = SystemTime::now();
            let (deadline, why) = self.next_deadline(now, fraction);
            let wait = deadline
                .duration_since(now)
                .unwrap_or_default()
                .max(backoff(failures));
            if !wait.is_zero() {
                crate::vinfo!(
                    2,
                    "{}: next rotation in {}s ({why})",
                    self.template.prefix,
                    wait.as_secs()
                );
                let seen = self.kick.generation();
                let kicked = self.kick.wait(seen, wait);
                // Kicked out of a back-off: try again now (what failed may work now).
                if (failures == 0 || !kicked) && SystemTime::now() < deadline {
                    continue;
                }
            }
            crate::info!("{}: rotating the certificate ({why})", self.template.prefix);
            match self.renew() {
                Ok(file) => {
                    failures = 0;
                    fraction = jitter();
                    self.stats.rotations.fetch_add(1, Ordering::Relaxed);
                    self.kick.kick();
                    crate::info!(
                        "{}: certificate rotated: {}",
                        self.template.prefix,
                        file.display()
                    );
                }
                Err(e) => {
                    failures += 1;
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    crate::error!(
                        "Failed while requesting a signed certificate from the master: {e}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(start: u64, life: u64) -> CertInfo {
        CertInfo {
            common_name: "system:node:n1".into(),
            organizations: vec!["system:nodes".into()],
            not_before: UNIX_EPOCH + Duration::from_secs(start),
            not_after: UNIX_EPOCH + Duration::from_secs(start + life),
            dns_names: vec![],
            ips: vec![],
        }
    }

    #[test]
    fn deadline_is_70_to_90_percent_of_the_lifetime() {
        let c = info(1000, 1000);
        assert_eq!(
            rotation_deadline(&c, 0.7),
            UNIX_EPOCH + Duration::from_secs(1700)
        );
        assert_eq!(
            rotation_deadline(&c, 0.9),
            UNIX_EPOCH + Duration::from_secs(1900)
        );
        assert_eq!(
            rotation_deadline(&c, 0.1),
            UNIX_EPOCH + Duration::from_secs(1700)
        );
        for _ in 0..100 {
            let j = jitter();
            assert!((0.7..0.9).contains(&j), "{j}");
        }
    }

    #[test]
    fn backoff_steps() {
        let b: Vec<u64> = (0..8).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(b, [0, 2, 4, 8, 16, 32, 32, 32]);
    }

    #[test]
    fn templates_match_sans_after_an_ip_change() {
        let ip = |s: &str| {
            s.parse::<std::net::IpAddr>()
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
        };
        let t = Template::serving(
            "n1",
            "n1",
            &[ip("10.0.0.6"), ip("10.0.0.5"), ip("10.0.0.5")],
        );
        assert_eq!(t.ips, [ip("10.0.0.5"), ip("10.0.0.6")]);
        let mut c = info(0, 10);
        c.dns_names = vec!["n1".into()];
        c.ips = vec![ip("10.0.0.6"), ip("10.0.0.5")];
        assert!(t.matches(&c));
        c.ips = vec![ip("10.0.0.5")];
        assert!(!t.matches(&c));
        assert!(
            !Template::client("n1").matches(&c),
            "a client template wants no SANs"
        );
        let by_ip = Template::serving("n1", "10.0.0.9", &[]);
        assert!(by_ip.dns_names.is_empty() && by_ip.ips == [ip("10.0.0.9")]);
    }
}
