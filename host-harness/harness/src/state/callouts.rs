//! HTTP and gRPC callouts and foreign functions: the test upstreams answer
//! at once (or hold an HTTP call), and the answers are delivered as events
//! after the callback returns, as Envoy's event loop would.

use super::{Event, GrpcStream, HostState};
use crate::abi::Status;
use std::sync::Arc;

use crate::callout::{GrpcCallRequest, HttpCallReply, HttpCallRequest, HttpUpstream};

impl HostState {
    /// `proxy_http_call`: dispatches to the test upstream; returns the
    /// call's token.
    pub(crate) fn http_call(&mut self, request: HttpCallRequest) -> Result<u32, Status> {
        let handler = self
            .http_upstreams
            .get(&request.upstream)
            .cloned()
            .ok_or(Status::BadArgument)?;
        for required in [":method", ":path", ":authority"] {
            crate::http::find_header(&request.headers, required).ok_or(Status::BadArgument)?;
        }
        let token = self.token();
        match handler(&request) {
            HttpCallReply::Response(response) => self.events.push_back(Event::HttpResponse {
                token,
                response: Some(response),
            }),
            HttpCallReply::Failure => self.events.push_back(Event::HttpResponse {
                token,
                response: None,
            }),
            HttpCallReply::Timeout => self.events.push_back(Event::HttpResponse {
                token,
                response: Some(crate::callout::timeout_response()),
            }),
            HttpCallReply::Pending => {
                // A zero timeout is none, as for Envoy's router.
                if !request.timeout.is_zero() {
                    self.held_deadlines
                        .insert(token, self.monotonic + request.timeout);
                }
                self.held_http_calls.insert(token, request);
            }
        }
        Ok(token)
    }

