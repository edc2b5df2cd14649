//! Network figures of a network namespace, from `<proc>/<pid>/net/dev` of a process in it (a
//! pod's sandbox, or PID 1 for the node), as cAdvisor reads them: loopback, veth, docker and
//! nerdctl devices left out.

use std::path::Path;

use super::cgroup::StatsError;

/// One interface's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// cAdvisor's `ignoredDevicePrefixes`.
const IGNORED: &[&str] = &["lo", "veth", "docker", "nerdctl"];

/// The interfaces of `/proc/<pid>/net/dev` text (two header lines, then `name: 16 numbers`).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Interface>, StatsError> {
    let bad = |what: String| StatsError::Parse {
        path: path.to_path_buf(),
        what,
    };
    let mut out = Vec::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            return Err(bad(format!("no ':' in {line:?}")));
        };
        let name = name.trim();
        if IGNORED
            .iter()
            .any(|p| name.to_ascii_lowercase().starts_with(p))
        {
            continue;
        }
        let mut v = [0u64; 16];
        let mut n = 0;
        for (slot, f) in v.iter_mut().zip(rest.split_whitespace()) {
            *slot = f
                .parse()
                .map_err(|_| bad(format!("{name}: not a number: {f:?}")))?;
            n += 1;
        }
        if n < 12 {
            return Err(bad(format!("{name}: {n} fields, want 16")));
        }
        out.push(Interface {
            name: name.to_string(),
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errors: v[2],
            rx_dropped: v[3],
            tx_bytes: v[8],
            tx_packets: v[9],
            tx_errors: v[10],
            tx_dropped: v[11],
        });
    }
    Ok(out)
}

/// The interfaces in the network namespace of process `pid`; None when the process is gone.
pub fn of_pid(proc_: &Path, pid: u32) -> Result<Option<Vec<Interface>>, StatsError> {
    let path = proc_.join(pid.to_string()).join("net/dev");
    match std::fs::read_to_string(&path) {
        Ok(t) => parse(&path, &t).map(Some),
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound) || e.raw_os_error() == Some(3) =>
        {
            Ok(None)
        }
        Err(err) => Err(StatsError::Read { path, err }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    2260      26    0    0    0     0          0         0     2260      26    0    0    0     0       0          0
  eth0: 1419433    1090    1    2    0     0          0         0    85211     826    3    4    0     0       0          0
veth12ab:   10       1    0    0    0     0          0         0       10       1    0    0    0     0       0          0
  net1:       7       1    0    0    0     0          0         0        9       2    0    0    0     0       0          0
";

    #[test]
    fn interfaces_without_loopback_and_veths() {
        let ifs = parse(Path::new("/proc/7/net/dev"), DEV).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = ifs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "net1"]);
        assert_eq!(
            ifs[0],
            Interface {
                name: "eth0".into(),
                rx_bytes: 1419433,
                rx_packets: 1090,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 85211,
                tx_packets: 826,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
    }

    #[test]
    fn bad_lines_name_the_file() {
        let head = "a\nb\n";
        for body in [
            "eth0 1 2 3\n",
            "eth0: 1 2 x 4 5 6 7 8 9 10 11 12\n",
            "eth0: 1 2\n",
        ] {
            let e = parse(Path::new("/proc/9/net/dev"), &format!("{head}{body}"))
                .err()
                .unwrap_or_else(|| panic!("{body:?} parsed"));
            assert!(e.to_string().starts_with("/proc/9/net/dev: "), "{e}");
        }
    }

    #[test]
    fn the_real_namespace_of_this_process() {
        let me = std::process::id();
        let ifs = of_pid(Path::new("/proc"), me).unwrap_or_else(|e| panic!("{e}"));
        assert!(ifs.is_some(), "this process has a /proc/{me}/net/dev");
        assert!(
            of_pid(Path::new("/proc"), u32::MAX - 1)
                .ok()
                .flatten()
                .is_none()
        );
    }
}
