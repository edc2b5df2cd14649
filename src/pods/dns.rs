//! A pod's resolv.conf as CRI's DnsConfig, as the kubelet makes it from `dnsPolicy`
//! (ClusterFirst, ClusterFirstWithHostNet, Default, None), `dnsConfig`, `clusterDNS`,
//! `clusterDomain` and the host's `resolvConf`.

use std::net::IpAddr;

use serde_json::Value;

use super::spec::Pod;
use crate::cri::api::DnsConfig;

/// servers, searches, options of a resolv.conf text.
pub fn parse_resolv_conf(text: &str) -> DnsConfig {
    let mut d = DnsConfig::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => d.servers.extend(words.next().map(String::from)),
            Some("search") | Some("domain") => d.searches = words.map(String::from).collect(),
            Some("options") => d.options.extend(words.map(String::from)),
            _ => {}
        }
    }
    d
}

fn push_unique(list: &mut Vec<String>, v: String) {
    if !list.contains(&v) {
        list.push(v);
    }
}

/// The pod's `dnsConfig` merged into `base`: servers and searches appended (no repeats),
/// options replaced by name.
fn merge(mut base: DnsConfig, extra: &Value) -> DnsConfig {
    for s in extra["nameservers"].as_array().into_iter().flatten() {
        push_unique(&mut base.servers, s.as_str().unwrap_or("").to_string());
    }
    for s in extra["searches"].as_array().into_iter().flatten() {
        push_unique(&mut base.searches, s.as_str().unwrap_or("").to_string());
    }
    for o in extra["options"].as_array().into_iter().flatten() {
        let name = o["name"].as_str().unwrap_or("");
        let text = match o["value"].as_str() {
            Some(v) => format!("{name}:{v}"),
            None => name.to_string(),
        };
        base.options
            .retain(|x| x.split(':').next().unwrap_or("") != name);
        base.options.push(text);
    }
    base.servers.retain(|s| !s.is_empty());
    base.searches.retain(|s| !s.is_empty());
    base
}

/// The DnsConfig for `pod`; None lets the runtime copy the host's resolv.conf (policy Default
/// with nothing to add). `host` reads the node's resolvConf when it is needed.
pub fn config(
    pod: &Pod,
    cluster_dns: &[IpAddr],
    cluster_domain: &str,
    host: &dyn Fn() -> Option<String>,
) -> Option<DnsConfig> {
    let extra = &pod.raw["spec"]["dnsConfig"];
    let policy = pod.spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !pod.spec.host_network,
        _ => false,
    };
    let base = if policy == "None" {
        DnsConfig::default()
    } else if cluster && !cluster_dns.is_empty() {
        let ns = &pod.metadata.namespace;
        let d = cluster_domain;
        let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.to_string()];
        // The host's search domains follow the cluster's, as the kubelet appends them.
        if let Some(h) = host() {
            for s in parse_resolv_conf(&h).searches {
                push_unique(&mut searches, s);
            }
        }
        DnsConfig {
            servers: cluster_dns.iter().map(ToString::to_string).collect(),
            searches,
            options: vec!["ndots:5".into()],
        }
    } else if extra.is_object() {
        parse_resolv_conf(&host().unwrap_or_default())
    } else {
        return None;
    };
    Some(merge(base, extra))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOST: &str = "# generated\nnameserver 192.0.2.53\nnameserver 192.0.2.54 ; second\nsearch corp.example lab.example\noptions edns0 timeout:2\n";

    fn pod(spec: Value) -> Pod {
        let mut s = spec;
        s["containers"] = json!([{"name": "c", "image": "busybox"}]);
        Pod::from_value(
            json!({"metadata": {"name": "p", "namespace": "shop", "uid": "u"}, "spec": s}),
        )
        .unwrap()
    }

    fn host() -> Option<String> {
        Some(HOST.to_string())
    }

    #[test]
    fn policies() {
        let dns: Vec<IpAddr> = vec!["10.96.0.10".parse().unwrap()];
        let c = config(&pod(json!({})), &dns, "cluster.local", &host).unwrap();
        assert_eq!(c.servers, ["10.96.0.10"]);
        assert_eq!(
            c.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "lab.example"
            ]
        );
        assert_eq!(c.options, ["ndots:5"]);
        // Host network: the host's, unless ClusterFirstWithHostNet.
        assert!(
            config(
                &pod(json!({"hostNetwork": true})),
                &dns,
                "cluster.local",
                &host
            )
            .is_none()
        );
        let hn = config(
            &pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"})),
            &dns,
            "cluster.local",
            &host,
        )
        .unwrap();
        assert_eq!(hn.servers, ["10.96.0.10"]);
        // No clusterDNS: ClusterFirst falls back to Default.
        assert!(config(&pod(json!({})), &[], "cluster.local", &host).is_none());
        assert!(
            config(
                &pod(json!({"dnsPolicy": "Default"})),
                &dns,
                "cluster.local",
                &host
            )
            .is_none()
        );
    }

    #[test]
    fn dns_config_merges() {
        let dns: Vec<IpAddr> = vec!["10.96.0.10".parse().unwrap()];
        let extra = json!({"nameservers": ["1.1.1.1", "10.96.0.10"], "searches": ["extra.example"],
                           "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]});
        let c = config(
            &pod(json!({"dnsConfig": extra})),
            &dns,
            "cluster.local",
            &host,
        )
        .unwrap();
        assert_eq!(c.servers, ["10.96.0.10", "1.1.1.1"]);
        assert_eq!(c.searches.last().unwrap(), "extra.example");
        assert_eq!(c.options, ["ndots:2", "edns0"]);
        let none = config(
            &pod(json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["9.9.9.9"]}})),
            &dns,
            "cluster.local",
            &host,
        )
        .unwrap();
        assert_eq!(
            (none.servers, none.searches.len(), none.options.len()),
            (vec!["9.9.9.9".to_string()], 0, 0)
        );
        let d = config(&pod(json!({"dnsPolicy": "Default", "dnsConfig": {"options": [{"name": "timeout", "value": "5"}]}})), &dns, "cluster.local", &host).unwrap();
        assert_eq!(d.servers, ["192.0.2.53", "192.0.2.54"]);
        assert_eq!(d.options, ["edns0", "timeout:5"]);
    }
}
