//! Shared data and shared queues, which Envoy keeps per VM id across VMs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::abi::Status;

/// Shared data and queues that several plugins (VMs) can see, as Envoy's
/// worker threads see one store per VM id. Give the same `Shared` to the
/// plugins that should share; each [`PluginConfig`](crate::PluginConfig)
/// starts with its own, so parallel tests never interfere.
#[derive(Clone, Debug, Default)]
pub struct Shared {
    inner: Arc<Mutex<SharedInner>>,
}

#[derive(Debug, Default)]
struct SharedInner {
    data: HashMap<(String, Vec<u8>), (Vec<u8>, u32)>,
    next_cas: u32,
    queues: Vec<Queue>,
}

#[derive(Debug)]
struct Queue {
    vm_id: String,
    name: Vec<u8>,
    items: VecDeque<Vec<u8>>,
    owner: (u64, u32),
    notifications: u32,
}

impl Shared {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, SharedInner> {
        // A panic while holding the lock can only come from a test's own
        // panic; the data is still consistent, so keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads `key` in the VM id `vm_id`: the value and its CAS token.
    pub fn get(&self, vm_id: &str, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.lock()
            .data
            .get(&(vm_id.to_owned(), key.to_vec()))
            .cloned()
    }

    /// Sets `key`; a non-zero `cas` must match the current token when the
    /// key exists (Envoy ignores it for new keys).
    pub(crate) fn set(&self, vm_id: &str, key: &[u8], value: Vec<u8>, cas: u32) -> Status {
        let mut inner = self.lock();
        inner.next_cas = inner.next_cas.wrapping_add(1).max(1);
        let next = inner.next_cas;
        match inner.data.get_mut(&(vm_id.to_owned(), key.to_vec())) {
            Some(entry) => {
                if cas != 0 && cas != entry.1 {
                    return Status::CasMismatch;
                }
                *entry = (value, next);
            }
            None => {
                inner
                    .data
                    .insert((vm_id.to_owned(), key.to_vec()), (value, next));
            }
        }
        Status::Ok
    }

    /// Registers (or reopens) queue `name`; the caller's root context gets
    /// `proxy_on_queue_ready` for each enqueue.
    pub(crate) fn register_queue(&self, vm_id: &str, name: &[u8], owner: (u64, u32)) -> u32 {
        let mut inner = self.lock();
        if let Some((i, q)) = inner
            .queues
            .iter_mut()
            .enumerate()
            .find(|(_, q)| q.vm_id == vm_id && q.name == name)
        {
            q.owner = owner;
            return queue_id(i);
        }
        inner.queues.push(Queue {
            vm_id: vm_id.to_owned(),
            name: name.to_vec(),
            items: VecDeque::new(),
            owner,
            notifications: 0,
        });
        queue_id(inner.queues.len() - 1)
    }

    pub(crate) fn resolve_queue(&self, vm_id: &str, name: &[u8]) -> Option<u32> {
        self.lock()
            .queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
            .map(queue_id)
    }

    pub(crate) fn enqueue(&self, id: u32, value: Vec<u8>) -> Status {
        let mut inner = self.lock();
        match queue_index(id).and_then(|i| inner.queues.get_mut(i)) {
            Some(q) => {
                q.items.push_back(value);
                q.notifications = q.notifications.saturating_add(1);
                Status::Ok
            }
            None => Status::NotFound,
        }
    }

    pub(crate) fn dequeue(&self, id: u32) -> Result<Vec<u8>, Status> {
        let mut inner = self.lock();
        let q = queue_index(id)
            .and_then(|i| inner.queues.get_mut(i))
            .ok_or(Status::NotFound)?;
        q.items.pop_front().ok_or(Status::Empty)
    }

    /// Takes the pending `proxy_on_queue_ready` notifications for queues
    /// owned by VM `vm`: (root context, queue id) once per enqueue.
    pub(crate) fn take_notifications(&self, vm: u64) -> Vec<(u32, u32)> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        for (i, q) in inner.queues.iter_mut().enumerate() {
            if q.owner.0 == vm {
                for _ in 0..q.notifications {
                    out.push((q.owner.1, queue_id(i)));
                }
                q.notifications = 0;
            }
        }
        out
    }
}

// Queue ids start at 1 so that 0 never names a queue.
fn queue_id(index: usize) -> u32 {
    u32::try_from(index).map_or(u32::MAX, |i| i.saturating_add(1))
}

fn queue_index(id: u32) -> Option<usize> {
    usize::try_from(id.checked_sub(1)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_protects_updates() {
        let s = Shared::new();
        assert_eq!(s.set("vm", b"k", b"1".to_vec(), 0), Status::Ok);
        let (_, cas) = s.get("vm", b"k").unwrap();
        assert_eq!(s.set("vm", b"k", b"2".to_vec(), cas), Status::Ok);
        assert_eq!(s.set("vm", b"k", b"3".to_vec(), cas), Status::CasMismatch);
        assert_eq!(s.get("vm", b"k").unwrap().0, b"2");
        assert_eq!(s.get("other", b"k"), None);
    }

    #[test]
    fn queues_notify_their_owner() {
        let s = Shared::new();
        let id = s.register_queue("vm", b"q", (1, 5));
        assert_eq!(s.resolve_queue("vm", b"q"), Some(id));
        assert_eq!(s.dequeue(id), Err(Status::Empty));
        assert_eq!(s.enqueue(id, b"x".to_vec()), Status::Ok);
        assert_eq!(s.take_notifications(1), vec![(5, id)]);
        assert_eq!(s.dequeue(id), Ok(b"x".to_vec()));
        assert_eq!(s.enqueue(99, vec![]), Status::NotFound);
    }
}
