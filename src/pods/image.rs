//! A container's image, as the kubelet's image manager gets it: its pull policy (Always,
//! IfNotPresent, Never with ErrImageNeverPull), the registryPullQPS limit ("pull QPS
//! exceeded"), the pod's pull secrets tried in turn, the pull itself under the pull permits
//! (`serializeImagePulls`/`maxParallelImagePulls`), and ErrImagePull held with its back-off.

use std::time::{Duration, Instant};

use super::error::{PodError, Reason};
use super::execute::{Executor, Job, now_ms};
use super::plan::Backoff;
use super::spec::PullPolicy;
use super::status::Waiting;
use crate::cri::api::*;
use crate::info;

impl Executor {
    /// Holds container `name` with its back-off and what to show (`w`).
    pub(super) fn hold(job: &mut Job, name: &str, w: Waiting) {
        let prev = job.state.holds.get(name).map(|(b, _)| *b);
        let b = Backoff::next(prev, now_ms() / 1000, Duration::ZERO);
        job.state.holds.insert(name.to_string(), (b, w));
    }

    /// A failed pull: ErrImagePull held with its back-off, the kubelet's Failed event.
    fn pull_failed(&self, job: &mut Job, name: &str, image: &str, message: String) -> PodError {
        let pod = job.pod.clone();
        Self::hold(
            job,
            name,
            Waiting {
                reason: Reason::ErrImagePull,
                message: message.clone(),
            },
        );
        self.event(
            &pod,
            Some(name),
            true,
            Reason::Failed,
            format!("Failed to pull image {image:?}: {message}"),
        );
        PodError::Pull(message)
    }

    /// The image for container `name`, pulled as its policy says; Err holds the container.
    pub(super) fn ensure_image(
        &self,
        job: &mut Job,
        name: &str,
        image: &ImageSpec,
        sandbox: &PodSandboxConfig,
    ) -> Result<(), PodError> {
        let pod = job.pod.clone();
        let Some(spec) = pod.container(name) else {
            return Ok(());
        };
        let present = || {
            self.cri
                .image_status(&ImageStatusRequest {
                    image: Some(image.clone()),
                    verbose: false,
                })
                .map(|r| r.image.is_some())
        };
        let need_pull = match spec.pull_policy() {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present()?,
            PullPolicy::Never => {
                if !present()? {
                    let message = format!(
                        "Container image {:?} is not present with pull policy of Never",
                        spec.image
                    );
                    Self::hold(
                        job,
                        name,
                        Waiting {
                            reason: Reason::ErrImageNeverPull,
                            message: message.clone(),
                        },
                    );
                    self.event(
                        &pod,
                        Some(name),
                        true,
                        Reason::ErrImageNeverPull,
                        message.clone(),
                    );
                    return Err(PodError::NeverPull(message));
                }
                false
            }
        };
        if !need_pull {
            self.event(
                &pod,
                Some(name),
                false,
                Reason::Pulled,
                format!(
                    "Container image {:?} already present on machine",
                    spec.image
                ),
            );
            return Ok(());
        }
        info!("Pulling image {:?} for pod {}", spec.image, pod.key());
        self.event(
            &pod,
            Some(name),
            false,
            Reason::Pulling,
            format!("Pulling image {:?}", spec.image),
        );
        let t0 = Instant::now();
        let limited = self
            .pull_limit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .is_some_and(|b| !b.try_take(t0));
        if limited {
            return Err(self.pull_failed(job, name, &spec.image, "pull QPS exceeded".into()));
        }
        let creds = super::pull::credentials_of(self, &pod, name, &spec.image);
        let _pull = self.pulls.acquire();
        let pull = |auth: Option<AuthConfig>| {
            self.cri.pull_image(&PullImageRequest {
                image: Some(image.clone()),
                auth,
                sandbox_config: Some(sandbox.clone()),
            })
        };
        // Each matching credential in turn, as the kubelet's keyring; none: anonymous.
        let mut result = pull(creds.first().cloned());
        for c in creds.into_iter().skip(1) {
            if result.is_ok() {
                break;
            }
            result = pull(Some(c));
        }
        if let Err(x) = result {
            return Err(self.pull_failed(job, name, &spec.image, x.to_string()));
        }
        self.event(
            &pod,
            Some(name),
            false,
            Reason::Pulled,
            format!(
                "Successfully pulled image {:?} in {:.3}s",
                spec.image,
                t0.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }
}
