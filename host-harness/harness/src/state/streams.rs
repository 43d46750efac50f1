//! Stream control from inside a callback: resume, close, local replies.
//! The host applies these when the callback returns (see `stream.rs`).

use super::HostState;
use crate::abi::{Status, StreamType};
use crate::http::LocalReply;

impl HostState {
    /// `proxy_continue_stream`: marks a paused direction for resuming, as
    /// Envoy 1.40's `Context::continueStream` does: `Request`/`Response`
    /// act on an HTTP stream; `Downstream` continues reading a network
    /// connection (what the filter held goes on to the next filter); each
    /// answers OK, doing nothing, in the other kind of context.
    /// `Upstream` is not implemented in Envoy.
    pub(crate) fn resume(&mut self, kind: StreamType) -> Result<(), Status> {
        // A root context has no stream to resume.
        let stream = self.stream().ok_or(Status::Unimplemented)?;
        let network = stream.network;
        match kind {
            StreamType::Request if !network => stream.request.resume = true,
            StreamType::Response if !network => stream.response.resume = true,
            StreamType::Downstream if network => stream.request.resume = true,
            StreamType::Request | StreamType::Response | StreamType::Downstream => {}
            StreamType::Upstream => return Err(Status::Unimplemented),
        }
        Ok(())
    }

    /// `proxy_close_stream`: `Request`/`Response` reset an HTTP stream;
    /// `Downstream` and `Upstream` close a network connection (both close
    /// the downstream connection after flushing what was written: Envoy
    /// closes the connection its read or write filter callbacks belong to,
    /// which is the same one). Each answers OK, doing nothing, in the
    /// other kind of context.
    pub(crate) fn close(&mut self, kind: StreamType) -> Result<(), Status> {
        let stream = self.stream().ok_or(Status::Unimplemented)?;
        let network = stream.network;
        match kind {
            StreamType::Request | StreamType::Response if !network => stream.reset = true,
            StreamType::Downstream | StreamType::Upstream if network => stream.reset = true,
            _ => {}
        }
        Ok(())
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
    fn http_streams_resume_and_close_their_directions_only() {
        let mut s = in_stream(headers(&[]));
        assert_eq!(s.resume(StreamType::Response), Ok(()));
        assert!(
            s.stream()
                .unwrap()
                .take_resume(crate::state::Direction::Response)
        );
        assert_eq!(s.resume(StreamType::Upstream), Err(Status::Unimplemented));
        assert_eq!(s.resume(StreamType::Downstream), Ok(()));
        assert!(
            !s.stream()
                .unwrap()
                .take_resume(crate::state::Direction::Request)
        );
        assert_eq!(s.close(StreamType::Downstream), Ok(()));
        assert!(!s.stream().unwrap().is_reset());
        assert_eq!(s.close(StreamType::Request), Ok(()));
        assert!(s.stream().unwrap().is_reset());
        s.enter(s.root_context_id);
        assert_eq!(s.resume(StreamType::Request), Err(Status::Unimplemented));
    }

    #[test]
    fn connections_continue_reading_and_close_on_either_side() {
        let mut s = in_stream(headers(&[]));
        s.stream().unwrap().set_network();
        assert_eq!(s.resume(StreamType::Request), Ok(()));
        assert!(
            !s.stream()
                .unwrap()
                .take_resume(crate::state::Direction::Request)
        );
        assert_eq!(s.resume(StreamType::Downstream), Ok(()));
        assert!(
            s.stream()
                .unwrap()
                .take_resume(crate::state::Direction::Request)
        );
        assert_eq!(s.resume(StreamType::Upstream), Err(Status::Unimplemented));
        assert_eq!(s.close(StreamType::Request), Ok(()));
        assert!(!s.stream().unwrap().is_reset());
        assert_eq!(s.close(StreamType::Upstream), Ok(()));
        assert!(s.stream().unwrap().is_reset());
    }
}
