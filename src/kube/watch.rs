//! List-then-watch as a reusable piece (client-go's reflector): resourceVersion bookkeeping,
//! BOOKMARKs, a re-list on 410 Gone, and reconnects with backoff when the server is away.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{Client, KubeError};

/// What the handler is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The full set after a (re-)list: replaces whatever the handler knew.
    Listed(Vec<Value>),
    Added(Value),
    Modified(Value),
    Deleted(Value),
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

fn rv_of(o: &Value) -> Option<String> {
    o["metadata"]["resourceVersion"].as_str().map(String::from)
}

/// Sleeps before a retry after a transient error (doubling to 30 s); any other error is final.
fn backoff(e: KubeError, delay: &mut Duration) -> Result<(), KubeError> {
    if !e.is_transient() {
        return Err(e);
    }
    crate::warn!("{e}; retrying in {}s", delay.as_secs());
    std::thread::sleep(*delay);
    *delay = (*delay * 2).min(Duration::from_secs(30));
    Ok(())
}

/// Lists `path?query`, then watches from the list's resourceVersion, handing every change to
/// `handle` until it returns false. Each watch lasts `watch_timeout`; then it resumes from the
/// last version seen (bookmarks included). On 410 Gone it re-lists; on transient failures it
/// retries after a backoff of 1 s doubling to 30 s. Other errors (403, 404) are returned.
pub fn list_watch(
    client: &Client,
    path: &str,
    query: &str,
    watch_timeout: Duration,
    mut handle: impl FnMut(Event) -> bool,
) -> Result<(), KubeError> {
    let mut delay = Duration::from_secs(1);
    'relist: loop {
        let sep = if query.is_empty() { "" } else { "?" };
        let list: List = match client.get(&format!("{path}{sep}{query}")) {
            Ok(l) => l,
            Err(e) => {
                backoff(e, &mut delay)?;
                continue 'relist;
            }
        };
        let mut rv = list.metadata.resource_version;
        if !handle(Event::Listed(list.items)) {
            return Ok(());
        }
        loop {
            let events = match client.watch(path, query, &rv, watch_timeout) {
                Ok(w) => w,
                Err(e) if e.code() == Some(410) => continue 'relist,
                Err(e) => {
                    backoff(e, &mut delay)?;
                    continue;
                }
            };
            delay = Duration::from_secs(1);
            for ev in events {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(KubeError::Gone { .. }) => continue 'relist,
                    // A broken stream: resume from the last version.
                    Err(_) => break,
                };
                if let Some(v) = rv_of(&ev.object) {
                    rv = v;
                }
                let keep_going = match ev.kind.as_str() {
                    "ADDED" => handle(Event::Added(ev.object)),
                    "MODIFIED" => handle(Event::Modified(ev.object)),
                    "DELETED" => handle(Event::Deleted(ev.object)),
                    _ => true, // BOOKMARK: only the version matters
                };
                if !keep_going {
                    return Ok(());
                }
            }
        }
    }
}
