//! The kubelet's reason strings as an enum, and the errors of pod work, each with the reason
//! the pod is shown for it.

/// A reason as the kubelet writes it in a container's waiting state, a pod's status or an
/// event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // Waiting states.
    ContainerCreating,
    CrashLoopBackOff,
    ErrImagePull,
    ImagePullBackOff,
    ErrImageNeverPull,
    CreateContainerConfigError,
    // Pod status.
    DeadlineExceeded,
    Evicted,
    // Events.
    Pulling,
    Pulled,
    Failed,
    Created,
    Started,
    Killing,
    BackOff,
    Unhealthy,
    FailedMount,
    FailedCreatePodSandBox,
    FailedPostStartHook,
    FailedPreStopHook,
    FailedToRetrieveImagePullSecret,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ContainerCreating => "ContainerCreating",
            Reason::CrashLoopBackOff => "CrashLoopBackOff",
            Reason::ErrImagePull => "ErrImagePull",
            Reason::ImagePullBackOff => "ImagePullBackOff",
            Reason::ErrImageNeverPull => "ErrImageNeverPull",
            Reason::CreateContainerConfigError => "CreateContainerConfigError",
            Reason::DeadlineExceeded => "DeadlineExceeded",
            Reason::Evicted => "Evicted",
            Reason::Pulling => "Pulling",
            Reason::Pulled => "Pulled",
            Reason::Failed => "Failed",
            Reason::Created => "Created",
            Reason::Started => "Started",
            Reason::Killing => "Killing",
            Reason::BackOff => "BackOff",
            Reason::Unhealthy => "Unhealthy",
            Reason::FailedMount => "FailedMount",
            Reason::FailedCreatePodSandBox => "FailedCreatePodSandBox",
            Reason::FailedPostStartHook => "FailedPostStartHook",
            Reason::FailedPreStopHook => "FailedPreStopHook",
            Reason::FailedToRetrieveImagePullSecret => "FailedToRetrieveImagePullSecret",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why pod work failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// The image could not be pulled (ErrImagePull, then ImagePullBackOff).
    #[error("{0}")]
    Pull(String),
    /// `imagePullPolicy: Never` and the image is not there.
    #[error("{0}")]
    NeverPull(String),
    /// What the container is made of could not be made (env, mounts, runAsNonRoot...).
    #[error("{0}")]
    Config(String),
    /// A volume could not be set up (FailedMount).
    #[error("{0}")]
    Mount(String),
    /// A call to the runtime failed.
    #[error("{0}")]
    Runtime(String),
    /// A call to the API server failed.
    #[error("{0}")]
    Api(String),
    /// The node's side of a pod (its cgroup, directories) could not be made.
    #[error("{0}")]
    Node(String),
}

impl PodError {
    /// The waiting reason a container failing this way is shown with, if any.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            PodError::Pull(_) => Some(Reason::ErrImagePull),
            PodError::NeverPull(_) => Some(Reason::ErrImageNeverPull),
            PodError::Config(_) => Some(Reason::CreateContainerConfigError),
            PodError::Mount(_) | PodError::Runtime(_) | PodError::Api(_) | PodError::Node(_) => {
                None
            }
        }
    }
}

impl From<crate::cri::CriError> for PodError {
    fn from(e: crate::cri::CriError) -> PodError {
        PodError::Runtime(e.to_string())
    }
}

impl From<super::seams::ApiError> for PodError {
    fn from(e: super::seams::ApiError) -> PodError {
        PodError::Api(e.message)
    }
}
