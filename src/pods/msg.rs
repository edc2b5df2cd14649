//! What the pod sources (the API server's watch, the static pod files) tell the pod owner, and
//! the inbox they send it through.

use super::spec::Pod;

/// What a source says.
#[derive(Debug)]
pub enum Msg {
    /// The whole set bound to this node (after a list): anything else is gone.
    Listed(Vec<Pod>),
    Upsert(Box<Pod>),
    Removed {
        uid: String,
    },
    /// The whole set of static pods (after each read of `staticPodPath` that changed it).
    Static(Vec<Pod>),
}

/// The owner's inbox as the sources see it.
#[derive(Clone)]
pub struct Inbox(pub(super) std::sync::mpsc::Sender<super::owner::Input>);

impl Inbox {
    /// Hands `m` to the owner; false once the owner is gone.
    pub fn send(&self, m: Msg) -> bool {
        self.0.send(super::owner::Input::Source(m)).is_ok()
    }

    /// Asks the owner to evict pod `uid` (node pressure): it fails with reason Evicted and
    /// `message` (its Evicted event carries `annotations`), its containers stopped within
    /// `grace` seconds; false once the owner is gone.
    pub fn evict(
        &self,
        uid: String,
        message: String,
        annotations: std::collections::BTreeMap<String, String>,
        grace: i64,
    ) -> bool {
        let e = super::owner::Input::Evict {
            uid,
            message,
            annotations,
            grace,
        };
        self.0.send(e).is_ok()
    }
}
