//! Events to containerd (`TaskExit`, `TaskStart`...), over its ttrpc
//! socket. The crate's `RemotePublisher` never reconnects (after a
//! containerd restart every event would be lost) and waits for ever; this
//! one reconnects, times out, retries once, and builds the `Any` by hand
//! (no protobuf reflection: a smaller shim).

use std::sync::Mutex;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::ttrpc;
use containerd_shim::protos::{Client, EventsClient};
use containerd_shim::util::timestamp;

const TIMEOUT_NS: i64 = 5_000_000_000;

pub struct Publisher {
    address: String,
    namespace: String,
    client: Mutex<Option<EventsClient>>,
}

/// An event and its protobuf full name (the `Any` type URL containerd's
/// typeurl registry knows, without a `type.googleapis.com/` prefix).
pub trait Event: Message {
    const TYPE_URL: &'static str;
    const TOPIC: &'static str;
}

macro_rules! event {
    ($ty:ident, $topic:ident) => {
        impl Event for containerd_shim::protos::events::task::$ty {
            const TYPE_URL: &'static str = concat!("containerd.events.", stringify!($ty));
            const TOPIC: &'static str = containerd_shim::protos::topics::$topic;
        }
    };
}
event!(TaskCreate, TASK_CREATE_EVENT_TOPIC);
event!(TaskStart, TASK_START_EVENT_TOPIC);
event!(TaskExit, TASK_EXIT_EVENT_TOPIC);
event!(TaskDelete, TASK_DELETE_EVENT_TOPIC);
event!(TaskExecAdded, TASK_EXEC_ADDED_EVENT_TOPIC);
event!(TaskExecStarted, TASK_EXEC_STARTED_EVENT_TOPIC);
event!(TaskPaused, TASK_PAUSED_EVENT_TOPIC);
event!(TaskResumed, TASK_RESUMED_EVENT_TOPIC);
event!(TaskOOM, TASK_OOM_EVENT_TOPIC);

impl Publisher {
    pub fn new(address: String, namespace: String) -> Publisher {
        Publisher {
            address,
            namespace,
            client: Mutex::new(None),
        }
    }

    /// Best effort: an event that cannot be delivered is logged.
    pub fn publish<E: Event>(&self, event: &E) {
        let request = match self.request(event) {
            Ok(request) => request,
            Err(e) => {
                log::warn!("cannot encode {}: {e}", E::TYPE_URL);
                return;
            }
        };
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..2 {
            if client.is_none() {
                let path = self
                    .address
                    .strip_prefix("unix://")
                    .unwrap_or(&self.address);
                *client = containerd_shim::util::connect(path)
                    .ok()
                    .and_then(|fd| Client::new(fd).ok())
                    .map(EventsClient::new);
            }
            let Some(connected) = client.as_ref() else {
                continue;
            };
            match connected.forward(ttrpc::context::with_timeout(TIMEOUT_NS), &request) {
                Ok(_) => return,
                Err(e) => {
                    log::warn!("publishing {}: {e}; reconnecting", E::TOPIC);
                    *client = None;
                }
            }
        }
        log::warn!("event {} for namespace {} lost", E::TOPIC, self.namespace);
    }

    fn request<E: Event>(&self, event: &E) -> Result<ForwardRequest, Box<dyn std::error::Error>> {
        let any = Any {
            type_url: E::TYPE_URL.into(),
            value: event.write_to_bytes()?,
            ..Default::default()
        };
        let envelope = Envelope {
            timestamp: Some(timestamp()?).into(),
            namespace: self.namespace.clone(),
            topic: E::TOPIC.into(),
            event: Some(any).into(),
            ..Default::default()
        };
        Ok(ForwardRequest {
            envelope: Some(envelope).into(),
            ..Default::default()
        })
    }
}