    /// Answers every held callout whose timeout passed on the virtual
    /// clock with Envoy's timeout response, in token order.
    pub(crate) fn expire_http_calls(&mut self) {
        let now = self.monotonic;
        let expired: Vec<u32> = self
            .held_deadlines
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            self.held_deadlines.remove(&token);
            if self.held_http_calls.remove(&token).is_some() {
                self.events.push_back(Event::HttpResponse {
                    token,
                    response: Some(crate::callout::timeout_response()),
                });
            }
        }
    }

    /// Replaces the handler of HTTP callouts to `upstream`.
    pub(crate) fn set_http_upstream(&mut self, upstream: &str, handler: HttpUpstream) {
        Arc::make_mut(&mut self.http_upstreams).insert(upstream.to_owned(), handler);
    }

    /// `proxy_grpc_call`: a unary call; returns its token.
    pub(crate) fn grpc_call(&mut self, request: GrpcCallRequest) -> Result<u32, Status> {
        let handler = self
            .grpc_upstreams
            .get(&request.upstream)
            .cloned()
            .ok_or(Status::ParseFailure)?;
        let reply = handler(&request);
        let token = self.token();
        self.events.push_back(Event::Grpc {
            token,
            reply,
            close: true,
            unary: true,
        });
        Ok(token)
    }

    /// `proxy_grpc_stream`: opens a stream; messages follow with
    /// [`HostState::grpc_send`].
    pub(crate) fn grpc_stream(&mut self, request: GrpcCallRequest) -> Result<u32, Status> {
        if !self.grpc_upstreams.contains_key(&request.upstream) {
            return Err(Status::ParseFailure);
        }
        let token = self.token();
        self.grpc_streams.insert(
            token,
            GrpcStream {
                request,
                sent_metadata: false,
            },
        );
        Ok(token)
    }

    /// `proxy_grpc_send`: one message on an open stream.
    pub(crate) fn grpc_send(
        &mut self,
        token: u32,
        message: Vec<u8>,
        end_of_stream: bool,
    ) -> Result<(), Status> {
        let stream = self.grpc_streams.get_mut(&token).ok_or(Status::NotFound)?;
        let mut request = stream.request.clone();
        request.message = message;
        request.end_of_stream = end_of_stream;
        let handler = self
            .grpc_upstreams
            .get(&request.upstream)
            .cloned()
            .ok_or(Status::NotFound)?;
        let mut reply = handler(&request);
        if stream.sent_metadata {
            reply.initial_metadata.clear();
        }
        stream.sent_metadata = true;
        if end_of_stream {
            self.grpc_streams.remove(&token);
        }
        self.events.push_back(Event::Grpc {
            token,
            reply,
            close: end_of_stream,
            unary: false,
        });
        Ok(())
    }

    /// `proxy_grpc_cancel` and `proxy_grpc_close`: nothing is delivered
    /// for a call the filter cancelled or closed.
    pub(crate) fn grpc_stop(&mut self, token: u32) -> Result<(), Status> {
        let is_call = |e: &Event| matches!(e, Event::Grpc { token: t, .. } if *t == token);
        let known = self.grpc_streams.remove(&token).is_some() | self.events.iter().any(is_call);
        self.events.retain(|e| !is_call(e));
        if known { Ok(()) } else { Err(Status::NotFound) }
    }

    /// `proxy_get_status`: the status of the callout whose callback runs.
    pub(crate) fn callout_status(&self) -> (u32, String) {
        self.callout.status.clone()
    }

    /// `proxy_call_foreign_function`.
    pub(crate) fn call_foreign(&self, name: &str, args: &[u8]) -> Result<Vec<u8>, Status> {
        let f = self.foreign.get(name).cloned().ok_or(Status::NotFound)?;
        f(args).ok_or(Status::InternalFailure)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::callout::GrpcReply;
    use crate::host::PluginConfig;
    use crate::http::Response;
    use crate::state::testing::headers;

    fn state(config: PluginConfig) -> HostState {
        HostState::new(config, 1, usize::MAX)
    }

    fn call(h: &[(&str, &str)]) -> HttpCallRequest {
        HttpCallRequest {
            upstream: "up".into(),
            headers: headers(h),
            body: Vec::new(),
            trailers: Vec::new(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn http_calls_need_a_known_upstream_and_the_pseudo_headers() {
        let mut s = state(
            PluginConfig::new()
                .http_upstream("up", |_| HttpCallReply::Response(Response::new(200))),
        );
        let full = [(":method", "GET"), (":path", "/"), (":authority", "a")];
        assert_eq!(s.http_call(call(&full[..2])), Err(Status::BadArgument));
        let mut other = call(&full);
        other.upstream = "other".into();
        assert_eq!(s.http_call(other), Err(Status::BadArgument));
        assert_eq!(s.http_call(call(&full)), Ok(1));
        assert_eq!(s.events.len(), 1);
    }

    #[test]
    fn stopping_a_grpc_call_drops_its_events() {
        let mut s = state(PluginConfig::new().grpc_upstream("up", |_| GrpcReply::ok("m")));
        let request = GrpcCallRequest {
            upstream: "up".into(),
            service: "s".into(),
            method: "m".into(),
            initial_metadata: Vec::new(),
            message: Vec::new(),
            end_of_stream: true,
        };
        let token = s.grpc_call(request).unwrap();
        assert_eq!(s.grpc_stop(token), Ok(()));
        assert!(s.events.is_empty());
        assert_eq!(s.grpc_stop(token), Err(Status::NotFound));
    }

    #[test]
    fn foreign_functions_answer_or_fail() {
        let config = PluginConfig::new()
            .foreign_function("echo", |a: &[u8]| (!a.is_empty()).then(|| a.to_vec()));
        let s = state(config);
        assert_eq!(s.call_foreign("echo", b"x"), Ok(b"x".to_vec()));
        assert_eq!(s.call_foreign("echo", b""), Err(Status::InternalFailure));
        assert_eq!(s.call_foreign("nope", b""), Err(Status::NotFound));
    }
}
