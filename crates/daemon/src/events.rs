//! The event bus behind `GET /events`: every container and image action is published here,
//! and a bounded history answers `--since`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event in docker's JSON shape (with the legacy `status`/`id`/`from` fields).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

const HISTORY: usize = 1024;

pub struct Events {
    tx: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(256).0,
            history: Mutex::new(VecDeque::new()),
        }
    }
}

impl Events {
    /// Publishes `action` on an object of `kind` (`container`, `image`…).
    pub fn publish(
        &self,
        kind: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let legacy = kind == "container" || kind == "image";
        let from = if kind == "container" {
            attributes.get("image").cloned()
        } else {
            None
        };
        let ev = Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from,
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes,
            },
            scope: "local".into(),
            time: now.as_secs() as i64,
            time_nano: now.as_nanos() as i64,
        };
        {
            let mut h = self.history.lock().unwrap();
            if h.len() >= HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        let _ = self.tx.send(ev);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Past events from `since_ns` on (oldest first).
    pub fn since(&self, since_ns: i64) -> Vec<Event> {
        self.history
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.time_nano >= since_ns)
            .cloned()
            .collect()
    }
}
