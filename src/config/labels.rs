//! Kubernetes name rules for labels, taints and DNS names, and the kubelet's `--node-labels`
//! restrictions on the `kubernetes.io` / `k8s.io` namespaces.

/// DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, at most 253 characters, each label
/// starting and ending with an alphanumeric.
pub fn validate_dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err(format!(
            "{s:?} must be a DNS subdomain of 1 to 253 characters"
        ));
    }
    for label in s.split('.') {
        let ok = !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{s:?} must consist of lower case alphanumeric characters, '-' or '.', and must \
                 start and end with an alphanumeric character"
            ));
        }
    }
    Ok(())
}

fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// A qualified name (`[prefix/]name`), as label keys and taint keys must be.
pub fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        validate_dns_subdomain(p).map_err(|e| format!("key {key:?}: prefix {e}"))?;
    }
    if !is_name_part(name) {
        return Err(format!(
            "key {key:?}: name part must be 1-63 alphanumeric characters, '-', '_' or '.', \
             starting and ending with an alphanumeric character"
        ));
    }
    Ok(())
}

/// A label value: empty, or a name part.
pub fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "value {value:?} must be at most 63 alphanumeric characters, '-', '_' or '.', \
             starting and ending with an alphanumeric character"
        ))
    }
}

/// Labels in the kubernetes.io/k8s.io namespaces that a kubelet may set on its own Node
/// (k8s.io/kubelet/pkg/apis: KubeletLabels, KubeletLabelNamespaces).
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// Whether the kubelet accepts `key` in `--node-labels`.
pub fn node_label_allowed(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return true;
    };
    let restricted = |ns: &str| prefix == ns || prefix.ends_with(&format!(".{ns}"));
    if !restricted("kubernetes.io") && !restricted("k8s.io") {
        return true;
    }
    KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|ns| prefix == *ns || prefix.ends_with(&format!(".{ns}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        assert!(validate_key("node-role.kubernetes.io/edge").is_ok());
        assert!(validate_key("zone").is_ok());
        assert!(validate_key("-bad").is_err());
        assert!(validate_key("Bad_Prefix/x").is_err());
        assert!(validate_key(&"a".repeat(64)).is_err());
        assert!(validate_value("").is_ok());
        assert!(validate_value("v1.2_x").is_ok());
        assert!(validate_value("bad value").is_err());
        assert!(validate_dns_subdomain("cluster.local").is_ok());
        assert!(validate_dns_subdomain("Cluster.local").is_err());
    }

    #[test]
    fn node_label_namespaces() {
        assert!(node_label_allowed("edge"));
        assert!(node_label_allowed("example.com/rack"));
        assert!(node_label_allowed("node.kubernetes.io/instance-type"));
        assert!(node_label_allowed("node.kubernetes.io/anything"));
        assert!(node_label_allowed("topology.kubernetes.io/zone"));
        assert!(!node_label_allowed("node-role.kubernetes.io/master"));
        assert!(!node_label_allowed("kubernetes.io/foo"));
        assert!(!node_label_allowed("sub.k8s.io/foo"));
    }
}
