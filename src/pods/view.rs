//! What the 10250 API reads of the pods the agent runs: a typed view the owner publishes (the
//! pod's names and uid, its containers by the spec, each container's current state and
//! runtime ids) beside the API object served on `/pods`.

use serde_json::Value;

/// A container's state, as its status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting(String),
    Running,
    Terminated,
}

/// One container of a pod (app, init or ephemeral), as the pod's status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub state: State,
    /// The runtime id of the container the status is about.
    pub id: Option<String>,
    /// The runtime id in the terminated state (when it is terminated).
    pub terminated_id: Option<String>,
    /// The runtime id of the previous attempt (lastState.terminated).
    pub last_terminated_id: Option<String>,
    pub restart_count: u32,
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The names of its containers in the spec (app, init, ephemeral).
    pub spec_containers: Vec<String>,
    pub containers: Vec<ContainerView>,
    /// The API object with the latest status, as `/pods` serves it.
    pub object: Value,
    /// The runtime id of its newest sandbox (the network stats read its netns).
    pub sandbox: Option<String>,
    /// That sandbox's image ("" when the runtime does not say).
    pub sandbox_image: String,
}

/// `containerd://<id>` -> `<id>`.
fn runtime_id(v: &Value) -> Option<String> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .and_then(|s| s.split_once("://").map(|(_, id)| id.to_string()))
}

impl ContainerView {
    fn from_status(s: &Value) -> ContainerView {
        let st = &s["state"];
        let state = if st["running"].is_object() {
            State::Running
        } else if st["terminated"].is_object() {
            State::Terminated
        } else {
            State::Waiting(st["waiting"]["reason"].as_str().unwrap_or("").to_string())
        };
        ContainerView {
            name: s["name"].as_str().unwrap_or("").to_string(),
            state,
            id: runtime_id(&s["containerID"]),
            terminated_id: runtime_id(&st["terminated"]["containerID"]),
            last_terminated_id: runtime_id(&s["lastState"]["terminated"]["containerID"]),
            restart_count: s["restartCount"].as_u64().unwrap_or(0) as u32,
        }
    }
}

impl PodView {
    /// The view of an API pod object (with its status).
    pub fn of(object: Value) -> PodView {
        let m = &object["metadata"];
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        let lists = ["containers", "initContainers", "ephemeralContainers"];
        let spec_containers = lists
            .iter()
            .flat_map(|k| object["spec"][k].as_array().into_iter().flatten())
            .map(|c| text(&c["name"]))
            .collect();
        let containers = [
            "containerStatuses",
            "initContainerStatuses",
            "ephemeralContainerStatuses",
        ]
        .iter()
        .flat_map(|k| object["status"][k].as_array().into_iter().flatten())
        .map(ContainerView::from_status)
        .collect();
        PodView {
            namespace: text(&m["namespace"]),
            name: text(&m["name"]),
            uid: text(&m["uid"]),
            spec_containers,
            containers,
            object,
            sandbox: None,
            sandbox_image: String::new(),
        }
    }

    pub fn container(&self, name: &str) -> Option<&ContainerView> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Any of its containers runs.
    pub fn running(&self) -> bool {
        self.containers.iter().any(|c| c.state == State::Running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn views_of_app_and_init_containers() {
        let v = PodView::of(json!({
            "metadata": {"namespace": "ns", "name": "p", "uid": "u"},
            "spec": {"initContainers": [{"name": "mk"}], "containers": [{"name": "app"}]},
            "status": {
                "initContainerStatuses": [{"name": "mk", "restartCount": 0,
                    "state": {"terminated": {"containerID": "containerd://i1", "exitCode": 0}}}],
                "containerStatuses": [{"name": "app", "restartCount": 2, "containerID": "containerd://c3",
                    "state": {"running": {}}, "lastState": {"terminated": {"containerID": "containerd://c2"}}}],
            }
        }));
        assert_eq!(
            (v.namespace.as_str(), v.name.as_str(), v.uid.as_str()),
            ("ns", "p", "u")
        );
        assert_eq!(v.spec_containers, ["app", "mk"]);
        assert!(v.running());
        let app = v.container("app").unwrap_or_else(|| panic!("app"));
        assert_eq!(
            (app.id.as_deref(), app.last_terminated_id.as_deref()),
            (Some("c3"), Some("c2"))
        );
        assert_eq!(app.restart_count, 2);
        let mk = v.container("mk").unwrap_or_else(|| panic!("mk"));
        assert_eq!(
            (&mk.state, mk.terminated_id.as_deref()),
            (&State::Terminated, Some("i1"))
        );
    }
}
