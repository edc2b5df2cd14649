//! Clients of the 10250 API for the tests: curl as the seed guide runs it, raw bytes over TLS
//! with `openssl s_client`, and a seed-style node serving 10250 (kube-sim signs its serving
//! certificate; webhook authn/authz; the client CA).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{Agent, Seed, run, text, write};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// curl as the seed guide runs it; returns (HTTP code, body).
pub fn curl(port: u16, path: &str, ca: &Path, extra: &[String]) -> (String, String) {
    curl_at("127.0.0.1", port, path, ca, extra)
}

/// [`curl`] to `host`.
pub fn curl_at(host: &str, port: u16, path: &str, ca: &Path, extra: &[String]) -> (String, String) {
    let out = run(Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(format!("https://{host}:{port}{path}")));
    let all = text(&out.stdout);
    let (body, code) = all.rsplit_once('\n').unwrap_or_else(|| {
        panic!(
            "curl {path} {extra:?}: {:?} {}",
            out.status,
            text(&out.stderr)
        )
    });
    (code.to_string(), body.to_string())
}

/// An `openssl s_client` session to send raw bytes over TLS (with a client cert and key
/// when given).
pub fn openssl_client(port: u16, ca: &Path, cert: Option<(&Path, &Path)>) -> Child {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-quiet",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-CAfile",
    ])
    .arg(ca);
    if let Some((c, k)) = cert {
        cmd.arg("-cert").arg(c).arg("-key").arg(k);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Writes `b` to an s_client session and closes its input.
pub fn send_and_close(c: &mut Child, b: &[u8]) {
    if let Some(i) = c.stdin.as_mut() {
        i.write_all(b).unwrap_or_else(|e| panic!("{e}"));
    }
    drop(c.stdin.take());
}

/// Everything the server sent on an s_client session, then the session is ended.
pub fn read_all(c: &mut Child) -> String {
    let mut s = String::new();
    if let Some(o) = c.stdout.as_mut() {
        let _ = o.read_to_string(&mut s);
    }
    let _ = c.kill();
    let _ = c.wait();
    s
}

/// `--cert`/`--key` arguments for curl for the sim's client certificate `name`.
/// A certificate and key pair of the control plane in `dir` by kube-sim's name (`admin`,
/// `kube-controller-manager`, `apiserver`, ...): kube-sim keeps them in `dir`, the real one
/// (`scripts/upstream up`) in `dir/pki`, the apiserver's as `kubernetes`.
pub fn pem_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let pki = dir.join("pki");
    let (base, name) = if pki.is_dir() {
        (
            pki,
            if name == "apiserver" {
                "kubernetes"
            } else {
                name
            },
        )
    } else {
        (dir.to_path_buf(), name)
    };
    (
        base.join(format!("{name}.pem")),
        base.join(format!("{name}-key.pem")),
    )
}

pub fn cert_args(sim: &Path, name: &str) -> Vec<String> {
    let (cert, key) = pem_pair(sim, name);
    vec![
        "--cert".to_string(),
        cert.display().to_string(),
        "--key".to_string(),
        key.display().to_string(),
    ]
}

pub fn bearer(token: &str) -> Vec<String> {
    vec!["-H".to_string(), format!("Authorization: Bearer {token}")]
}

/// A seed-style node serving 10250 on a free port (and healthz on another): the sim's CA as
/// clientCAFile, webhook authn (cache 1 s) and authz, a serving certificate from a CSR the
/// sim approves.
pub struct ServingNode {
    pub seed: Seed,
    pub agent: Agent,
    pub port: u16,
    pub healthz_port: u16,
    pub ca: PathBuf,
}

impl ServingNode {
    pub fn start(tmp: &Path, extra_config: &str) -> ServingNode {
        let seed = Seed::start(tmp, &["--approve-serving-csrs"]);
        seed.bind_bootstrappers();
        seed.apply_csr_crb();
        let (port, healthz_port) = (free_port(), free_port());
        let ca = seed.sim_dir.join("ca.pem");
        let cfg = seed.node.join("kubelet-config.yaml");
        write(
            &cfg,
            &format!(
                "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\naddress: 127.0.0.1\nport: {port}\nhealthzPort: {healthz_port}\nhealthzBindAddress: 127.0.0.1\nserverTLSBootstrap: true\n\
                 authentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: true\n    cacheTTL: 1s\n  x509:\n    clientCAFile: {}\n\
                 authorization:\n  mode: Webhook\n  webhook:\n    cacheAuthorizedTTL: 1s\n    cacheUnauthorizedTTL: 1s\n{extra_config}",
                ca.display()
            ),
        );
        let mut agent = Agent::start(&seed.agent_args(
            "n1",
            &[
                format!("--config={}", cfg.display()),
                "--node-ip=127.0.0.1".into(),
            ],
        ));
        agent.expect("kubelet-server: certificate rotated");
        ServingNode {
            seed,
            agent,
            port,
            healthz_port,
            ca,
        }
    }

    /// A ServiceAccount token bound to system:kubelet-api-admin, as in the guide.
    pub fn api_admin_token(&self, name: &str) -> String {
        self.seed.kubectl(&["create", "sa", name]);
        self.seed.kubectl(&[
            "create",
            "clusterrolebinding",
            name,
            "--clusterrole=system:kubelet-api-admin",
            &format!("--serviceaccount=default:{name}"),
        ]);
        self.seed
            .kubectl(&["create", "token", name])
            .trim()
            .to_string()
    }

    pub fn curl(&self, path: &str, extra: &[String]) -> (String, String) {
        curl(self.port, path, &self.ca, extra)
    }

    pub fn admin(&self) -> Vec<String> {
        cert_args(&self.seed.sim_dir, "admin")
    }
}
