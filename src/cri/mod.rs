//! The CRI client: a synchronous facade over gRPC on HTTP/2 on the runtime's unix socket
//! (`containerRuntimeEndpoint`, `imageServiceEndpoint`). Calls block the calling thread; the
//! connections live on one small executor thread.

pub mod api;
pub(crate) mod conn;
pub mod grpc;
pub mod metrics;

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use smol::Executor;

use crate::config::kubelet::RuntimeEndpoint;
use api::*;
use conn::{Limits, Transport};
pub use grpc::Code;

/// The kubelet's gRPC message size limit (16 MiB), both ways.
pub const MAX_MESSAGE: usize = 16 << 20;

/// Why a CRI call failed. Every variant names the call.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error(
        "CRI {method}: cannot connect to {endpoint}: {err} (is the container runtime running?)"
    )]
    Connect {
        method: &'static str,
        endpoint: String,
        err: io::Error,
    },
    #[error("CRI {method} on {endpoint}: {err}")]
    Transport {
        method: &'static str,
        endpoint: String,
        err: h2::Error,
    },
    #[error("CRI {method}: rpc error: code = {code} desc = {message}")]
    Status {
        method: &'static str,
        code: Code,
        message: String,
    },
    #[error("CRI {method}: no answer from {endpoint} within {timeout:?}")]
    DeadlineExceeded {
        method: &'static str,
        endpoint: String,
        timeout: Duration,
    },
    #[error("CRI {method}: {err}")]
    Frame {
        method: &'static str,
        err: grpc::FrameError,
    },
    #[error("CRI {method}: cannot decode the response: {err}")]
    Decode {
        method: &'static str,
        err: prost::DecodeError,
    },
    #[error("CRI {method}: bad response from {endpoint}: {detail}")]
    Protocol {
        method: &'static str,
        endpoint: String,
        detail: String,
    },
    #[error("the CRI client has stopped")]
    Closed,
    #[error("cannot start the CRI client thread: {0}")]
    Spawn(io::Error),
}

impl CriError {
    /// The gRPC code: the runtime's own, or the one grpc-go would report for a local failure.
    pub fn code(&self) -> Code {
        match self {
            CriError::Status { code, .. } => *code,
            CriError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            CriError::Connect { .. } | CriError::Transport { .. } => Code::Unavailable,
            CriError::Frame {
                err: grpc::FrameError::TooLarge { .. },
                ..
            } => Code::ResourceExhausted,
            CriError::Frame { .. } | CriError::Decode { .. } | CriError::Protocol { .. } => {
                Code::Internal
            }
            CriError::Closed | CriError::Spawn(_) => Code::Canceled,
        }
    }

    /// The runtime does not implement the call (containerd 1.6 lacks a few): callers fall back.
    pub fn is_unimplemented(&self) -> bool {
        self.code() == Code::Unimplemented
    }

    /// The runtime says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == Code::NotFound
    }
}

/// Deadlines and limits.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `runtimeRequestTimeout`: the deadline of every call but pulls (2 minutes by default).
    pub timeout: Duration,
    /// The deadline of a pull. The kubelet sets none; tinylet bounds it so a stuck registry
    /// cannot hold the puller forever.
    pub pull_timeout: Duration,
    /// Largest message either way.
    pub max_message: usize,
}

impl Options {
    pub fn new(timeout: Duration) -> Options {
        Options {
            timeout,
            pull_timeout: Duration::from_secs(30 * 60),
            max_message: MAX_MESSAGE,
        }
    }
}

/// The runtime and image services of one container runtime.
pub struct Runtime {
    ex: Arc<Executor<'static>>,
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    runtime: Arc<Transport>,
    image: Arc<Transport>,
    options: Options,
    ops: Arc<metrics::Operations>,
}

