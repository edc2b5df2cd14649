//! The API server as the pod source: list, then watch, the pods bound to this node
//! (`fieldSelector=spec.nodeName=<node>`), handed to the owner as messages.

use std::time::Duration;

use super::msg::{Inbox, Msg};
use super::spec::Pod;
use crate::kube::Lazy;
use crate::kube::watch::{Event, list_watch};
use crate::stop::Stop;
use crate::{error, warn};

fn decode(v: serde_json::Value) -> Option<Pod> {
    match Pod::from_value(v) {
        Ok(p) => Some(p),
        Err(e) => {
            error!("ignoring a pod the agent cannot run: {e}");
            None
        }
    }
}

/// Runs until stopped or the owner is gone.
pub fn run(client: &Lazy, node: &str, tx: &Inbox, stop: &Stop) {
    let query = format!("fieldSelector=spec.nodeName%3D{node}");
    while !stop.is_stopped() {
        let c = match client.get() {
            Ok(c) => c,
            Err(_) => {
                if stop.sleep(Duration::from_secs(1)) {
                    return;
                }
                continue;
            }
        };
        let mut owner_gone = false;
        let result = list_watch(&c, "/api/v1/pods", &query, Duration::from_secs(300), |ev| {
            let msg = match ev {
                Event::Listed(items) => Msg::Listed(items.into_iter().filter_map(decode).collect()),
                Event::Added(v) | Event::Modified(v) => match decode(v) {
                    Some(p) => Msg::Upsert(Box::new(p)),
                    None => return !stop.is_stopped(),
                },
                Event::Deleted(v) => Msg::Removed {
                    uid: v["metadata"]["uid"].as_str().unwrap_or("").to_string(),
                },
            };
            owner_gone = !tx.send(msg);
            !owner_gone && !stop.is_stopped()
        });
        if owner_gone {
            return;
        }
        if let Err(e) = result {
            warn!("watching pods bound to {node}: {e}; retrying in 5s");
            client.forget();
            if stop.sleep(Duration::from_secs(5)) {
                return;
            }
        }
    }
}
