//! Byte buffers (`proxy_*_buffer_*`).

use super::{C, Imports};
use crate::abi::{BufferType, Status};
use crate::memory::{GuestPtr, GuestSlice, len_u32, proxy};

fn buffer_type(kind: i32) -> Result<BufferType, Status> {
    BufferType::from_abi(kind).ok_or(Status::BadArgument)
}

pub(super) fn link(i: &mut Imports) -> wasmtime::Result<()> {
    i.env(
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, max: i32, ptr_ptr: i32, size_ptr: i32| {
            proxy(&mut c, |g| {
                let kind = buffer_type(kind)?;
                let bytes = g.state_mut().buffer_bytes(kind, start as u32, max as u32)?;
                let (ptr_ptr, size_ptr) = (GuestPtr::new(ptr_ptr), GuestPtr::new(size_ptr));
                // Nothing to return is answered without allocating, as Envoy does.
                if bytes.is_empty() {
                    g.write(ptr_ptr, 0_u32)?;
                    g.write(size_ptr, 0_u32)?;
                    return Ok(());
                }
                Ok(g.copy_out(&bytes, ptr_ptr, size_ptr)?)
            })
        },
    )?;
    i.env(
        "proxy_get_buffer_status",
        |mut c: C<'_>, kind: i32, len_ptr: i32, flags_ptr: i32| {
            proxy(&mut c, |g| {
                let len = g.state_mut().buffer_len(buffer_type(kind)?)?;
                g.write(GuestPtr::new(len_ptr), len_u32(len))?;
                Ok(g.write(GuestPtr::new(flags_ptr), 0_u32)?)
            })
        },
    )?;
    i.env(
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
            proxy(&mut c, |g| {
                let kind = buffer_type(kind)?;
                let data = g.read_bytes(GuestSlice::new(ptr, len))?;
                Ok(g.state_mut()
                    .set_buffer_bytes(kind, start as u32, size as u32, data)?)
            })
        },
    )?;
    Ok(())
}
