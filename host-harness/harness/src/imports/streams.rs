//! Stream control: continue, close, route cache, local replies.

use super::{C, Imports};
use crate::abi::{Status, StreamType};
use crate::http::LocalReply;
use crate::memory::{GuestSlice, proxy};
use crate::state::decode_headers;

fn stream_type(kind: i32) -> Result<StreamType, Status> {
    StreamType::from_abi(kind).ok_or(Status::BadArgument)
}

pub(super) fn link(i: &mut Imports) -> wasmtime::Result<()> {
    i.env("proxy_continue_stream", |mut c: C<'_>, kind: i32| {
        proxy(&mut c, |g| Ok(g.state_mut().resume(stream_type(kind)?)?))
    })?;
    i.env("proxy_continue_request", |mut c: C<'_>| {
        proxy(&mut c, |g| Ok(g.state_mut().resume(StreamType::Request)?))
    })?;
    i.env("proxy_continue_response", |mut c: C<'_>| {
        proxy(&mut c, |g| {
            Ok(g.state_mut().resume(StreamType::Response)?)
        })
    })?;
    i.env("proxy_close_stream", |mut c: C<'_>, kind: i32| {
        proxy(&mut c, |g| Ok(g.state_mut().close(stream_type(kind)?)?))
    })?;
    i.env("proxy_clear_route_cache", |mut c: C<'_>| {
        proxy(&mut c, |g| {
            g.state_mut().clear_route_cache();
            Ok(())
        })
    })?;
    i.env(
        "proxy_send_local_response",
        |mut c: C<'_>,
         status: i32,
         details: i32,
         details_len: i32,
         body: i32,
         body_len: i32,
         headers: i32,
         headers_len: i32,
         grpc_status: i32| {
            proxy(&mut c, |g| {
                let details = g.read_string(GuestSlice::new(details, details_len))?;
                let body = g.read_bytes(GuestSlice::new(body, body_len))?;
                let headers =
                    decode_headers(&g.read_bytes(GuestSlice::new(headers, headers_len))?)?;
                g.state_mut().send_local_response(LocalReply {
                    status: u16::try_from(status as u32).unwrap_or(u16::MAX),
                    details,
                    grpc_status,
                    headers,
                    body,
                });
                Ok(())
            })
        },
    )?;
    Ok(())
}
