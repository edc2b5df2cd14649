//! Command-line flags with the kubelet's spelling (`--flag=value`, `--flag value`), including the
//! flags newer kubelets removed, which are accepted with a warning naming their replacement.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::kubelet::{RuntimeEndpoint, Taint, TaintEffect};
use super::labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Run,
    CheckConfig,
    Version,
    Help,
}

/// Parsed flags. `None` means "not given": the config file or the default decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Flags {
    pub command: Command,
    pub config: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub bootstrap_kubeconfig: Option<PathBuf>,
    pub cert_dir: PathBuf,
    pub root_dir: PathBuf,
    pub hostname_override: Option<String>,
    pub node_ip: Vec<IpAddr>,
    pub node_labels: BTreeMap<String, String>,
    pub register_with_taints: Option<Vec<Taint>>,
    pub container_runtime_endpoint: Option<RuntimeEndpoint>,
    pub volume_plugin_dir: Option<String>,
    pub verbosity: Option<u8>,
    /// `--config-dir`: drop-in `*.conf` files decoded over `--config`, in name order.
    pub config_dir: Option<PathBuf>,
    /// Config flags given (`--max-pods=220`, ...): (flag, value text), applied over the files.
    pub config_flags: Vec<(String, String)>,
    /// One line per removed, deprecated or ineffective flag that was given.
    pub warnings: Vec<String>,
    /// The flags as given (name, value), for the `FLAG:` lines logged at --v=1.
    pub given: Vec<(String, String)>,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            command: Command::Run,
            config: None,
            kubeconfig: None,
            bootstrap_kubeconfig: None,
            cert_dir: PathBuf::from("/var/lib/kubelet/pki"),
            root_dir: PathBuf::from("/var/lib/kubelet"),
            hostname_override: None,
            node_ip: Vec::new(),
            node_labels: BTreeMap::new(),
            register_with_taints: None,
            container_runtime_endpoint: None,
            volume_plugin_dir: None,
            verbosity: None,
            config_dir: None,
            config_flags: Vec::new(),
            warnings: Vec::new(),
            given: Vec::new(),
        }
    }
}

/// Flags that kubelets no longer have: (name, takes a value, what to do instead).
pub const REMOVED: &[(&str, bool, &str)] = &[
    (
        "network-plugin",
        true,
        "removed in Kubernetes 1.24 with dockershim; the container runtime (containerd) sets up CNI from its own config",
    ),
    (
        "cni-conf-dir",
        true,
        "removed in Kubernetes 1.24; set conf_dir in containerd's [plugins.\"io.containerd.grpc.v1.cri\".cni] section",
    ),
    (
        "cni-bin-dir",
        true,
        "removed in Kubernetes 1.24; set bin_dir in containerd's [plugins.\"io.containerd.grpc.v1.cri\".cni] section",
    ),
    (
        "cni-cache-dir",
        true,
        "removed in Kubernetes 1.24; containerd's CNI plugin keeps its own cache",
    ),
    (
        "container-runtime",
        true,
        "removed in Kubernetes 1.27; every runtime is remote now: use --container-runtime-endpoint",
    ),
    (
        "image-pull-progress-deadline",
        true,
        "removed in Kubernetes 1.24; set image_pull_progress_timeout in containerd's CRI config",
    ),
    (
        "pod-infra-container-image",
        true,
        "deprecated since Kubernetes 1.27; the sandbox image is containerd's sandbox_image setting",
    ),
    (
        "logtostderr",
        false,
        "removed in Kubernetes 1.26 (klog flags); tinylet always logs to stderr",
    ),
    (
        "alsologtostderr",
        false,
        "removed in Kubernetes 1.26 (klog flags); tinylet always logs to stderr",
    ),
    (
        "log-dir",
        true,
        "removed in Kubernetes 1.26 (klog flags); redirect stderr (journald does) instead",
    ),
    (
        "log-file",
        true,
        "removed in Kubernetes 1.26 (klog flags); redirect stderr (journald does) instead",
    ),
];

