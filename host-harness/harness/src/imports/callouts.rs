//! HTTP and gRPC callouts, `proxy_get_status` and foreign functions.

use std::time::Duration;

use super::{C, Imports};
use crate::abi::Status;
use crate::callout::{GrpcCallRequest, HttpCallRequest};
use crate::memory::{Fault, Guest, GuestPtr, GuestSlice, len_u32, proxy};
use crate::state::decode_headers;

fn http_call(
    g: &mut Guest<'_, '_>,
    upstream: GuestSlice,
    headers: GuestSlice,
    body: GuestSlice,
    trailers: GuestSlice,
    timeout: i32,
    token_ptr: GuestPtr<u32>,
) -> Result<(), Fault<Status>> {
    let request = HttpCallRequest {
        upstream: g.read_string(upstream)?,
        headers: decode_headers(&g.read_bytes(headers)?)?,
        body: g.read_bytes(body)?,
        trailers: decode_headers(&g.read_bytes(trailers)?)?,
        timeout: Duration::from_millis(u64::from(timeout as u32)),
    };
    // Check the token's memory before starting, as Envoy does.
    g.write(token_ptr, 0)?;
    let token = g.state_mut().http_call(request)?;
    Ok(g.write(token_ptr, token)?)
}

/// A gRPC call (with its message) or stream (without one) as the guest
/// described it.
fn grpc_request(
    g: &Guest<'_, '_>,
    [upstream, service, method, metadata]: [GuestSlice; 4],
    message: Option<GuestSlice>,
) -> Result<GrpcCallRequest, Fault<Status>> {
    Ok(GrpcCallRequest {
        upstream: g.read_string(upstream)?,
        service: g.read_string(service)?,
        method: g.read_string(method)?,
        initial_metadata: decode_headers(&g.read_bytes(metadata)?)?,
        message: message
            .map(|m| g.read_bytes(m))
            .transpose()?
            .unwrap_or_default(),
        end_of_stream: message.is_some(),
    })
}

pub(super) fn link(i: &mut Imports) -> wasmtime::Result<()> {
    let http = |mut c: C<'_>,
                upstream: i32,
                upstream_len: i32,
                headers: i32,
                headers_len: i32,
                body: i32,
                body_len: i32,
                trailers: i32,
                trailers_len: i32,
                timeout: i32,
                token_ptr: i32| {
        proxy(&mut c, |g| {
            http_call(
                g,
                GuestSlice::new(upstream, upstream_len),
                GuestSlice::new(headers, headers_len),
                GuestSlice::new(body, body_len),
                GuestSlice::new(trailers, trailers_len),
                timeout,
                GuestPtr::new(token_ptr),
            )
        })
    };
    i.env("proxy_http_call", http)?;
    // The name some older SDKs use for the same call.
    i.env("proxy_dispatch_http_call", http)?;
    i.env(
        "proxy_grpc_call",
        |mut c: C<'_>,
         upstream: i32,
         upstream_len: i32,
         service: i32,
         service_len: i32,
         method: i32,
         method_len: i32,
         metadata: i32,
         metadata_len: i32,
         message: i32,
         message_len: i32,
         _timeout: i32,
         token_ptr: i32| {
            proxy(&mut c, |g| {
                let parts = [
                    GuestSlice::new(upstream, upstream_len),
                    GuestSlice::new(service, service_len),
                    GuestSlice::new(method, method_len),
                    GuestSlice::new(metadata, metadata_len),
                ];
                let message = GuestSlice::new(message, message_len);
                let request = grpc_request(g, parts, Some(message))?;
                let token = g.state_mut().grpc_call(request)?;
                Ok(g.write(GuestPtr::new(token_ptr), token)?)
            })
        },
    )?;
    i.env(
        "proxy_grpc_stream",
        |mut c: C<'_>,
         upstream: i32,
         upstream_len: i32,
         service: i32,
         service_len: i32,
         method: i32,
         method_len: i32,
         metadata: i32,
         metadata_len: i32,
         token_ptr: i32| {
            proxy(&mut c, |g| {
                let parts = [
                    GuestSlice::new(upstream, upstream_len),
                    GuestSlice::new(service, service_len),
                    GuestSlice::new(method, method_len),
                    GuestSlice::new(metadata, metadata_len),
                ];
                let request = grpc_request(g, parts, None)?;
                let token = g.state_mut().grpc_stream(request)?;
                Ok(g.write(GuestPtr::new(token_ptr), token)?)
            })
        },
    )?;
    i.env(
        "proxy_grpc_send",
        |mut c: C<'_>, token: i32, message: i32, message_len: i32, end_stream: i32| {
            proxy(&mut c, |g| {
                let message = g.read_bytes(GuestSlice::new(message, message_len))?;
                Ok(g.state_mut()
                    .grpc_send(token as u32, message, end_stream != 0)?)
            })
        },
    )?;
    i.env("proxy_grpc_cancel", |mut c: C<'_>, token: i32| {
        proxy(&mut c, |g| Ok(g.state_mut().grpc_stop(token as u32)?))
    })?;
    i.env("proxy_grpc_close", |mut c: C<'_>, token: i32| {
        proxy(&mut c, |g| Ok(g.state_mut().grpc_stop(token as u32)?))
    })?;
    i.env(
        "proxy_get_status",
        |mut c: C<'_>, code_ptr: i32, ptr_ptr: i32, size_ptr: i32| {
            proxy(&mut c, |g| {
                let (code, message) = g.state().callout_status();
                g.write(GuestPtr::new(code_ptr), code)?;
                Ok(g.copy_out(
                    message.as_bytes(),
                    GuestPtr::new(ptr_ptr),
                    GuestPtr::new(size_ptr),
                )?)
            })
        },
    )?;
    i.env(
        "proxy_call_foreign_function",
        |mut c: C<'_>,
         name: i32,
         name_len: i32,
         args: i32,
         args_len: i32,
         ptr_ptr: i32,
         size_ptr: i32| {
            proxy(&mut c, |g| {
                let name = g.read_string(GuestSlice::new(name, name_len))?;
                let args = g.read_bytes(GuestSlice::new(args, args_len))?;
                let result = g.state().call_foreign(&name, &args)?;
                let (ptr_ptr, size_ptr) = (GuestPtr::new(ptr_ptr), GuestPtr::<u32>::new(size_ptr));
                // Either output may be null: the caller wants less.
                if !ptr_ptr.is_null() {
                    g.copy_out(&result, ptr_ptr, size_ptr)?;
                } else if !size_ptr.is_null() {
                    g.write(size_ptr, len_u32(result.len()))?;
                }
                Ok(())
            })
        },
    )?;
    Ok(())
}
