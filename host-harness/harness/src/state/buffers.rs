//! Byte buffers (`proxy_*_buffer_*`): bodies, callout results and
//! configuration, as Envoy's buffers behave for a filter.

use super::HostState;
use crate::abi::{BufferType, Status};

impl HostState {
    /// The plugin configuration (`proxy_get_configuration`).
    pub(crate) fn plugin_configuration(&self) -> &[u8] {
        &self.plugin_configuration
    }

    /// The buffer `kind` as the running callback sees it.
    fn buffer(&mut self, kind: BufferType) -> Option<&mut Vec<u8>> {
        match kind {
            BufferType::RequestBody => self.stream()?.request.body.as_mut(),
            BufferType::ResponseBody => self.stream()?.response.body.as_mut(),
            // A network filter's data: the connection keeps it where an
            // HTTP stream keeps its bodies.
            BufferType::DownstreamData => self.stream()?.request.body.as_mut(),
            BufferType::UpstreamData => self.stream()?.response.body.as_mut(),
            BufferType::HttpCallResponseBody | BufferType::GrpcReceiveBuffer => {
                self.callout.body.as_mut()
            }
            BufferType::VmConfiguration if self.config_buffer == Some(kind) => {
                Some(&mut self.vm_configuration)
            }
            BufferType::PluginConfiguration if self.config_buffer == Some(kind) => {
                Some(&mut self.plugin_configuration)
            }
            BufferType::CallData => self.foreign_args.as_mut(),
            _ => None,
        }
    }

    /// `proxy_get_buffer_bytes`: up to `max` bytes from `start`; a range
    /// past the end is cut short, not refused.
    pub(crate) fn buffer_bytes(
        &mut self,
        kind: BufferType,
        start: u32,
        max: u32,
    ) -> Result<Vec<u8>, Status> {
        let (start, max) = (start as usize, max as usize);
        start.checked_add(max).ok_or(Status::BadArgument)?;
        let buf = self.buffer(kind).ok_or(Status::NotFound)?;
        let end = start.saturating_add(max).min(buf.len());
        Ok(buf.get(start..end).map(<[u8]>::to_vec).unwrap_or_default())
    }

    /// `proxy_get_buffer_status`: the buffer's length.
    pub(crate) fn buffer_len(&mut self, kind: BufferType) -> Result<usize, Status> {
        Ok(self.buffer(kind).ok_or(Status::NotFound)?.len())
    }

    /// `proxy_set_buffer_bytes`, with Envoy's rules: `(0, 0)` prepends,
    /// `(0, n)` replaces everything, a start at or past the end appends;
    /// anything else is refused.
    pub(crate) fn set_buffer_bytes(
        &mut self,
        kind: BufferType,
        start: u32,
        size: u32,
        data: Vec<u8>,
    ) -> Result<(), Status> {
        let buf = self.buffer(kind).ok_or(Status::NotFound)?;
        let start = start as usize;
        if start == 0 {
            if size == 0 {
                buf.splice(0..0, data);
            } else {
                *buf = data;
            }
        } else if start >= buf.len() {
            buf.extend_from_slice(&data);
        } else {
            return Err(Status::BadArgument);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{headers, in_stream};

    fn with_body(body: &[u8]) -> HostState {
        let mut s = in_stream(headers(&[]));
        if let Some(stream) = s.stream() {
            stream.request.body = Some(body.to_vec());
        }
        s
    }

    #[test]
    fn reads_are_cut_at_the_end() {
        let mut s = with_body(b"hello");
        assert_eq!(
            s.buffer_bytes(BufferType::RequestBody, 1, 3),
            Ok(b"ell".to_vec())
        );
        assert_eq!(
            s.buffer_bytes(BufferType::RequestBody, 3, 99),
            Ok(b"lo".to_vec())
        );
        assert_eq!(
            s.buffer_bytes(BufferType::RequestBody, 9, 1),
            Ok(Vec::new())
        );
        assert_eq!(
            s.buffer_bytes(BufferType::ResponseBody, 0, 1),
            Err(Status::NotFound)
        );
        assert_eq!(s.buffer_len(BufferType::RequestBody), Ok(5));
    }

    #[test]
    fn writes_follow_envoys_rules() {
        let mut s = with_body(b"mid");
        s.set_buffer_bytes(BufferType::RequestBody, 0, 0, b"<".to_vec())
            .unwrap();
        s.set_buffer_bytes(BufferType::RequestBody, 4, 0, b">".to_vec())
            .unwrap();
        assert_eq!(
            s.buffer_bytes(BufferType::RequestBody, 0, 9),
            Ok(b"<mid>".to_vec())
        );
        assert_eq!(
            s.set_buffer_bytes(BufferType::RequestBody, 2, 1, b"x".to_vec()),
            Err(Status::BadArgument)
        );
        s.set_buffer_bytes(BufferType::RequestBody, 0, 1, b"new".to_vec())
            .unwrap();
        assert_eq!(
            s.buffer_bytes(BufferType::RequestBody, 0, 9),
            Ok(b"new".to_vec())
        );
    }

    #[test]
    fn configuration_is_visible_only_while_its_callback_runs() {
        let mut s = with_body(b"");
        s.plugin_configuration = b"{}".to_vec();
        assert_eq!(
            s.buffer_len(BufferType::PluginConfiguration),
            Err(Status::NotFound)
        );
        s.config_buffer = Some(BufferType::PluginConfiguration);
        assert_eq!(s.buffer_len(BufferType::PluginConfiguration), Ok(2));
    }
}
