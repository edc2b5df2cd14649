//! The Node: its addresses (`--node-ip`, else a concrete `address`, else the default-route
//! interface's IP, read with an injected /proc root) and the modules that register it, report its
//! status and keep its lease.

pub mod agent;
pub mod host;
pub mod startup;
pub mod status;

use std::net::IpAddr;
use std::path::Path;

/// The interface of the IPv4 default route, from `<proc>/net/route`.
pub fn default_route_interface(proc_root: &Path) -> Option<String> {
    let table = std::fs::read_to_string(proc_root.join("net/route")).ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Iface Destination Gateway Flags ... ; RTF_UP = 0x1
        let up = f
            .get(3)
            .and_then(|x| u32::from_str_radix(x, 16).ok())
            .is_some_and(|fl| fl & 1 == 1);
        (f.len() > 3 && f[1] == "00000000" && up).then(|| f[0].to_string())
    })
}

/// The IPv4 addresses of `iface`.
fn interface_ipv4(iface: &str) -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| a.interface_name == iface)
        .filter_map(|a| {
            a.address
                .and_then(|s| s.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())))
        })
        .collect()
}

/// The node's InternalIPs, as the kubelet picks them: `--node-ip`, else `address` from the config
/// when it is a concrete IP, else the default-route interface's first IPv4 address.
pub fn node_ips(flag_ips: &[IpAddr], config_address: IpAddr, proc_root: &Path) -> Vec<IpAddr> {
    if !flag_ips.is_empty() {
        return flag_ips.to_vec();
    }
    if !config_address.is_unspecified() && !config_address.is_loopback() {
        return vec![config_address];
    }
    default_route_interface(proc_root)
        .map(|i| interface_ipv4(&i))
        .and_then(|v| v.into_iter().next())
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_from_fixture() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("net")).unwrap_or_default();
        std::fs::write(
            dir.path().join("net/route"),
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth1\t0010A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
             eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
        )
        .unwrap_or_default();
        assert_eq!(default_route_interface(dir.path()).as_deref(), Some("eth0"));
        let ip: IpAddr = "10.0.0.5".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(
            node_ips(&[ip], IpAddr::from([0, 0, 0, 0]), dir.path()),
            [ip]
        );
        assert_eq!(node_ips(&[], ip, dir.path()), [ip]);
        assert_eq!(default_route_interface(Path::new("/nonexistent")), None);
    }
}
