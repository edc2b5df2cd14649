//! The CRI client's error paths against an in-process fake runtime (an h2 server on a unix
//! socket): bad frames, oversized messages, unknown and trailers-only statuses, wrong HTTP
//! answers, stalled streams, dropped connections, a socket nobody serves.

// A test that expects a value states what it expected; the panic is the failure report.
#![allow(clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use tinylet::config::kubelet::RuntimeEndpoint;
use tinylet::cri::api::{ListContainersRequest, VersionRequest, VersionResponse};
use tinylet::cri::{Code, CriError, Options, Runtime, grpc};

/// What the fake does with one call.
#[derive(Clone)]
enum Behave {
    /// 200, application/grpc, this body, then these trailers (None: no trailers frame).
    Answer {
        body: Vec<u8>,
        trailers: Option<Vec<(&'static str, String)>>,
    },
    /// A response with these headers and END_STREAM on them (gRPC "trailers-only", or worse).
    HeadersOnly {
        status: u16,
        headers: Vec<(&'static str, String)>,
    },
    /// Never answers.
    Stall,
    /// Drops the whole connection.
    Close,
}

fn ok_with(message: &impl Message) -> Behave {
    Behave::Answer {
        body: framed(&message.encode_to_vec()),
        trailers: Some(status(0, "")),
    }
}

fn framed(bytes: &[u8]) -> Vec<u8> {
    grpc::frame(bytes, usize::MAX).expect("frame")
}

fn status(code: u32, message: &str) -> Vec<(&'static str, String)> {
    let mut v = vec![("grpc-status", code.to_string())];
    if !message.is_empty() {
        v.push(("grpc-message", message.to_string()));
    }
    v
}

fn version() -> VersionResponse {
    VersionResponse {
        version: "0.1.0".into(),
        runtime_name: "fake".into(),
        runtime_version: "9.9".into(),
        runtime_api_version: "v1".into(),
    }
}

type Handler = Arc<dyn Fn(&str) -> Behave + Send + Sync>;

/// A request the fake saw.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

struct Fake {
    _dir: common::TempDir,
    path: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<Mutex<usize>>,
}

impl Fake {
    fn start(handler: impl Fn(&str) -> Behave + Send + Sync + 'static) -> Fake {
        let dir = common::tempdir();
        let path = dir.path().join("fake.sock");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let handler: Handler = Arc::new(handler);
        let (s, c, p) = (seen.clone(), connections.clone(), path.clone());
        let (ready, is_ready) = std::sync::mpsc::channel();
        // The server lives on its own thread and runtime until the test process ends.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::bind(&p).expect("bind");
                let _ = ready.send(());
                while let Ok((sock, _)) = listener.accept().await {
                    *c.lock().expect("lock") += 1;
                    tokio::spawn(serve(sock, handler.clone(), s.clone()));
                }
            })
        });
        is_ready.recv().expect("fake server started");
        Fake {
            _dir: dir,
            path,
            seen,
            connections,
        }
    }

    fn client(&self, timeout: Duration) -> Runtime {
        client_for(&self.path, Options::new(timeout))
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn connections(&self) -> usize {
        *self.connections.lock().expect("lock")
    }
}

fn client_for(path: &Path, options: Options) -> Runtime {
    let ep = RuntimeEndpoint::parse(&format!("unix://{}", path.display())).expect("endpoint");
    Runtime::new(&ep, None, options).expect("client")
}

async fn serve(sock: tokio::net::UnixStream, handler: Handler, seen: Arc<Mutex<Vec<Seen>>>) {
    let Ok(mut conn) = h2::server::handshake(sock).await else {
        return;
    };
    while let Some(Ok((req, respond))) = conn.accept().await {
        let path = req.uri().path().to_string();
        let behave = handler(&path);
        if matches!(behave, Behave::Close) {
            return; // drops the connection and its socket
        }
        let seen = seen.clone();
        tokio::spawn(async move {
            let (parts, mut body) = req.into_parts();
            let mut bytes = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            seen.lock().expect("lock").push(Seen {
                path,
                headers: parts.headers,
                body: bytes,
            });
            respond_with(respond, behave).await;
        });
    }
}

async fn respond_with(mut respond: h2::server::SendResponse<Bytes>, behave: Behave) {
    match behave {
        Behave::Answer { body, trailers } => {
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .expect("response");
            let Ok(mut stream) = respond.send_response(resp, false) else {
                return;
            };
            let _ = stream.send_data(Bytes::from(body), trailers.is_none());
            if let Some(t) = trailers {
                let mut map = http::HeaderMap::new();
                for (k, v) in t {
                    map.insert(k, v.parse().expect("header value"));
                }
                let _ = stream.send_trailers(map);
            }
            // Keep the stream object alive until the data is flushed.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Behave::HeadersOnly { status, headers } => {
            let mut resp = http::Response::builder().status(status);
            for (k, v) in headers {
                resp = resp.header(k, v);
            }
            let _ = respond.send_response(resp.body(()).expect("response"), true);
        }
        Behave::Stall => tokio::time::sleep(Duration::from_secs(3600)).await,
        Behave::Close => {}
    }
}

