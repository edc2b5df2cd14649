//! The service environment of containers, as the kubelet builds it: `<NAME>_SERVICE_HOST`,
//! `<NAME>_SERVICE_PORT[_<PORT>]` and the docker-link `<NAME>_PORT...` variables of the
//! `kubernetes` service in `default` (always) and, with `enableServiceLinks` (default true), of
//! every service in the pod's namespace (pkg/kubelet/envvars). The index is a pure value, kept
//! by a list+watch of Services and checkpointed, so pods restored while the API server is away
//! get the same environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kube::Lazy;
use crate::kube::watch::{Event, list_watch};
use crate::stop::Stop;
use crate::warn;

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub name: String,
    pub port: u16,
    pub protocol: String,
}

/// What the environment needs of a service: its cluster IP and ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub cluster_ip: String,
    pub ports: Vec<Port>,
}

impl Service {
    /// From a Service object; None when it has no cluster IP (`None`, empty: headless or
    /// ExternalName) or no port, which the kubelet leaves out.
    pub fn from_object(v: &Value) -> Option<Service> {
        let ip = v["spec"]["clusterIP"].as_str().unwrap_or("");
        if ip.is_empty() || ip == "None" {
            return None;
        }
        let ports: Vec<Port> = v["spec"]["ports"]
            .as_array()?
            .iter()
            .filter_map(|p| {
                Some(Port {
                    name: p["name"].as_str().unwrap_or("").to_string(),
                    port: u16::try_from(p["port"].as_u64()?).ok()?,
                    protocol: p["protocol"].as_str().unwrap_or("TCP").to_string(),
                })
            })
            .collect();
        (!ports.is_empty()).then(|| Service {
            cluster_ip: ip.to_string(),
            ports,
        })
    }
}

/// The services by namespace and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub services: BTreeMap<String, BTreeMap<String, Service>>,
}

/// `my-svc` -> `MY_SVC`.
fn var_name(s: &str) -> String {
    s.to_ascii_uppercase().replace('-', "_")
}

impl Index {
    pub fn set(&mut self, ns: &str, name: &str, svc: Option<Service>) {
        match svc {
            Some(s) => {
                self.services
                    .entry(ns.to_string())
                    .or_default()
                    .insert(name.to_string(), s);
            }
            None => {
                if let Some(m) = self.services.get_mut(ns) {
                    m.remove(name);
                }
            }
        }
    }

    /// The service variables of a container in namespace `ns`, in the kubelet's order (each
    /// service's host, port, named ports, then its link variables).
    pub fn env(&self, ns: &str, service_links: bool) -> Vec<(String, String)> {
        let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
        if service_links && let Some(m) = self.services.get(ns) {
            for (name, s) in m {
                chosen.insert(name, s);
            }
        }
        // The API server's own service, even without service links (and a service of the
        // same name in the pod's namespace takes precedence).
        if let Some(s) = self
            .services
            .get("default")
            .and_then(|m| m.get("kubernetes"))
        {
            chosen.entry("kubernetes").or_insert(s);
        }
        let mut out = Vec::new();
        for (name, s) in chosen {
            let prefix = var_name(name);
            let Some(first) = s.ports.first() else {
                continue;
            };
            out.push((format!("{prefix}_SERVICE_HOST"), s.cluster_ip.clone()));
            out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
            for p in s.ports.iter().filter(|p| !p.name.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", var_name(&p.name)),
                    p.port.to_string(),
                ));
            }
            for (i, p) in s.ports.iter().enumerate() {
                let proto = p.protocol.to_ascii_lowercase();
                let host_port = if s.cluster_ip.contains(':') {
                    format!("[{}]:{}", s.cluster_ip, p.port)
                } else {
                    format!("{}:{}", s.cluster_ip, p.port)
                };
                if i == 0 {
                    out.push((format!("{prefix}_PORT"), format!("{proto}://{host_port}")));
                }
                let pp = format!(
                    "{prefix}_PORT_{}_{}",
                    p.port,
                    p.protocol.to_ascii_uppercase()
                );
                out.push((pp.clone(), format!("{proto}://{host_port}")));
                out.push((format!("{pp}_PROTO"), proto.clone()));
                out.push((format!("{pp}_PORT"), p.port.to_string()));
                out.push((format!("{pp}_ADDR"), s.cluster_ip.clone()));
            }
        }
        out
    }
}

/// The shared index: `None` until the services were read once (from the API server or the
/// checkpoint of an earlier run).
pub type Services = Arc<RwLock<Option<Index>>>;

/// `<root-dir>/services.json`: the index of the last run.
pub fn checkpoint_path(root_dir: &Path) -> PathBuf {
    root_dir.join("services.json")
}

