//! Stream control from inside a callback: resume, close, local replies.
//! The host applies these when the callback returns (see `stream.rs`).

use super::HostState;
use crate::abi::{Status, StreamType};
use crate::http::LocalReply;

impl HostState {
    /// `proxy_continue_stream`: marks a paused direction for resuming.
    pub(crate) fn resume(&mut self, kind: StreamType) -> Result<(), Status> {
        // A root context has no stream to resume.
        let stream = self.stream().ok_or(Status::Unimplemented)?;
        match kind {
            StreamType::Request => stream.request.resume = true,
            StreamType::Response => stream.response.resume = true,
            StreamType::Downstream | StreamType::Upstream => return Err(Status::Unimplemented),
        }
        Ok(())
    }

    /// `proxy_close_stream`: resets the HTTP stream.
    pub(crate) fn close(&mut self, kind: StreamType) -> Result<(), Status> {
        let stream = self.stream().ok_or(Status::Unimplemented)?;
        match kind {
            StreamType::Request | StreamType::Response => {
                stream.reset = true;
                Ok(())
            }
            StreamType::Downstream | StreamType::Upstream => Err(Status::Unimplemented),
        }
    }

    /// `proxy_clear_route_cache`.
    pub(crate) fn clear_route_cache(&mut self) {
        if let Some(stream) = self.stream() {
            stream.route_cache_cleared = true;
        }
    }

    /// `proxy_send_local_response`: deferred, the host applies it when the
    /// callback returns, and the callback's own return value no longer
    /// matters. Envoy ignores a reply outside a stream, or while its own
    /// local reply runs through the filter, and still answers OK.
    pub(crate) fn send_local_response(&mut self, reply: LocalReply) {
        let Some(stream) = self.stream() else {
            tracing::warn!("proxy_send_local_response outside a stream ignored");
            return;
        };
        if stream.sending_local_reply {
            tracing::warn!("proxy_send_local_response during a local reply ignored");
            return;
        }
        stream.local_reply = Some(reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{headers, in_stream};

    fn reply() -> LocalReply {
        LocalReply {
            status: 403,
            details: "denied".into(),
            grpc_status: -1,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn a_local_reply_during_a_local_reply_is_ignored() {
        let mut s = in_stream(headers(&[]));
        s.stream().unwrap().sending_local_reply = true;
        s.send_local_response(reply());
        assert_eq!(s.stream().unwrap().local_reply, None);
        s.stream().unwrap().sending_local_reply = false;
        s.send_local_response(reply());
        assert_eq!(s.stream().unwrap().local_reply, Some(reply()));
    }

    #[test]
    fn only_http_directions_resume_or_close() {
        let mut s = in_stream(headers(&[]));
        assert_eq!(s.resume(StreamType::Response), Ok(()));
        assert_eq!(s.resume(StreamType::Upstream), Err(Status::Unimplemented));
        assert_eq!(s.close(StreamType::Downstream), Err(Status::Unimplemented));
        assert_eq!(s.close(StreamType::Request), Ok(()));
        s.enter(s.root_context_id);
        assert_eq!(s.resume(StreamType::Request), Err(Status::Unimplemented));
    }
}