/// The supported flags: (name, takes a value, help).
pub const SUPPORTED: &[(&str, bool, &str)] = &[
    (
        "config",
        true,
        "KubeletConfiguration file (kubelet.config.k8s.io/v1beta1)",
    ),
    (
        "kubeconfig",
        true,
        "kubeconfig for the API server; written after TLS bootstrap",
    ),
    (
        "bootstrap-kubeconfig",
        true,
        "kubeconfig with a bootstrap token, used when --kubeconfig does not exist yet",
    ),
    (
        "cert-dir",
        true,
        "directory for the client and serving certificates (default /var/lib/kubelet/pki)",
    ),
    (
        "root-dir",
        true,
        "directory for the agent's state (default /var/lib/kubelet)",
    ),
    (
        "hostname-override",
        true,
        "node name to use instead of the hostname",
    ),
    (
        "node-ip",
        true,
        "IP address(es) of the node, comma-separated (at most one per family)",
    ),
    (
        "node-labels",
        true,
        "labels to add when registering the node: key=value,...",
    ),
    (
        "register-with-taints",
        true,
        "taints to register the node with: key=value:Effect,... (overrides registerWithTaints)",
    ),
    (
        "container-runtime-endpoint",
        true,
        "CRI socket, unix:///path (overrides containerRuntimeEndpoint)",
    ),
    (
        "volume-plugin-dir",
        true,
        "flexvolume plugin directory (overrides volumePluginDir)",
    ),
    (
        "config-dir",
        true,
        "drop-in directory: its *.conf KubeletConfiguration files apply over --config, in name order",
    ),
    ("v", true, "log verbosity (overrides logging.verbosity)"),
    ("version", false, "print the version and exit"),
    ("help", false, "print this help and exit"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct FlagError {
    /// `flag --name` or `argument "x"`.
    pub what: String,
    pub message: String,
}

fn err(flag: &str, message: impl Into<String>) -> FlagError {
    FlagError {
        what: format!("flag --{flag}"),
        message: message.into(),
    }
}

/// Parses the arguments after the program name. All problems are returned, not just the first.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Flags, Vec<FlagError>> {
    let mut f = Flags::default();
    let mut errors = Vec::new();
    let mut args = args.into_iter().peekable();
    let mut positional_seen = false;
    while let Some(arg) = args.next() {
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|b| !b.is_empty())
        else {
            if arg == "check-config" && !positional_seen && f.given.is_empty() {
                f.command = Command::CheckConfig;
                positional_seen = true;
            } else {
                errors.push(FlagError {
                    what: format!("argument {arg:?}"),
                    message: "unexpected (tinylet takes flags and the `check-config` command only)"
                        .into(),
                });
            }
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let name = match name {
            "h" => "help",
            other => other,
        };
        if let Some((_, takes_value, instead)) = REMOVED.iter().find(|(n, _, _)| *n == name) {
            let value = if *takes_value {
                inline.or_else(|| args.next())
            } else {
                inline
            };
            f.warnings.push(format!(
                "flag --{name}{} is not supported: {instead}; ignoring it",
                value.map(|v| format!("={v}")).unwrap_or_default()
            ));
            continue;
        }
        if let Some((_, takes_value, why)) = super::config_flags::NO_EFFECT
            .iter()
            .find(|(n, _, _)| *n == name)
        {
            let value = if *takes_value {
                inline.or_else(|| args.next())
            } else {
                inline
            };
            f.warnings.push(format!(
                "flag --{name}{} has no effect in tinylet: {why}",
                value.map(|v| format!("={v}")).unwrap_or_default()
            ));
            continue;
        }
        if let Some((_, kind, deprecated)) = super::config_flags::find(name) {
            let value = match (kind, inline) {
                (super::config_flags::Kind::Bool, v) => v.unwrap_or_else(|| "true".into()),
                (_, Some(v)) => v,
                (_, None) => match args.next() {
                    Some(v) => v,
                    None => {
                        errors.push(err(name, "needs a value"));
                        continue;
                    }
                },
            };
            if deprecated {
                f.warnings.push(format!(
                    "Flag --{name} has been deprecated, {}",
                    super::config_flags::DEPRECATED
                ));
            }
            f.given.push((name.to_string(), value.clone()));
            f.config_flags.push((name.to_string(), value));
            continue;
        }
        let Some((_, takes_value, _)) = SUPPORTED.iter().find(|(n, _, _)| *n == name) else {
            errors.push(err(name, "unknown flag (see --help)"));
            continue;
        };
        let value = if *takes_value {
            match inline.or_else(|| args.next()) {
                Some(v) => v,
                None => {
                    errors.push(err(name, "needs a value"));
                    continue;
                }
            }
        } else {
            match inline.as_deref() {
                None | Some("true") => "true".to_string(),
                Some("false") => "false".to_string(),
                Some(other) if name == "version" && other == "raw" => "raw".to_string(),
                Some(other) => {
                    errors.push(err(name, format!("{other:?} is not a boolean")));
                    continue;
                }
            }
        };
        f.given.push((name.to_string(), value.clone()));
        if let Err(e) = apply(&mut f, name, &value) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(f)
    } else {
        Err(errors)
    }
}

fn non_empty(name: &str, value: &str) -> Result<String, FlagError> {
    if value.is_empty() {
        Err(err(name, "must not be empty"))
    } else {
        Ok(value.to_string())
    }
}

fn apply(f: &mut Flags, name: &str, value: &str) -> Result<(), FlagError> {
    match name {
        "config" => f.config = Some(non_empty(name, value)?.into()),
        "kubeconfig" => f.kubeconfig = Some(non_empty(name, value)?.into()),
        "bootstrap-kubeconfig" => f.bootstrap_kubeconfig = Some(non_empty(name, value)?.into()),
        "cert-dir" => f.cert_dir = non_empty(name, value)?.into(),
        "root-dir" => f.root_dir = non_empty(name, value)?.into(),
        "hostname-override" => {
            let n = value.trim().to_ascii_lowercase();
            labels::validate_dns_subdomain(&n).map_err(|e| err(name, e))?;
            f.hostname_override = Some(n);
        }
        "node-ip" => f.node_ip = parse_node_ips(value).map_err(|e| err(name, e))?,
        "node-labels" => {
            for pair in value.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                labels::validate_key(k).map_err(|e| err(name, e))?;
                labels::validate_value(v).map_err(|e| err(name, e))?;
                if !labels::node_label_allowed(k) {
                    return Err(err(
                        name,
                        format!(
                            "unknown 'kubernetes.io' or 'k8s.io' label {k:?}: a node may only set \
                             kubelet.kubernetes.io/*, node.kubernetes.io/* and the well-known \
                             topology/os/arch/instance-type labels on itself"
                        ),
                    ));
                }
                f.node_labels.insert(k.to_string(), v.to_string());
            }
        }
        "register-with-taints" => {
            let taints = value
                .split(',')
                .filter(|t| !t.is_empty())
                .map(parse_taint)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(name, e))?;
            f.register_with_taints = Some(taints);
        }
        "container-runtime-endpoint" => {
            f.container_runtime_endpoint =
                Some(RuntimeEndpoint::parse(value).map_err(|e| err(name, e))?)
        }
        "volume-plugin-dir" => f.volume_plugin_dir = Some(non_empty(name, value)?),
        "config-dir" => f.config_dir = Some(non_empty(name, value)?.into()),
        "v" => {
            f.verbosity = Some(
                value
                    .parse()
                    .map_err(|_| err(name, format!("{value:?} is not a level from 0 to 255")))?,
            )
        }
        "version" => {
            if value != "false" {
                f.command = Command::Version;
            }
        }
        "help" => {
            if value == "true" {
                f.command = Command::Help;
            }
        }
        _ => return Err(err(name, "unknown flag")),
    }
    Ok(())
}

