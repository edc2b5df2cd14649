//! A pod's name resolution as the kubelet sets it up: resolv.conf as CRI's DnsConfig from
//! `dnsPolicy` (ClusterFirst, ClusterFirstWithHostNet, Default, None), `dnsConfig`,
//! `clusterDNS`, `clusterDomain` and the host's `resolvConf`; and the managed /etc/hosts (the
//! pod's IPs under its hostname and subdomain, `hostAliases`).

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

/// The kubelet's managed /etc/hosts for `pod` with IPs `ips`. `host_hosts`: the node's
/// /etc/hosts, which a hostNetwork pod gets instead of the generated entries.
pub fn hosts_file(pod: &Pod, ips: &[String], cluster_domain: &str, host_hosts: &str) -> String {
    let spec = &pod.raw["spec"];
    let mut out = String::new();
    if pod.spec.host_network {
        out.push_str("# Kubernetes-managed hosts file (host network).\n");
        out.push_str(host_hosts);
        if !host_hosts.is_empty() && !host_hosts.ends_with('\n') {
            out.push('\n');
        }
    } else {
        out.push_str(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        let name = hostname(pod);
        let sub = spec["subdomain"].as_str().unwrap_or("");
        for ip in ips {
            if sub.is_empty() {
                out.push_str(&format!("{ip}\t{name}\n"));
            } else {
                let ns = &pod.metadata.namespace;
                out.push_str(&format!(
                    "{ip}\t{name}.{sub}.{ns}.svc.{cluster_domain}\t{name}\n"
                ));
            }
        }
    }
    let aliases = spec["hostAliases"].as_array().cloned().unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names: Vec<&str> = a["hostnames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.push_str(&format!(
                "{}\t{}\n",
                a["ip"].as_str().unwrap_or(""),
                names.join("\t")
            ));
        }
    }
    out
}

/// The pod's hostname: `spec.hostname`, or its name, cut to 63 characters and then of any
/// trailing `-` or `.`, as the kubelet's truncatePodHostnameIfNeeded (a pod's name may be
/// 253 long; a hostname may not: runc refuses it).
pub fn hostname(pod: &Pod) -> String {
    let name = if pod.spec.hostname.is_empty() {
        &pod.metadata.name
    } else {
        &pod.spec.hostname
    };
    if name.len() <= 63 {
        return name.clone();
    }
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_string()
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

    /// The suite's termination-message pod is named past 63 characters: its hostname is cut.
    #[test]
    fn hostnames_are_cut_to_63() {
        let mut p = pod(json!({}));
        assert_eq!(hostname(&p), "p");
        p.metadata.name = format!("{}-.{}", "a".repeat(61), "b".repeat(30));
        assert_eq!(
            hostname(&p),
            "a".repeat(61),
            "63 characters, then the trailing '-' gone"
        );
        p.metadata.name = "c".repeat(70);
        assert_eq!(hostname(&p).len(), 63);
        p.spec.hostname = "web-0".into();
        assert_eq!(hostname(&p), "web-0");
    }

    #[test]
    fn managed_hosts_files() {
        let p = pod(json!({"hostname": "web-0", "subdomain": "web",
            "hostAliases": [{"ip": "192.0.2.7", "hostnames": ["foo.local", "bar.local"]}]}));
        let h = hosts_file(&p, &["10.1.2.3".into()], "cluster.local", "");
        assert!(
            h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"),
            "{h}"
        );
        assert!(
            h.contains("\n10.1.2.3\tweb-0.web.shop.svc.cluster.local\tweb-0\n"),
            "{h}"
        );
        assert!(
            h.ends_with("\n# Entries added by HostAliases.\n192.0.2.7\tfoo.local\tbar.local\n"),
            "{h}"
        );
        let plain = hosts_file(&pod(json!({})), &["10.1.2.4".into()], "cluster.local", "");
        assert!(
            plain.ends_with("fe00::2\tip6-allrouters\n10.1.2.4\tp\n"),
            "{plain}"
        );
        let host = hosts_file(
            &pod(json!({"hostNetwork": true})),
            &[],
            "cluster.local",
            "127.0.0.1 localhost\n10.0.0.1 node1",
        );
        assert_eq!(
            host,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n10.0.0.1 node1\n"
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