/// The checkpointed index, if there is one (a damaged one is ignored, with a warning).
pub fn load(root_dir: &Path) -> Option<Index> {
    let p = checkpoint_path(root_dir);
    let bytes = std::fs::read(&p).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(i) => Some(i),
        Err(e) => {
            warn!("ignoring the services checkpoint {}: {e}", p.display());
            None
        }
    }
}

fn save(root_dir: &Path, index: &Index) {
    let p = checkpoint_path(root_dir);
    let tmp = p.with_extension("json.tmp");
    let written = serde_json::to_vec(index)
        .map_err(|e| e.to_string())
        .and_then(|b| std::fs::write(&tmp, b).map_err(|e| e.to_string()))
        .and_then(|()| std::fs::rename(&tmp, &p).map_err(|e| e.to_string()));
    if let Err(e) = written {
        warn!("writing the services checkpoint {}: {e}", p.display());
    }
}

fn key(v: &Value) -> (String, String) {
    (
        v["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        v["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

/// Lists and watches every Service, keeping `services` (and its checkpoint in `root_dir`) up
/// to date; runs until stopped.
pub fn run(client: &Lazy, services: &Services, root_dir: &Path, stop: &Stop) {
    while !stop.is_stopped() {
        let Ok(c) = client.get() else {
            if stop.sleep(Duration::from_secs(1)) {
                return;
            }
            continue;
        };
        let result = list_watch(&c, "/api/v1/services", "", Duration::from_secs(300), |ev| {
            let mut guard = services.write().unwrap_or_else(|p| p.into_inner());
            let index = guard.get_or_insert_with(Index::default);
            let before = index.clone();
            match ev {
                Event::Listed(items) => {
                    *index = Index::default();
                    for v in &items {
                        let (ns, name) = key(v);
                        index.set(&ns, &name, Service::from_object(v));
                    }
                }
                Event::Added(v) | Event::Modified(v) => {
                    let (ns, name) = key(&v);
                    index.set(&ns, &name, Service::from_object(&v));
                }
                Event::Deleted(v) => {
                    let (ns, name) = key(&v);
                    index.set(&ns, &name, None);
                }
            }
            if *index != before {
                save(root_dir, index);
            }
            !stop.is_stopped()
        });
        if let Err(e) = result {
            warn!("watching services: {e}; retrying in 5s");
            client.forget();
            if stop.sleep(Duration::from_secs(5)) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ip: &str, ports: Value) -> Option<Service> {
        Service::from_object(&json!({"spec": {"clusterIP": ip, "ports": ports}}))
    }

    /// The kubelet's variables (pkg/kubelet/envvars FromServices), for the kubernetes service
    /// and a two-port service of the pod's namespace.
    #[test]
    fn variables_as_the_kubelet_makes_them() {
        let mut i = Index::default();
        i.set(
            "default",
            "kubernetes",
            svc(
                "10.96.0.1",
                json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
            ),
        );
        i.set(
            "shop",
            "cart-db",
            svc(
                "10.96.7.7",
                json!([{"port": 5432}, {"name": "metrics", "port": 9187, "protocol": "UDP"}]),
            ),
        );
        i.set("shop", "headless", svc("None", json!([{"port": 80}])));
        let env = i.env("shop", true);
        let want: Vec<(String, String)> = [
            ("CART_DB_SERVICE_HOST", "10.96.7.7"),
            ("CART_DB_SERVICE_PORT", "5432"),
            ("CART_DB_SERVICE_PORT_METRICS", "9187"),
            ("CART_DB_PORT", "tcp://10.96.7.7:5432"),
            ("CART_DB_PORT_5432_TCP", "tcp://10.96.7.7:5432"),
            ("CART_DB_PORT_5432_TCP_PROTO", "tcp"),
            ("CART_DB_PORT_5432_TCP_PORT", "5432"),
            ("CART_DB_PORT_5432_TCP_ADDR", "10.96.7.7"),
            ("CART_DB_PORT_9187_UDP", "udp://10.96.7.7:9187"),
            ("CART_DB_PORT_9187_UDP_PROTO", "udp"),
            ("CART_DB_PORT_9187_UDP_PORT", "9187"),
            ("CART_DB_PORT_9187_UDP_ADDR", "10.96.7.7"),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, want);
        // Without service links: only the API server's service.
        let only = i.env("shop", false);
        assert!(
            only.iter().all(|(k, _)| k.starts_with("KUBERNETES_")),
            "{only:?}"
        );
        assert_eq!(only.len(), 8);
        // Deleted: gone.
        i.set("shop", "cart-db", None);
        assert_eq!(i.env("shop", true).len(), 8);
    }

    #[test]
    fn ipv6_cluster_ips_are_bracketed() {
        let mut i = Index::default();
        i.set(
            "default",
            "kubernetes",
            svc("fd00::1", json!([{"name": "https", "port": 443}])),
        );
        let env = i.env("x", true);
        assert!(env.contains(&("KUBERNETES_PORT".into(), "tcp://[fd00::1]:443".into())));
    }
}