impl Runtime {
    /// A client for `runtime` (and `image`, when the image service listens elsewhere). Nothing is
    /// dialled until the first call.
    pub fn new(
        runtime: &RuntimeEndpoint,
        image: Option<&RuntimeEndpoint>,
        options: Options,
    ) -> Result<Runtime, CriError> {
        let limits = Limits {
            receive: options.max_message,
        };
        let transport = |e: &RuntimeEndpoint| {
            Arc::new(Transport::new(
                format!("unix://{}", e.path()),
                PathBuf::from(e.path()),
                limits,
            ))
        };
        let runtime_t = transport(runtime);
        let image_t = match image {
            Some(i) if i != runtime => transport(i),
            _ => runtime_t.clone(),
        };
        let ex = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let runner = ex.clone();
        let thread = std::thread::Builder::new()
            .name("cri".into())
            .stack_size(256 << 10)
            .spawn(move || {
                smol::block_on(runner.run(async move {
                    let _ = stopped.recv().await;
                }))
            })
            .map_err(CriError::Spawn)?;
        Ok(Runtime {
            ex,
            stop: Some(stop),
            thread: Some(thread),
            runtime: runtime_t,
            image: image_t,
            options,
            ops: Arc::default(),
        })
    }

    /// Every call made so far, by operation type (for `/metrics`).
    pub fn operations(&self) -> Arc<metrics::Operations> {
        self.ops.clone()
    }

    /// The runtime endpoint, for messages.
    pub fn endpoint(&self) -> &str {
        &self.runtime.endpoint
    }

    fn call<Req: Message, Resp: Message + Default>(
        &self,
        transport: &Arc<Transport>,
        method: &'static str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, CriError> {
        let t0 = std::time::Instant::now();
        let answer = self.call_timed(transport, method, request, timeout);
        self.ops.record(method, t0.elapsed(), answer.is_err());
        answer
    }