/// `--node-ip`: one address, or two of different families (dual-stack).
fn parse_node_ips(value: &str) -> Result<Vec<IpAddr>, String> {
    let ips = value
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("{s:?} is not an IP address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match ips.as_slice() {
        [_] => Ok(ips),
        [a, b] if a.is_ipv4() != b.is_ipv4() => Ok(ips),
        [_, _] => Err("two addresses must be one IPv4 and one IPv6".into()),
        _ => Err("at most two addresses (one per family)".into()),
    }
}

/// `key=value:Effect` or `key:Effect`, as `--register-with-taints`.
pub fn parse_taint(s: &str) -> Result<Taint, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("taint {s:?}: want key=value:Effect"))?;
    let effect = match effect {
        "NoSchedule" => TaintEffect::NoSchedule,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        other => {
            return Err(format!(
                "taint {s:?}: effect {other:?} must be NoSchedule, PreferNoSchedule or NoExecute"
            ));
        }
    };
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    let t = Taint {
        key: key.into(),
        value: value.into(),
        effect,
        time_added: None,
    };
    t.validate().map_err(|e| format!("taint {s:?}: {e}"))?;
    Ok(t)
}

/// `tinylet --help`.
pub fn help_text() -> String {
    let mut out = String::from(
        "tinylet: a small Kubernetes node agent, drop-in for the kubelet\n\n\
         Usage:\n  tinylet [flags]               run the agent\n  \
         tinylet check-config [flags]  validate the configuration, print it with defaults, exit\n\n\
         Flags:\n",
    );
    for (name, takes_value, help) in SUPPORTED {
        let arg = if *takes_value {
            format!("--{name} value")
        } else {
            format!("--{name}")
        };
        out.push_str(&format!("  {arg:<34} {help}\n"));
    }
    out.push_str("\nAccepted with a warning (removed from the kubelet):\n");
    for (name, _, _) in REMOVED {
        out.push_str(&format!("  --{name}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn seed_unit_flags() {
        let f = parse(args(&[
            "--bootstrap-kubeconfig=/etc/kubernetes/kubelet-bootstrap.kubeconfig",
            "--cert-dir=/etc/kubernetes/cert",
            "--network-plugin=cni",
            "--cni-conf-dir=/etc/cni/net.d",
            "--container-runtime=remote",
            "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
            "--root-dir=/data/k8s/k8s/kubelet",
            "--kubeconfig=/etc/kubernetes/kubelet.kubeconfig",
            "--config=/etc/kubernetes/kubelet-config.yaml",
            "--hostname-override=zhangjun-k8s-01",
            "--image-pull-progress-deadline=15m",
            "--volume-plugin-dir=/data/k8s/k8s/kubelet/kubelet-plugins/volume/exec/",
            "--logtostderr=true",
            "--v=2",
        ]))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(f.command, Command::Run);
        assert_eq!(f.cert_dir, PathBuf::from("/etc/kubernetes/cert"));
        assert_eq!(f.hostname_override.as_deref(), Some("zhangjun-k8s-01"));
        assert_eq!(f.verbosity, Some(2));
        assert_eq!(
            f.container_runtime_endpoint.as_ref().map(|e| e.path()),
            Some("/var/run/containerd/containerd.sock")
        );
        assert_eq!(f.warnings.len(), 5);
        assert!(f.warnings[0].starts_with("flag --network-plugin=cni is not supported"));
        assert!(f.warnings[4].contains("--logtostderr=true"));
    }

    #[test]
    fn space_separated_values_and_check_config() {
        let f = parse(args(&[
            "check-config",
            "--config",
            "/x.yaml",
            "-v",
            "3",
            "--network-plugin",
            "cni",
        ]))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(f.command, Command::CheckConfig);
        assert_eq!(f.config, Some(PathBuf::from("/x.yaml")));
        assert_eq!(f.verbosity, Some(3));
        assert_eq!(f.warnings.len(), 1);
    }

    #[test]
    fn errors_name_the_flag() {
        let e = parse(args(&[
            "--no-such-flag=1",
            "--v=x",
            "--node-ip=1.2.3",
            "stray",
            "--kubeconfig",
        ]))
        .err()
        .unwrap_or_default();
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 5, "{text:?}");
        assert!(text[0].starts_with("flag --no-such-flag: unknown flag"));
        assert!(text[1].starts_with("flag --v:"));
        assert!(text[2].contains("\"1.2.3\" is not an IP address"));
        assert!(text[3].starts_with("argument \"stray\": unexpected"));
        assert_eq!(text[4], "flag --kubeconfig: needs a value");
    }

    #[test]
    fn labels_taints_ips() {
        let f = parse(args(&[
            "--node-labels=edge=true,node.kubernetes.io/site=a",
            "--register-with-taints=dedicated=edge:NoSchedule,gpu:NoExecute",
            "--node-ip=10.0.0.5,fd00::5",
        ]))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(f.node_labels.get("edge").map(String::as_str), Some("true"));
        let t = f.register_with_taints.unwrap_or_default();
        assert_eq!(
            (t[0].key.as_str(), t[0].value.as_str(), t[0].effect),
            ("dedicated", "edge", TaintEffect::NoSchedule)
        );
        assert_eq!(
            (t[1].key.as_str(), t[1].value.as_str(), t[1].effect),
            ("gpu", "", TaintEffect::NoExecute)
        );
        assert_eq!(f.node_ip.len(), 2);
        assert!(parse(args(&["--node-labels=node-role.kubernetes.io/master="])).is_err());
        assert!(parse(args(&["--register-with-taints=a=b:Sometimes"])).is_err());
        assert!(parse(args(&["--node-ip=10.0.0.1,10.0.0.2"])).is_err());
        assert!(parse(args(&["--hostname-override=Bad_Name"])).is_err());
    }
}
