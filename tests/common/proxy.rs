//! A TCP forwarder in front of kube-sim that a test can take down and bring back: "the API
//! server is away" without losing kube-sim's state.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Proxy {
    pub addr: String,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Proxy {
    /// Forwards 127.0.0.1:<free port> to `target` (host:port).
    pub fn start(target: &str) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("proxy listener: {e}"));
        let addr = l
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy address: {e}"))
            .to_string();
        let down = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (d, c, target) = (down.clone(), conns.clone(), target.to_string());
        std::thread::spawn(move || {
            for client in l.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: connection closed at once
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                if let Ok(mut list) = c.lock() {
                    list.extend(client.try_clone());
                    list.extend(server.try_clone());
                }
                std::thread::spawn(move || pump(client, s2));
                std::thread::spawn(move || pump(server, c2));
            }
        });
        Proxy { addr, down, conns }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Down: open connections are cut and new ones closed at once. Up: forwarding again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down && let Ok(mut list) = self.conns.lock() {
            for s in list.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}
