//! Probes: running one (exec through CRI ExecSync, tcpSocket and httpGet from the node to the
//! pod IP) and the pure bookkeeping of its results (initial delay, period, success and failure
//! thresholds), as the kubelet's prober.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use super::seams::Cri;
use super::spec::{ContainerPort, Handler, Probe};
use crate::cri::api::ExecSyncRequest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port(v: &Value, ports: &[ContainerPort]) -> Result<u16, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid port {n}")),
        Value::String(name) => match name.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => ports
                .iter()
                .find(|p| &p.name == name)
                .map(|p| p.container_port)
                .ok_or_else(|| format!("no container port named {name:?}")),
        },
        other => Err(format!("invalid port {other}")),
    }
}

fn addr(host: &str, pod_ip: &str, port: u16) -> Result<SocketAddr, String> {
    let host = if host.is_empty() { pod_ip } else { host };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port}: no address"))
}

/// Runs a probe's or hook's handler once against a container, bounded by `timeout`.
pub fn run(
    handler: &Handler,
    timeout: Duration,
    rt: &dyn Cri,
    container_id: &str,
    pod_ip: &str,
    ports: &[ContainerPort],
) -> Outcome {
    let timeout = timeout.max(Duration::from_secs(1));
    if let Some(e) = &handler.exec {
        return match rt.exec_sync(&ExecSyncRequest {
            container_id: container_id.into(),
            cmd: e.command.clone(),
            timeout: timeout.as_secs().min(i64::MAX as u64) as i64,
        }) {
            Ok(r) if r.exit_code == 0 => Outcome::Success,
            // The kubelet's exec prober reports the command's output (empty when silent).
            Ok(r) => Outcome::Failure(
                String::from_utf8_lossy(&r.stdout).into_owned()
                    + &String::from_utf8_lossy(&r.stderr),
            ),
            Err(err) => Outcome::Failure(err.to_string()),
        };
    }
    if let Some(t) = &handler.tcp_socket {
        let a = match port(&t.port, ports).and_then(|p| addr(&t.host, pod_ip, p)) {
            Ok(a) => a,
            Err(e) => return Outcome::Failure(e),
        };
        return match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => Outcome::Success,
            Err(e) => Outcome::Failure(format!("dial tcp {a}: {e}")),
        };
    }
    if let Some(h) = &handler.http_get {
        let a = match port(&h.port, ports).and_then(|p| addr(&h.host, pod_ip, p)) {
            Ok(a) => a,
            Err(e) => return Outcome::Failure(e),
        };
        let path = if h.path.is_empty() { "/" } else { &h.path };
        let tls = h.scheme.eq_ignore_ascii_case("https");
        let scheme = if tls { "https" } else { "http" };
        return match http_get(a, path, tls, timeout) {
            Ok(code) if (200..400).contains(&code) => Outcome::Success,
            Ok(code) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
            Err(e) => Outcome::Failure(format!("Get \"{scheme}://{a}{path}\": {e}")),
        };
    }
    if let Some(g) = &handler.grpc {
        let a = match addr("", pod_ip, g.port) {
            Ok(a) => a,
            Err(e) => return Outcome::Failure(e),
        };
        return match grpc_check(a, &g.service, timeout) {
            Ok(()) => Outcome::Success,
            Err(why) => Outcome::Failure(why),
        };
    }
    Outcome::Failure("the probe has no handler (exec, httpGet, tcpSocket or grpc)".into())
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// grpc.health.v1 serving statuses.
fn serving_status_name(s: i32) -> &'static str {
    match s {
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// The kubelet's gRPC prober: `grpc.health.v1.Health/Check` over plain-text HTTP/2 to `a`,
/// healthy when it answers SERVING; the failure texts are the kubelet's.
pub fn grpc_check(a: SocketAddr, service: &str, timeout: Duration) -> Result<(), String> {
    use crate::cri::grpc::{self, Code, Decoder};
    use prost::Message;
    const LIMIT: usize = 1 << 20;
    let call = async {
        let sock = smol::Async::<TcpStream>::connect(a)
            .await
            .map_err(|e| format!("error: failed to connect service at \"{a}\": {e}"))?;
        let (send, conn) = h2::client::handshake(crate::cri::conn::Io::new(sock))
            .await
            .map_err(|e| format!("error: failed to connect service at \"{a}\": {e}"))?;
        let rpc_err = |e: &dyn std::fmt::Display| format!("error: health rpc probe failed: {e}");
        let rpc = async move {
            let mut send = send.ready().await.map_err(|e| rpc_err(&e))?;
            let req = http::Request::builder()
                .method(http::Method::POST)
                .uri(format!("http://{a}/grpc.health.v1.Health/Check"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("user-agent", "kube-probe/1.32")
                .body(())
                .map_err(|e| rpc_err(&e))?;
            let (resp, mut stream) = send.send_request(req, false).map_err(|e| rpc_err(&e))?;
            let msg = HealthCheckRequest {
                service: service.to_string(),
            }
            .encode_to_vec();
            let body = grpc::frame(&msg, LIMIT).map_err(|e| rpc_err(&e))?;
            stream
                .send_data(bytes::Bytes::from(body), true)
                .map_err(|e| rpc_err(&e))?;
            let (parts, mut recv) = resp.await.map_err(|e| rpc_err(&e))?.into_parts();
            let mut dec = Decoder::new(LIMIT);
            while let Some(chunk) = recv.data().await {
                let chunk = chunk.map_err(|e| rpc_err(&e))?;
                dec.push(&chunk).map_err(|e| rpc_err(&e))?;
                let _ = recv.flow_control().release_capacity(chunk.len());
            }
            let trailers = recv.trailers().await.map_err(|e| rpc_err(&e))?;
            let h = trailers.as_ref().unwrap_or(&parts.headers);
            let st = grpc::status(
                h.get("grpc-status").map(|v| v.as_bytes()),
                h.get("grpc-message").map(|v| v.as_bytes()),
            )
            .map_err(|e| rpc_err(&e))?;
            match st {
                Some(s) if s.code == Code::Unimplemented => {
                    return Err(format!(
                        "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                        s.message
                    ));
                }
                Some(s) if s.code != Code::Ok => {
                    return Err(rpc_err(&format!(
                        "rpc error: code = {:?} desc = {}",
                        s.code, s.message
                    )));
                }
                _ => {}
            }
            let answer = dec.finish_unary().map_err(|e| rpc_err(&e))?;
            let r = HealthCheckResponse::decode(answer.as_slice()).map_err(|e| rpc_err(&e))?;
            match r.status {
                1 => Ok(()),
                s => Err(format!(
                    "service unhealthy (responded with \"{}\")",
                    serving_status_name(s)
                )),
            }
        };
        let drive = async move {
            let _ = conn.await;
            Err("error: health rpc probe failed: the connection closed".to_string())
        };
        smol::future::or(rpc, drive).await
    };
    let deadline = async {
        smol::Timer::after(timeout).await;
        Err(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs()
        ))
    };
    smol::block_on(smol::future::or(call, deadline))
}

/// A GET with the kubelet's probe headers (over TLS with `tls`); the status code.
fn http_get(a: SocketAddr, path: &str, tls: bool, timeout: Duration) -> std::io::Result<u16> {
    let s = TcpStream::connect_timeout(&a, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    if tls {
        return get_on(super::probe_https::connect(s, a.ip())?, a, path);
    }
    get_on(s, a, path)
}

fn get_on(mut s: impl Read + Write, a: SocketAddr, path: &str) -> std::io::Result<u16> {
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {a}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Startup,
    Readiness,
    Liveness,
}

impl Kind {
    /// As the kubelet's logs name it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "startup",
            Kind::Readiness => "readiness",
            Kind::Liveness => "liveness",
        }
    }

    /// As the kubelet's events name it.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Readiness => "Readiness",
            Kind::Liveness => "Liveness",
        }
    }
}