fn err<T: std::fmt::Debug>(r: Result<T, CriError>) -> CriError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_call_sends_grpc_headers_and_decodes_the_answer() {
    let fake = Fake::start(|_| ok_with(&version()));
    let rt = fake.client(Duration::from_secs(7));
    let got = rt
        .version(&VersionRequest {
            version: "v1".into(),
        })
        .expect("Version");
    assert_eq!(got, version());
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.path, "/runtime.v1.RuntimeService/Version");
    let h = |n: &str| {
        s.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(h("content-type"), "application/grpc");
    assert_eq!(h("te"), "trailers");
    assert_eq!(h("grpc-timeout"), "7000000u");
    assert!(h("user-agent").starts_with("tinylet/"));
    let mut d = grpc::Decoder::new(1 << 20);
    d.push(&s.body).expect("request framing");
    let req =
        VersionRequest::decode(d.finish_unary().expect("one message").as_slice()).expect("decode");
    assert_eq!(req.version, "v1");
}

#[test]
fn runtime_statuses_become_typed_errors() {
    let fake = Fake::start(|path| match path {
        p if p.ends_with("/Version") => Behave::Answer {
            body: vec![],
            trailers: Some(status(5, "container %22abc%22 not found")),
        },
        p if p.ends_with("/Status") => {
            // Trailers-only: the status rides on the response headers.
            Behave::HeadersOnly {
                status: 200,
                headers: vec![
                    ("content-type", "application/grpc".into()),
                    ("grpc-status", "12".into()),
                    ("grpc-message", "unknown method Status".into()),
                ],
            }
        }
        _ => Behave::Answer {
            body: vec![],
            trailers: Some(status(42, "from the future")),
        },
    });
    let rt = fake.client(Duration::from_secs(5));
    let e = err(rt.version(&VersionRequest::default()));
    assert!(e.is_not_found());
    assert_eq!(
        e.to_string(),
        "CRI RuntimeService/Version: rpc error: code = NotFound desc = container \"abc\" not found"
    );
    let e = err(rt.status(&Default::default()));
    assert!(e.is_unimplemented(), "{e}");
    let e = err(rt.list_containers(&ListContainersRequest::default()));
    assert_eq!(e.code(), Code::Unknown);
    assert!(
        e.to_string()
            .ends_with("desc = grpc-status 42: from the future"),
        "{e}"
    );
}

#[test]
fn bad_frames_and_bodies_are_errors_not_panics() {
    let big = {
        // A prefix announcing 17 MiB: refused before it is buffered.
        let mut b = vec![0u8];
        b.extend_from_slice(&(17u32 << 20).to_be_bytes());
        b.extend_from_slice(&[0; 64]);
        b
    };
    let cases: Vec<(&str, Behave, Code, &str)> = vec![
        (
            "oversized",
            Behave::Answer {
                body: big,
                trailers: Some(status(0, "")),
            },
            Code::ResourceExhausted,
            "exceeds the limit of 16777216 bytes",
        ),
        (
            "compressed",
            Behave::Answer {
                body: vec![1, 0, 0, 0, 1, 0],
                trailers: Some(status(0, "")),
            },
            Code::Internal,
            "compressed message",
        ),
        (
            "truncated",
            Behave::Answer {
                body: vec![0, 0, 0, 0, 9, 1, 2],
                trailers: Some(status(0, "")),
            },
            Code::Internal,
            "body ends inside a message (2 of 9 bytes)",
        ),
        (
            "two messages",
            Behave::Answer {
                body: [framed(&[]), framed(&[])].concat(),
                trailers: Some(status(0, "")),
            },
            Code::Internal,
            "exactly one response message, got 2",
        ),
        (
            "no message",
            Behave::Answer {
                body: vec![],
                trailers: Some(status(0, "")),
            },
            Code::Internal,
            "exactly one response message, got 0",
        ),
        (
            "garbage protobuf",
            Behave::Answer {
                body: framed(&[0x0a, 0xff, 0xff]),
                trailers: Some(status(0, "")),
            },
            Code::Internal,
            "cannot decode the response",
        ),
        (
            "no status",
            Behave::Answer {
                body: framed(&[]),
                trailers: None,
            },
            Code::Internal,
            "carries no grpc-status",
        ),
        (
            "status not a number",
            Behave::Answer {
                body: framed(&[]),
                trailers: Some(vec![("grpc-status", "zero".into())]),
            },
            Code::Internal,
            "grpc-status \"zero\" is not a number",
        ),
        (
            "http 404",
            Behave::HeadersOnly {
                status: 404,
                headers: vec![],
            },
            Code::Internal,
            "HTTP status 404",
        ),
        (
            "html",
            Behave::HeadersOnly {
                status: 200,
                headers: vec![("content-type", "text/html".into())],
            },
            Code::Internal,
            "content-type \"text/html\", want application/grpc",
        ),
    ];
    for (name, behave, code, text) in cases {
        let b = behave.clone();
        let fake = Fake::start(move |_| b.clone());
        let rt = fake.client(Duration::from_secs(5));
        let e = err(rt.version(&VersionRequest::default()));
        assert_eq!(e.code(), code, "{name}: {e}");
        assert!(e.to_string().contains(text), "{name}: {e}");
        assert!(
            e.to_string().contains("RuntimeService/Version"),
            "{name}: {e}"
        );
    }
}

