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
        return match http_get(a, path, timeout) {
            Ok(code) if (200..400).contains(&code) => Outcome::Success,
            Ok(code) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
            Err(e) => Outcome::Failure(format!("Get \"http://{a}{path}\": {e}")),
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

/// A GET with the kubelet's probe headers; the status code.
fn http_get(a: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&a, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
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
                    let outcome = run(
                        &job.probe.handler,
                        timeout(&job.probe),
                        &*rt,
                        &job.container_id,
                        &job.pod_ip,
                        &job.ports,
                    );
                    if !deliver(Done { job, outcome }) {
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
mod tests {
    use super::*;
    use serde_json::json;

    /// A one-connection gRPC server on TCP answering Health/Check with `status` (None: grpc
    /// status 12, unimplemented; Some(-1): never answers).
    fn health_server(status: Option<i32>) -> SocketAddr {
        use prost::Message;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let a = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || {
            smol::block_on(async move {
                let l = smol::Async::new(l).unwrap_or_else(|e| panic!("{e}"));
                let (sock, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
                let mut conn = h2::server::handshake(crate::cri::conn::Io::new(sock))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                    let resp = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(())
                        .unwrap_or_else(|e| panic!("{e}"));
                    match status {
                        Some(-1) => {
                            smol::Timer::after(Duration::from_secs(5)).await;
                        }
                        Some(st) => {
                            let mut send = respond
                                .send_response(resp, false)
                                .unwrap_or_else(|e| panic!("{e}"));
                            let msg = HealthCheckResponse { status: st }.encode_to_vec();
                            let body = crate::cri::grpc::frame(&msg, 1 << 20)
                                .unwrap_or_else(|e| panic!("{e}"));
                            let _ = send.send_data(bytes::Bytes::from(body), false);
                            let mut t = http::HeaderMap::new();
                            t.insert("grpc-status", http::HeaderValue::from_static("0"));
                            let _ = send.send_trailers(t);
                        }
                        None => {
                            let mut send = respond
                                .send_response(resp, false)
                                .unwrap_or_else(|e| panic!("{e}"));
                            let mut t = http::HeaderMap::new();
                            t.insert("grpc-status", http::HeaderValue::from_static("12"));
                            t.insert(
                                "grpc-message",
                                http::HeaderValue::from_static("unknown service"),
                            );
                            let _ = send.send_trailers(t);
                        }
                    }
                }
            })
        });
        a
    }

    #[test]
    fn grpc_health_checks_as_the_kubelet() {
        let t = Duration::from_secs(2);
        assert_eq!(grpc_check(health_server(Some(1)), "", t), Ok(()));
        assert_eq!(
            grpc_check(health_server(Some(2)), "svc", t),
            Err("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let e = grpc_check(health_server(None), "", t)
            .err()
            .unwrap_or_default();
        assert!(
            e.starts_with("error: this server does not implement the grpc health protocol"),
            "{e}"
        );
        let e = grpc_check(health_server(Some(-1)), "", Duration::from_secs(1))
            .err()
            .unwrap_or_default();
        assert_eq!(e, "timeout: health rpc did not complete within 1s");
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("{e}"));
        let e = grpc_check(closed, "", t).err().unwrap_or_default();
        assert!(e.starts_with("error: failed to connect service at"), "{e}");
    }

    #[test]
    fn a_slow_probe_holds_one_worker_not_the_others() {
        let ep = crate::config::kubelet::RuntimeEndpoint::parse("unix:///nonexistent/cri.sock")
            .unwrap_or_else(|e| panic!("{e}"));
        let rt: std::sync::Arc<dyn Cri> = std::sync::Arc::new(
            crate::cri::Runtime::new(&ep, None, crate::cri::Options::new(Duration::from_secs(1)))
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let (tx, done) = std::sync::mpsc::channel();
        let jobs = workers(2, rt, move |d| tx.send(d).is_ok());
        let hung = health_server(Some(-1));
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let job = |name: &str, v: Value| Job {
            uid: "u".into(),
            container: name.into(),
            kind: Kind::Liveness,
            container_id: "c".into(),
            probe: probe(v),
            pod_ip: "127.0.0.1".into(),
            ports: vec![],
        };
        let send = |j| jobs.send(j).unwrap_or_else(|e| panic!("{e}"));
        send(job(
            "slow",
            json!({"grpc": {"port": hung.port()}, "timeoutSeconds": 2}),
        ));
        let port = open.local_addr().map(|a| a.port()).unwrap_or(0);
        send(job("fast", json!({"tcpSocket": {"port": port}})));
        let first = done.recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.job.container, "fast");
        assert_eq!(first.outcome, Outcome::Success);
        let second = done.recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.job.container, "slow");
        assert!(matches!(second.outcome, Outcome::Failure(ref w) if w.starts_with("timeout")));
    }

    fn probe(v: Value) -> Probe {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults_timing_and_thresholds() {
        let p = probe(
            json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 2, "successThreshold": 2}),
        );
        assert_eq!(
            (p.period_seconds, p.timeout_seconds, p.failure_threshold),
            (10, 1, 3)
        );
        let mut t = Tracker::new("c1");
        assert!(!t.due(&p, 1_500, 0), "initial delay");
        assert!(t.due(&p, 2_000, 0));
        assert!(
            !t.record(&p, 2_000, &Outcome::Success),
            "one success of two"
        );
        assert!(!t.due(&p, 11_999, 0), "period");
        assert!(t.record(&p, 12_000, &Outcome::Success));
        assert_eq!(t.result, Some(true));
        let fail = Outcome::Failure("no".into());
        assert!(!t.record(&p, 22_000, &fail));
        assert!(!t.record(&p, 32_000, &fail));
        assert!(t.record(&p, 42_000, &fail), "third failure flips it");
        assert_eq!((t.result, t.last_failure.as_str()), (Some(false), "no"));
    }

    #[test]
    fn ports_by_number_or_name() {
        let ports = [ContainerPort {
            name: "http".into(),
            container_port: 8080,
        }];
        assert_eq!(port(&json!(80), &ports), Ok(80));
        assert_eq!(port(&json!("http"), &ports), Ok(8080));
        assert_eq!(port(&json!("81"), &ports), Ok(81));
        assert_eq!(
            port(&json!("web"), &ports),
            Err("no container port named \"web\"".into())
        );
        assert_eq!(port(&json!(0), &ports), Err("invalid port 0".into()));
    }

    #[test]
    fn tcp_and_http_probes_against_local_listeners() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let p = l.local_addr().map(|a| a.port()).unwrap_or(0);
        let server = std::thread::spawn(move || {
            for (i, s) in l.incoming().enumerate() {
                let Ok(mut s) = s else { continue };
                let mut got = Vec::new();
                let mut buf = [0u8; 1024];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let code = if i == 0 { 200 } else { 500 };
                let _ = write!(s, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                if i == 1 {
                    return;
                }
            }
        });
        let rt = crate::cri::Runtime::new(
            &crate::config::kubelet::RuntimeEndpoint::parse("unix:///nonexistent.sock")
                .unwrap_or_else(|e| panic!("{e}")),
            None,
            crate::cri::Options::new(Duration::from_secs(1)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let http = probe(json!({"httpGet": {"path": "/ready", "port": p}}));
        assert_eq!(
            run(&http.handler, timeout(&http), &rt, "c", "127.0.0.1", &[]),
            Outcome::Success
        );
        assert_eq!(
            run(&http.handler, timeout(&http), &rt, "c", "127.0.0.1", &[]),
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
        let _ = server.join();
        let tcp = probe(json!({"tcpSocket": {"port": p}}));
        assert!(
            matches!(
                run(&tcp.handler, timeout(&tcp), &rt, "c", "127.0.0.1", &[]),
                Outcome::Failure(_)
            ),
            "closed port"
        );
        let exec = probe(json!({"exec": {"command": ["true"]}}));
        assert!(
            matches!(
                run(&exec.handler, timeout(&exec), &rt, "c", "127.0.0.1", &[]),
                Outcome::Failure(_)
            ),
            "no runtime"
        );
    }
}
