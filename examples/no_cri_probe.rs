//! Size baseline for `scripts/bench-cri`: `cri_probe` without the CRI client.

use tinylet::config::kubelet::RuntimeEndpoint;

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    match RuntimeEndpoint::parse(&arg) {
        Ok(ep) => println!("{}", ep.path()),
        Err(e) => {
            eprintln!("no_cri_probe: {e}");
            std::process::exit(2)
        }
    }
}