#[test]
fn requests_over_the_size_limit_are_refused_before_sending() {
    let big = VersionResponse {
        runtime_version: "9".repeat(100),
        ..version()
    };
    let fake = Fake::start(move |path| {
        if path.ends_with("/Status") {
            ok_with(&big)
        } else {
            ok_with(&version())
        }
    });
    let mut options = Options::new(Duration::from_secs(5));
    options.max_message = 64;
    let rt = client_for(&fake.path, options);
    let e = err(rt.version(&VersionRequest {
        version: "x".repeat(100),
    }));
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert!(fake.seen().is_empty(), "nothing was sent");
    assert_eq!(
        rt.version(&VersionRequest::default()).expect("small"),
        version()
    );
    // Answers are held to the same limit.
    let e = err(rt.status(&Default::default()));
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert!(
        e.to_string().contains("exceeds the limit of 64 bytes"),
        "{e}"
    );
}

#[test]
fn a_stalled_call_hits_its_deadline_while_other_calls_go_through() {
    let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = asked.clone();
    let fake = Fake::start(move |path| {
        if path.ends_with("/Status") {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            Behave::Stall
        } else {
            ok_with(&version())
        }
    });
    let rt = Arc::new(fake.client(Duration::from_secs(2)));
    let stalled = {
        let rt = rt.clone();
        std::thread::spawn(move || {
            let asked = Instant::now();
            (rt.status(&Default::default()), asked.elapsed())
        })
    };
    // The stalled call has reached the runtime before the others go.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !asked.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the Status call never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..10 {
        assert_eq!(
            rt.version(&VersionRequest::default()).expect("Version"),
            version()
        );
    }
    assert!(
        !stalled.is_finished(),
        "10 calls completed while the stalled one waited"
    );
    let (r, took) = stalled.join().expect("thread");
    let e = err(r);
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e}");
    assert!(
        e.to_string().contains("no answer from unix://") && e.to_string().contains("within 2s"),
        "{e}"
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert_eq!(fake.connections(), 1, "all calls shared one connection");
}

#[test]
fn a_dropped_connection_fails_the_call_and_the_next_call_redials() {
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    let fake = Fake::start(move |_| {
        let mut n = c.lock().expect("lock");
        *n += 1;
        if *n == 2 {
            Behave::Close
        } else {
            ok_with(&version())
        }
    });
    let rt = fake.client(Duration::from_secs(5));
    rt.version(&VersionRequest::default()).expect("first call");
    let e = err(rt.version(&VersionRequest::default()));
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    // The next call redials once the connection task has seen the socket close: wait for
    // that (it may take a while on a loaded machine), not for a fixed time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        match rt.version(&VersionRequest::default()) {
            Ok(v) => break v,
            Err(e) => {
                assert!(Instant::now() < deadline, "no redial: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    assert_eq!(answer, version());
    assert_eq!(fake.connections(), 2);
}

#[test]
fn nobody_listening_or_nobody_speaking() {
    let dir = common::tempdir();
    let rt = client_for(
        &dir.path().join("absent.sock"),
        Options::new(Duration::from_secs(5)),
    );
    let asked = Instant::now();
    let e = err(rt.version(&VersionRequest::default()));
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert_eq!(e.code(), Code::Unavailable);
    assert!(
        e.to_string().contains("No such file or directory")
            && e.to_string().contains("absent.sock"),
        "{e}"
    );

    // A socket that accepts and never speaks HTTP/2: the deadline, not a hang.
    let path = dir.path().join("mute.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept() {
            held.push(s);
        }
    });
    let rt = client_for(&path, Options::new(Duration::from_millis(800)));
    let e = err(rt.version(&VersionRequest::default()));
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e}");
}
