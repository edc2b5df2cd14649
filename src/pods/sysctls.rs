//! Sysctl admission, as the kubelet's (pkg/kubelet/sysctl): a pod may set the safe sysctls
//! (namespaced and isolated, those the running kernel has) and those `allowedUnsafeSysctls`
//! names (exact or a `prefix*`, each known to be namespaced); never a net.* sysctl with the
//! host's network namespace nor an IPC one with the host's IPC namespace. Anything else is
//! refused at admission with `SysctlForbidden`, before a sandbox is made.

use super::spec::Pod;

/// The kubelet's safe sysctls (1.32) and the kernel release each appeared in.
const SAFE: &[(&str, (u32, u32))] = &[
    ("kernel.shm_rmid_forced", (0, 0)),
    ("net.ipv4.ip_local_port_range", (0, 0)),
    ("net.ipv4.tcp_syncookies", (0, 0)),
    ("net.ipv4.ping_group_range", (0, 0)),
    ("net.ipv4.ip_unprivileged_port_start", (0, 0)),
    ("net.ipv4.ip_local_reserved_ports", (3, 16)),
    ("net.ipv4.tcp_keepalive_time", (4, 5)),
    ("net.ipv4.tcp_fin_timeout", (4, 6)),
    ("net.ipv4.tcp_keepalive_intvl", (4, 5)),
    ("net.ipv4.tcp_keepalive_probes", (4, 5)),
    ("net.ipv4.tcp_rmem", (4, 15)),
    ("net.ipv4.tcp_wmem", (4, 15)),
];

/// The kernel namespace a sysctl lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Ipc,
    Net,
}

impl Namespace {
    fn name(self) -> &'static str {
        match self {
            Namespace::Ipc => "ipc",
            Namespace::Net => "net",
        }
    }
}

/// `kernel/shm_rmid_forced` and `kernel.shm_rmid_forced` are one sysctl (the kubelet's
/// ConvertSysctlVariableToDotsSeparator: the first separator decides).
pub fn dotted(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_string(),
    }
}

/// The namespace of a sysctl or sysctl prefix; None when it is not known to be namespaced.
pub fn namespace_of(name: &str) -> Option<Namespace> {
    if name == "kernel.sem" {
        return Some(Namespace::Ipc);
    }
    [
        ("kernel.shm", Namespace::Ipc),
        ("kernel.msg", Namespace::Ipc),
        ("fs.mqueue.", Namespace::Ipc),
        ("net.", Namespace::Net),
    ]
    .iter()
    .find(|(p, _)| name.starts_with(p))
    .map(|(_, ns)| *ns)
}

/// An `allowedUnsafeSysctls` entry: a sysctl or a `prefix*` that is known to be namespaced.
pub fn check_pattern(p: &str) -> Result<(), String> {
    let segment = |s: &str| {
        let b = s.as_bytes();
        let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        b.first().is_some_and(|c| edge(*c))
            && b.last().is_some_and(|c| edge(*c))
            && b.iter().all(|c| edge(*c) || *c == b'-' || *c == b'_')
    };
    let (body, star) = p.strip_suffix('*').map_or((p, false), |b| (b, true));
    let segs: Vec<&str> = body.split(['.', '/']).collect();
    let valid = p.len() <= 253
        && match segs.split_last() {
            // `net.*` ends in a separator; `kernel.msg*` in part of a segment.
            Some((last, init)) if star => {
                init.iter().all(|s| segment(s))
                    && ((last.is_empty() && !init.is_empty()) || segment(last))
            }
            _ => segs.iter().all(|s| segment(s)),
        };
    if !valid {
        return Err(format!(
            "sysctl {p:?} must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\*)?$"
        ));
    }
    let d = dotted(p);
    let name = d.strip_suffix('*').unwrap_or(&d);
    if namespace_of(name).is_none() {
        return Err(format!("the sysctl {p:?} is not known to be namespaced"));
    }
    Ok(())
}

/// The `(major, minor)` of a kernel release (`6.1.0-18-amd64` -> (6, 1)).
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What pods may set on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    exact: Vec<(String, Namespace)>,
    prefixes: Vec<(String, Namespace)>,
}

