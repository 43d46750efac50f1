//! VM-wide host calls: logging, clocks and timers, contexts, shared data
//! and queues, metrics, and the WASI environment.

use std::time::{Duration, UNIX_EPOCH};

use super::HostState;
use crate::abi::{Errno, LogLevel, Status};
use crate::metrics::Metrics;

/// The most `random_get` hands out in one call, as Envoy allows.
const RANDOM_MAX: usize = 64 * 1024;

impl HostState {
    /// `proxy_get_log_level`.
    pub(crate) fn log_level(&self) -> LogLevel {
        self.log_level
    }

    /// The virtual wall clock in nanoseconds since the epoch.
    pub(crate) fn now_nanos(&self) -> u64 {
        self.now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The virtual monotonic clock in nanoseconds.
    pub(crate) fn monotonic_nanos(&self) -> u64 {
        u64::try_from(self.monotonic.as_nanos()).unwrap_or(u64::MAX)
    }

    /// `proxy_set_tick_period_milliseconds`: zero stops the timer.
    pub(crate) fn set_tick_period(&mut self, millis: u32) {
        let period = Duration::from_millis(u64::from(millis));
        if period.is_zero() {
            self.tick_period = None;
            self.next_tick = None;
        } else {
            self.tick_period = Some(period);
            self.next_tick = Some(self.monotonic + period);
        }
    }

    /// `proxy_set_effective_context`: only the root or a live stream.
    pub(crate) fn set_effective_context(&mut self, id: u32) -> Result<(), Status> {
        if self.is_root(id) || self.streams.contains_key(&id) {
            self.effective_context = Some(id);
            Ok(())
        } else {
            Err(Status::BadArgument)
        }
    }

    /// `proxy_done`: accepted only from the context being shut down.
    pub(crate) fn done(&mut self) -> Result<(), Status> {
        if self.pending_done.is_some() && self.pending_done == Some(self.context()) {
            self.done_called = true;
            Ok(())
        } else {
            Err(Status::NotFound)
        }
    }

    /// `proxy_get_shared_data`: the value and its CAS.
    pub(crate) fn shared_data(&self, key: &[u8]) -> Result<(Vec<u8>, u32), Status> {
        self.shared.get(&self.vm_id, key).ok_or(Status::NotFound)
    }

    /// `proxy_set_shared_data`.
    pub(crate) fn set_shared_data(
        &self,
        key: &[u8],
        value: Vec<u8>,
        cas: u32,
    ) -> Result<(), Status> {
        ok(self.shared.set(&self.vm_id, key, value, cas))
    }

    /// `proxy_register_shared_queue`: this VM's root context owns it.
    pub(crate) fn register_queue(&self, name: &[u8]) -> u32 {
        self.shared
            .register_queue(&self.vm_id, name, (self.vm_uid, self.root_context_id))
    }

    /// `proxy_resolve_shared_queue`.
    pub(crate) fn resolve_queue(&self, vm_id: &str, name: &[u8]) -> Result<u32, Status> {
        self.shared
            .resolve_queue(vm_id, name)
            .ok_or(Status::NotFound)
    }

    /// `proxy_enqueue_shared_queue`.
    pub(crate) fn enqueue(&self, id: u32, value: Vec<u8>) -> Result<(), Status> {
        ok(self.shared.enqueue(id, value))
    }

    /// `proxy_dequeue_shared_queue`.
    pub(crate) fn dequeue(&self, id: u32) -> Result<Vec<u8>, Status> {
        self.shared.dequeue(id)
    }

    /// The metrics the filter defined (`proxy_*_metric`).
    pub(crate) fn metrics_mut(&mut self) -> &mut Metrics {
        &mut self.metrics
    }

    /// The log level `fd_write` gives a file descriptor: stdout is `Info`
    /// and stderr `Error`, as in Envoy; others are not open.
    pub(crate) fn stdio_level(fd: i32) -> Result<LogLevel, Errno> {
        match fd {
            1 => Ok(LogLevel::Info),
            2 => Ok(LogLevel::Error),
            _ => Err(Errno::Badf),
        }
    }

    /// Logs what the filter wrote on stdout or stderr, one record per
    /// write, without the trailing newline.
    pub(crate) fn log_output(&mut self, level: LogLevel, mut text: Vec<u8>) {
        if text.last() == Some(&b'\n') {
            text.pop();
        }
        if !text.is_empty() {
            self.log(level, String::from_utf8_lossy(&text).into_owned());
        }
    }

    /// The environment variables, as `key=value\0` entries.
    pub(crate) fn environ(&self) -> Vec<Vec<u8>> {
        self.env
            .iter()
            .map(|(k, v)| format!("{k}={v}\0").into_bytes())
            .collect()
    }

    /// `random_get`: deterministic per VM (splitmix64), so test runs
    /// repeat exactly.
    pub(crate) fn random_bytes(&mut self, len: usize) -> Result<Vec<u8>, Errno> {
        if len > RANDOM_MAX {
            return Err(Errno::Inval);
        }
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        bytes.truncate(len);
        Ok(bytes)
    }
}

fn ok(status: Status) -> Result<(), Status> {
    match status {
        Status::Ok => Ok(()),
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::PluginConfig;
    use crate::state::testing::{headers, in_stream};

    #[test]
    fn effective_context_must_exist() {
        let mut s = in_stream(headers(&[]));
        assert_eq!(s.set_effective_context(99), Err(Status::BadArgument));
        assert_eq!(s.set_effective_context(1), Ok(()));
        assert_eq!(s.context(), 1);
    }

    #[test]
    fn shared_data_is_keyed_by_vm_id() {
        let a = HostState::new(PluginConfig::new().vm_id("a"), 1, usize::MAX);
        let shared = a.shared.clone();
        let b = HostState::new(
            PluginConfig::new().vm_id("b").shared(&shared),
            2,
            usize::MAX,
        );
        a.set_shared_data(b"k", b"v".to_vec(), 0).unwrap();
        assert_eq!(a.shared_data(b"k"), Ok((b"v".to_vec(), 1)));
        assert_eq!(b.shared_data(b"k"), Err(Status::NotFound));
        assert_eq!(
            a.set_shared_data(b"k", b"w".to_vec(), 7),
            Err(Status::CasMismatch)
        );
    }

    #[test]
    fn random_bytes_repeat_per_vm_and_are_bounded() {
        let mut a = HostState::new(PluginConfig::new(), 7, usize::MAX);
        let mut b = HostState::new(PluginConfig::new(), 7, usize::MAX);
        assert_eq!(a.random_bytes(13), b.random_bytes(13));
        assert_eq!(a.random_bytes(13).map(|b| b.len()), Ok(13));
        assert_eq!(a.random_bytes(RANDOM_MAX + 1), Err(Errno::Inval));
    }

    #[test]
    fn tick_period_zero_stops_the_timer() {
        let mut s = HostState::new(PluginConfig::new(), 1, usize::MAX);
        s.set_tick_period(10);
        assert_eq!(s.next_tick, Some(Duration::from_millis(10)));
        s.set_tick_period(0);
        assert_eq!((s.tick_period, s.next_tick), (None, None));
    }

    #[test]
    fn output_drops_one_trailing_newline_and_empty_writes() {
        let mut s = HostState::new(PluginConfig::new(), 1, usize::MAX);
        s.log_output(LogLevel::Info, b"hi\n".to_vec());
        s.log_output(LogLevel::Info, b"\n".to_vec());
        assert_eq!(s.logs.len(), 1);
        assert_eq!(s.logs.first().map(|l| l.message.as_str()), Some("hi"));
    }
}
