//! `proxy_get_property`, `proxy_set_property`, `proxy_get_configuration`.

use super::{C, Imports};
use crate::memory::{GuestPtr, GuestSlice, proxy};

pub(super) fn link(i: &mut Imports) -> wasmtime::Result<()> {
    i.env(
        "proxy_get_property",
        |mut c: C<'_>, path: i32, path_len: i32, ptr_ptr: i32, size_ptr: i32| {
            proxy(&mut c, |g| {
                let path = g.read_bytes(GuestSlice::new(path, path_len))?;
                let value = g.state_mut().property(&path)?;
                Ok(g.copy_out(&value, GuestPtr::new(ptr_ptr), GuestPtr::new(size_ptr))?)
            })
        },
    )?;
    i.env(
        "proxy_set_property",
        |mut c: C<'_>, path: i32, path_len: i32, value: i32, value_len: i32| {
            proxy(&mut c, |g| {
                let path = g.read_bytes(GuestSlice::new(path, path_len))?;
                let value = g.read_bytes(GuestSlice::new(value, value_len))?;
                Ok(g.state_mut().set_property_path(&path, value)?)
            })
        },
    )?;
    i.env(
        "proxy_get_configuration",
        |mut c: C<'_>, ptr_ptr: i32, size_ptr: i32| {
            proxy(&mut c, |g| {
                let config = g.state().plugin_configuration().to_vec();
                Ok(g.copy_out(&config, GuestPtr::new(ptr_ptr), GuestPtr::new(size_ptr))?)
            })
        },
    )?;
    Ok(())
}