impl Allowlist {
    /// The safe sysctls the kernel `release` has, plus `allowed_unsafe` (checked as the
    /// configuration is: see [`check_pattern`]).
    pub fn new(allowed_unsafe: &[String], release: &str) -> Result<Allowlist, String> {
        let kernel = kernel_version(release);
        let mut a = Allowlist::default();
        let safe = SAFE
            .iter()
            .filter(|(_, since)| kernel.is_some_and(|k| k >= *since) || *since == (0, 0))
            .map(|(n, _)| n.to_string());
        for p in safe.chain(allowed_unsafe.iter().cloned()) {
            check_pattern(&p)?;
            let d = dotted(&p);
            match d.strip_suffix('*') {
                Some(prefix) => {
                    let ns = namespace_of(prefix).unwrap_or(Namespace::Net);
                    a.prefixes.push((prefix.to_string(), ns));
                }
                None => {
                    let ns = namespace_of(&d).unwrap_or(Namespace::Net);
                    a.exact.push((d, ns));
                }
            }
        }
        Ok(a)
    }

    fn check(&self, name: &str, host_net: bool, host_ipc: bool) -> Result<(), String> {
        let name = dotted(name);
        let ns = self
            .exact
            .iter()
            .find(|(n, _)| *n == name)
            .or_else(|| {
                self.prefixes
                    .iter()
                    .find(|(p, _)| name.starts_with(p.as_str()))
            })
            .map(|(_, ns)| *ns)
            .ok_or_else(|| format!("{name:?} not allowlisted"))?;
        if (ns == Namespace::Ipc && host_ipc) || (ns == Namespace::Net && host_net) {
            return Err(format!(
                "{name:?} not allowed with host {} enabled",
                ns.name()
            ));
        }
        Ok(())
    }

    /// Admits the pod's sysctls, or the kubelet's rejection.
    pub fn admit(&self, pod: &Pod) -> Result<(), super::admit::Rejection> {
        let spec = &pod.raw["spec"];
        let (net, ipc) = (spec["hostNetwork"] == true, spec["hostIPC"] == true);
        for s in spec["securityContext"]["sysctls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = s["name"].as_str().unwrap_or("");
            if let Err(why) = self.check(name, net, ipc) {
                return Err((
                    "SysctlForbidden".into(),
                    format!("Pod was rejected: forbidden sysctl: {why}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(sysctls: &[&str], host_net: bool) -> Pod {
        let list: Vec<_> = sysctls
            .iter()
            .map(|n| json!({"name": n, "value": "1"}))
            .collect();
        Pod::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"hostNetwork": host_net, "securityContext": {"sysctls": list},
                     "containers": [{"name": "c", "image": "x:1"}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn safe_unsafe_and_host_namespaces() {
        let a = Allowlist::new(
            &["kernel.shm*".into(), "net.core.somaxconn".into()],
            "6.1.0-18-amd64",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let message = |p: Pod| a.admit(&p).err().map(|(r, m)| format!("{r}: {m}"));
        assert_eq!(
            message(pod(
                &["net.ipv4.tcp_keepalive_time", "kernel.shm_rmid_forced"],
                false
            )),
            None
        );
        assert_eq!(
            message(pod(&["kernel/shmmni", "net.core.somaxconn"], false)),
            None
        );
        assert_eq!(
            message(pod(&["kernel.msgmax"], false)).as_deref(),
            Some(
                "SysctlForbidden: Pod was rejected: forbidden sysctl: \"kernel.msgmax\" not allowlisted"
            )
        );
        assert_eq!(
            message(pod(&["net.ipv4.ip_local_port_range"], true)).as_deref(),
            Some(
                "SysctlForbidden: Pod was rejected: forbidden sysctl: \"net.ipv4.ip_local_port_range\" not allowed with host net enabled"
            )
        );
        // Old kernels lack the newer safe sysctls.
        let old = Allowlist::new(&[], "4.4.0").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            old.admit(&pod(&["net.ipv4.tcp_keepalive_time"], false))
                .is_err()
        );
        assert!(old.admit(&pod(&["net.ipv4.tcp_syncookies"], false)).is_ok());
    }

    #[test]
    fn patterns_are_checked_as_the_kubelet() {
        assert!(check_pattern("kernel.msg*").is_ok());
        assert!(check_pattern("net.ipv4.tcp_mem").is_ok());
        assert!(check_pattern("net/ipv4/tcp_mem").is_ok());
        assert_eq!(
            check_pattern("vm.swappiness"),
            Err("the sysctl \"vm.swappiness\" is not known to be namespaced".into())
        );
        assert!(check_pattern("Kernel.Msg*").is_err());
        assert!(check_pattern("kernel..msg").is_err());
        assert!(check_pattern("net.*").is_ok());
        assert!(check_pattern("*").is_err());
        assert_eq!(
            dotted("net/ipv4/conf/eth0.100/forwarding"),
            "net.ipv4.conf.eth0/100.forwarding"
        );
    }
}
