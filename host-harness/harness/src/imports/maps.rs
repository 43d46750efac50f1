//! Header and metadata maps (`proxy_*_header_map_*`).

use super::{C, Imports};
use crate::abi::{MapType, Status};
use crate::memory::{GuestPtr, GuestSlice, len_u32, proxy};
use crate::state::decode_headers;

fn map_type(kind: i32) -> Result<MapType, Status> {
    MapType::from_abi(kind).ok_or(Status::BadArgument)
}

pub(super) fn link(i: &mut Imports) -> wasmtime::Result<()> {
    i.env(
        "proxy_get_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32, ptr_ptr: i32, size_ptr: i32| {
            proxy(&mut c, |g| {
                let map = map_type(kind)?;
                let key = g.read_string(GuestSlice::new(key, key_len))?;
                let value = g.state_mut().header_value(map, &key)?;
                Ok(g.copy_out(
                    value.as_bytes(),
                    GuestPtr::new(ptr_ptr),
                    GuestPtr::new(size_ptr),
                )?)
            })
        },
    )?;
    i.env(
        "proxy_add_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32, value: i32, value_len: i32| {
            proxy(&mut c, |g| {
                let map = map_type(kind)?;
                let key = g.read_string(GuestSlice::new(key, key_len))?;
                let value = g.read_bytes(GuestSlice::new(value, value_len))?.into();
                Ok(g.state_mut().add_header(map, &key, value)?)
            })
        },
    )?;
    i.env(
        "proxy_replace_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32, value: i32, value_len: i32| {
            proxy(&mut c, |g| {
                let map = map_type(kind)?;
                let key = g.read_string(GuestSlice::new(key, key_len))?;
                let value = g.read_bytes(GuestSlice::new(value, value_len))?.into();
                Ok(g.state_mut().replace_header(map, &key, value)?)
            })
        },
    )?;
    i.env(
        "proxy_remove_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32| {
            proxy(&mut c, |g| {
                let map = map_type(kind)?;
                let key = g.read_string(GuestSlice::new(key, key_len))?;
                Ok(g.state_mut().remove_header(map, &key)?)
            })
        },
    )?;
    i.env(
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, kind: i32, ptr_ptr: i32, size_ptr: i32| {
            proxy(&mut c, |g| {
                let bytes = g.state_mut().header_pairs(map_type(kind)?)?;
                Ok(g.copy_out(&bytes, GuestPtr::new(ptr_ptr), GuestPtr::new(size_ptr))?)
            })
        },
    )?;
    i.env(
        "proxy_set_header_map_pairs",
        |mut c: C<'_>, kind: i32, ptr: i32, len: i32| {
            proxy(&mut c, |g| {
                let map = map_type(kind)?;
                let pairs = decode_headers(&g.read_bytes(GuestSlice::new(ptr, len))?)?;
                Ok(g.state_mut().set_header_pairs(map, pairs)?)
            })
        },
    )?;
    i.env(
        "proxy_get_header_map_size",
        |mut c: C<'_>, kind: i32, size_ptr: i32| {
            proxy(&mut c, |g| {
                let size = g.state_mut().header_map_size(map_type(kind)?)?;
                Ok(g.write(GuestPtr::new(size_ptr), len_u32(size))?)
            })
        },
    )?;
    Ok(())
}
