//! Where the pod machinery meets I/O: a small trait for the CRI calls it makes and one for the
//! API calls (get, create, patch, delete), implemented by the real CRI client and the agent's
//! API client, and by in-crate fakes (`pods::fake`) so the owner's rounds are unit-tested
//! without root.

use serde_json::Value;

use crate::cri::api::*;
use crate::cri::{CriError, Runtime};
use crate::kube::{Lazy, PatchKind};

macro_rules! cri_calls {
    ($($name:ident($req:ty) -> $resp:ty;)*) => {
        /// The CRI calls pods make.
        pub trait Cri: Send + Sync {
            $(fn $name(&self, r: &$req) -> Result<$resp, CriError>;)*
        }

        impl Cri for Runtime {
            $(fn $name(&self, r: &$req) -> Result<$resp, CriError> {
                Runtime::$name(self, r)
            })*
        }
    };
}

cri_calls! {
    list_pod_sandbox(ListPodSandboxRequest) -> ListPodSandboxResponse;
    list_containers(ListContainersRequest) -> ListContainersResponse;
    pod_sandbox_status(PodSandboxStatusRequest) -> PodSandboxStatusResponse;
    container_status(ContainerStatusRequest) -> ContainerStatusResponse;
    run_pod_sandbox(RunPodSandboxRequest) -> RunPodSandboxResponse;
    stop_pod_sandbox(StopPodSandboxRequest) -> StopPodSandboxResponse;
    remove_pod_sandbox(RemovePodSandboxRequest) -> RemovePodSandboxResponse;
    create_container(CreateContainerRequest) -> CreateContainerResponse;
    start_container(StartContainerRequest) -> StartContainerResponse;
    stop_container(StopContainerRequest) -> StopContainerResponse;
    remove_container(RemoveContainerRequest) -> RemoveContainerResponse;
    image_status(ImageStatusRequest) -> ImageStatusResponse;
    pull_image(PullImageRequest) -> PullImageResponse;
    exec_sync(ExecSyncRequest) -> ExecSyncResponse;
    reopen_container_log(ReopenContainerLogRequest) -> ReopenContainerLogResponse;
    list_images(ListImagesRequest) -> ListImagesResponse;
    remove_image(RemoveImageRequest) -> RemoveImageResponse;
    image_fs_info(ImageFsInfoRequest) -> ImageFsInfoResponse;
}

/// A failed API call: the HTTP status when the server answered, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    /// No client (standalone, or not bootstrapped yet).
    pub fn no_client(why: String) -> ApiError {
        ApiError {
            code: None,
            message: why,
        }
    }
}

/// The API calls pods make, on JSON objects.
pub trait Api: Send + Sync {
    fn get(&self, path: &str) -> Result<Value, ApiError>;
    fn create(&self, path: &str, body: &Value) -> Result<Value, ApiError>;
    fn patch(&self, path: &str, kind: PatchKind, body: &Value) -> Result<Value, ApiError>;
    fn delete(&self, path: &str, options: &Value) -> Result<Value, ApiError>;
}

fn api_err(e: crate::kube::KubeError) -> ApiError {
    ApiError {
        code: e.code(),
        message: e.to_string(),
    }
}

impl Api for Lazy {
    fn get(&self, path: &str) -> Result<Value, ApiError> {
        let c = Lazy::get(self).map_err(ApiError::no_client)?;
        c.get(path).map_err(api_err)
    }

    fn create(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let c = Lazy::get(self).map_err(ApiError::no_client)?;
        c.create(path, body).map_err(api_err)
    }

    fn patch(&self, path: &str, kind: PatchKind, body: &Value) -> Result<Value, ApiError> {
        let c = Lazy::get(self).map_err(ApiError::no_client)?;
        c.patch(path, kind, body).map_err(api_err)
    }

    fn delete(&self, path: &str, options: &Value) -> Result<Value, ApiError> {
        let c = Lazy::get(self).map_err(ApiError::no_client)?;
        c.delete(path, options).map_err(api_err)
    }
}

/// No API server (standalone): every call fails.
pub struct NoApi;

impl Api for NoApi {
    fn get(&self, _: &str) -> Result<Value, ApiError> {
        Err(ApiError::no_client("no API server".into()))
    }
    fn create(&self, _: &str, _: &Value) -> Result<Value, ApiError> {
        Err(ApiError::no_client("no API server".into()))
    }
    fn patch(&self, _: &str, _: PatchKind, _: &Value) -> Result<Value, ApiError> {
        Err(ApiError::no_client("no API server".into()))
    }
    fn delete(&self, _: &str, _: &Value) -> Result<Value, ApiError> {
        Err(ApiError::no_client("no API server".into()))
    }
}