/// One probe to run on a worker.
#[derive(Debug, Clone)]
pub struct Job {
    pub uid: String,
    /// The pod's name and namespace (the metrics' labels).
    pub pod: String,
    pub namespace: String,
    pub container: String,
    pub kind: Kind,
    pub container_id: String,
    pub probe: Probe,
    pub pod_ip: String,
    pub ports: Vec<ContainerPort>,
}

/// A job and how it went.
#[derive(Debug)]
pub struct Done {
    pub job: Job,
    pub outcome: Outcome,
    /// How long the probe took.
    pub took: Duration,
}

/// `n` threads running probe jobs (each bounded by its timeout) until the job sender is
/// dropped; each outcome is handed to `deliver` as it finishes (false: stop).
pub fn workers(
    n: usize,
    rt: std::sync::Arc<dyn Cri>,
    deliver: impl Fn(Done) -> bool + Send + Sync + 'static,
) -> std::sync::mpsc::Sender<Job> {
    let (job_tx, job_rx) = std::sync::mpsc::channel::<Job>();
    let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
    let deliver = std::sync::Arc::new(deliver);
    for i in 0..n {
        let (jobs, deliver, rt) = (job_rx.clone(), deliver.clone(), rt.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("probe-{i}"))
            .stack_size(512 << 10)
            .spawn(move || {
                loop {
                    let next = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(job) = next else {
                        return;
                    };
                    let t0 = std::time::Instant::now();
                    let outcome = run(
                        &job.probe.handler,
                        timeout(&job.probe),
                        &*rt,
                        &job.container_id,
                        &job.pod_ip,
                        &job.ports,
                    );
                    let took = t0.elapsed();
                    if !deliver(Done { job, outcome, took }) {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            crate::error!("starting probe worker {i}: {e}");
        }
    }
    job_tx
}

/// A probe's timeout (timeoutSeconds, at least 1 s).
pub fn timeout(probe: &Probe) -> Duration {
    Duration::from_secs(u64::from(probe.timeout_seconds.max(1)))
}

/// One probe's results so far, for one container instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tracker {
    pub container_id: String,
    successes: u32,
    failures: u32,
    /// None until the thresholds decide; readiness counts None as not ready, liveness as alive.
    pub result: Option<bool>,
    /// Milliseconds since the epoch of the last run.
    last_run: Option<u64>,
    pub last_failure: String,
    /// Handed to a worker, its outcome not back yet.
    in_flight: bool,
}

impl Tracker {
    pub fn new(container_id: &str) -> Tracker {
        Tracker {
            container_id: container_id.into(),
            ..Tracker::default()
        }
    }

    /// Whether the probe is due at `now_ms` for a container started at `started_ms`.
    pub fn due(&self, probe: &Probe, now_ms: u64, started_ms: u64) -> bool {
        if self.in_flight || now_ms < started_ms + u64::from(probe.initial_delay_seconds) * 1000 {
            return false;
        }
        self.last_run
            .is_none_or(|t| now_ms >= t + u64::from(probe.period_seconds.max(1)) * 1000)
    }

    /// The probe was handed to a worker at `now_ms` (its period counts from now).
    pub fn start(&mut self, now_ms: u64) {
        self.in_flight = true;
        self.last_run = Some(now_ms);
    }

    /// Records an outcome; true when the result changed.
    pub fn record(&mut self, probe: &Probe, now_ms: u64, o: &Outcome) -> bool {
        if !self.in_flight {
            self.last_run = Some(now_ms);
        }
        self.in_flight = false;
        let before = self.result;
        match o {
            Outcome::Success => {
                self.failures = 0;
                self.successes += 1;
                if self.successes >= probe.success_threshold.max(1) {
                    self.result = Some(true);
                }
            }
            Outcome::Failure(why) => {
                self.successes = 0;
                self.failures += 1;
                self.last_failure = why.clone();
                if self.failures >= probe.failure_threshold.max(1) {
                    self.result = Some(false);
                }
            }
        }
        before != self.result
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