    fn call_timed<Req: Message, Resp: Message + Default>(
        &self,
        transport: &Arc<Transport>,
        method: &'static str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, CriError> {
        let body = grpc::frame(&request.encode_to_vec(), self.options.max_message)
            .map_err(|err| CriError::Frame { method, err })?;
        let (tx, rx) = mpsc::sync_channel(1);
        let t = transport.clone();
        let ex: Weak<Executor<'static>> = Arc::downgrade(&self.ex);
        let task = self.ex.spawn(async move {
            let _ = tx.send(t.unary(&ex, method, Bytes::from(body), timeout).await);
        });
        // The deadline is kept here, with no timer on the executor: on expiry the task is
        // dropped, which cancels the call and resets its HTTP/2 stream.
        let answer = match rx.recv_timeout(timeout) {
            Ok(answer) => answer?,
            Err(RecvTimeoutError::Timeout) => {
                drop(task);
                return Err(CriError::DeadlineExceeded {
                    method,
                    endpoint: transport.endpoint.clone(),
                    timeout,
                });
            }
            Err(RecvTimeoutError::Disconnected) => return Err(CriError::Closed),
        };
        Resp::decode(answer.as_slice()).map_err(|err| CriError::Decode { method, err })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn seconds(s: i64) -> Duration {
    Duration::from_secs(s.max(0).unsigned_abs())
}

macro_rules! rpcs {
    (@deadline $self:ident, $request:ident) => { $self.options.timeout };
    (@deadline $self:ident, $request:ident, $o:ident, $r:ident, $deadline:expr) => {{
        let $o = &$self.options;
        let $r = $request;
        $deadline
    }};
    ($($(#[$m:meta])* $name:ident: $transport:ident $method:literal ($req:ty) -> $resp:ty
        $(, deadline($o:ident, $r:ident) $deadline:expr)?;)*) => {
        /// Every call the client makes: (method path under `runtime.v1.`, request, response).
        pub const RPCS: &[(&str, &str, &str)] =
            &[$(($method, stringify!($req), stringify!($resp))),*];

        impl Runtime {
            $(
                $(#[$m])*
                pub fn $name(&self, request: &$req) -> Result<$resp, CriError> {
                    let timeout = rpcs!(@deadline self, request $(, $o, $r, $deadline)?);
                    self.call(&self.$transport, $method, request, timeout)
                }
            )*
        }
    };
}

rpcs! {
    version: runtime "RuntimeService/Version" (VersionRequest) -> VersionResponse;
    run_pod_sandbox: runtime "RuntimeService/RunPodSandbox" (RunPodSandboxRequest)
        -> RunPodSandboxResponse;
    stop_pod_sandbox: runtime "RuntimeService/StopPodSandbox" (StopPodSandboxRequest)
        -> StopPodSandboxResponse;
    remove_pod_sandbox: runtime "RuntimeService/RemovePodSandbox" (RemovePodSandboxRequest)
        -> RemovePodSandboxResponse;
    pod_sandbox_status: runtime "RuntimeService/PodSandboxStatus" (PodSandboxStatusRequest)
        -> PodSandboxStatusResponse;
    list_pod_sandbox: runtime "RuntimeService/ListPodSandbox" (ListPodSandboxRequest)
        -> ListPodSandboxResponse;
    create_container: runtime "RuntimeService/CreateContainer" (CreateContainerRequest)
        -> CreateContainerResponse;
    start_container: runtime "RuntimeService/StartContainer" (StartContainerRequest)
        -> StartContainerResponse;
    /// The deadline is the request's grace period plus `runtimeRequestTimeout`, as the kubelet's.
    stop_container: runtime "RuntimeService/StopContainer" (StopContainerRequest)
        -> StopContainerResponse, deadline(o, r) o.timeout + seconds(r.timeout);
    remove_container: runtime "RuntimeService/RemoveContainer" (RemoveContainerRequest)
        -> RemoveContainerResponse;
    list_containers: runtime "RuntimeService/ListContainers" (ListContainersRequest)
        -> ListContainersResponse;
    container_status: runtime "RuntimeService/ContainerStatus" (ContainerStatusRequest)
        -> ContainerStatusResponse;
    update_container_resources: runtime "RuntimeService/UpdateContainerResources"
        (UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse;
    reopen_container_log: runtime "RuntimeService/ReopenContainerLog"
        (ReopenContainerLogRequest) -> ReopenContainerLogResponse;
    /// The deadline is the command's own timeout plus `runtimeRequestTimeout`, as the kubelet's.
    exec_sync: runtime "RuntimeService/ExecSync" (ExecSyncRequest) -> ExecSyncResponse,
        deadline(o, r) o.timeout + seconds(r.timeout);
    exec: runtime "RuntimeService/Exec" (ExecRequest) -> ExecResponse;
    attach: runtime "RuntimeService/Attach" (AttachRequest) -> AttachResponse;
    port_forward: runtime "RuntimeService/PortForward" (PortForwardRequest) -> PortForwardResponse;
    container_stats: runtime "RuntimeService/ContainerStats" (ContainerStatsRequest)
        -> ContainerStatsResponse;
    list_container_stats: runtime "RuntimeService/ListContainerStats"
        (ListContainerStatsRequest) -> ListContainerStatsResponse;
    pod_sandbox_stats: runtime "RuntimeService/PodSandboxStats" (PodSandboxStatsRequest)
        -> PodSandboxStatsResponse;
    list_pod_sandbox_stats: runtime "RuntimeService/ListPodSandboxStats"
        (ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse;
    update_runtime_config: runtime "RuntimeService/UpdateRuntimeConfig"
        (UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse;
    status: runtime "RuntimeService/Status" (StatusRequest) -> StatusResponse;
    /// UNIMPLEMENTED in containerd 1.6: see [`CriError::is_unimplemented`].
    runtime_config: runtime "RuntimeService/RuntimeConfig" (RuntimeConfigRequest)
        -> RuntimeConfigResponse;
    list_images: image "ImageService/ListImages" (ListImagesRequest) -> ListImagesResponse;
    image_status: image "ImageService/ImageStatus" (ImageStatusRequest) -> ImageStatusResponse;
    /// Bounded by [`Options::pull_timeout`] instead of `runtimeRequestTimeout`.
    pull_image: image "ImageService/PullImage" (PullImageRequest) -> PullImageResponse,
        deadline(o, _r) o.pull_timeout;
    remove_image: image "ImageService/RemoveImage" (RemoveImageRequest) -> RemoveImageResponse;
    image_fs_info: image "ImageService/ImageFsInfo" (ImageFsInfoRequest) -> ImageFsInfoResponse;
}
