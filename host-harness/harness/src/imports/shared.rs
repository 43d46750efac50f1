//! Shared data and shared queues.

use super::{C, Imports};
use crate::memory::{GuestPtr, GuestSlice, proxy};

pub(super) fn link(i: &mut Imports) -> wasmtime::Result<()> {
    i.env(
        "proxy_get_shared_data",
        |mut c: C<'_>, key: i32, key_len: i32, ptr_ptr: i32, size_ptr: i32, cas_ptr: i32| {
            proxy(&mut c, |g| {
                let key = g.read_bytes(GuestSlice::new(key, key_len))?;
                let (value, cas) = g.state().shared_data(&key)?;
                g.copy_out(&value, GuestPtr::new(ptr_ptr), GuestPtr::new(size_ptr))?;
                Ok(g.write(GuestPtr::new(cas_ptr), cas)?)
            })
        },
    )?;
    i.env(
        "proxy_set_shared_data",
        |mut c: C<'_>, key: i32, key_len: i32, value: i32, value_len: i32, cas: i32| {
            proxy(&mut c, |g| {
                let key = g.read_bytes(GuestSlice::new(key, key_len))?;
                let value = g.read_bytes(GuestSlice::new(value, value_len))?;
                Ok(g.state().set_shared_data(&key, value, cas as u32)?)
            })
        },
    )?;
    i.env(
        "proxy_register_shared_queue",
        |mut c: C<'_>, name: i32, name_len: i32, id_ptr: i32| {
            proxy(&mut c, |g| {
                let name = g.read_bytes(GuestSlice::new(name, name_len))?;
                let id = g.state().register_queue(&name);
                Ok(g.write(GuestPtr::new(id_ptr), id)?)
            })
        },
    )?;
    i.env(
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vm: i32, vm_len: i32, name: i32, name_len: i32, id_ptr: i32| {
            proxy(&mut c, |g| {
                let vm = g.read_string(GuestSlice::new(vm, vm_len))?;
                let name = g.read_bytes(GuestSlice::new(name, name_len))?;
                let id = g.state().resolve_queue(&vm, &name)?;
                Ok(g.write(GuestPtr::new(id_ptr), id)?)
            })
        },
    )?;
    i.env(
        "proxy_enqueue_shared_queue",
        |mut c: C<'_>, id: i32, value: i32, value_len: i32| {
            proxy(&mut c, |g| {
                let value = g.read_bytes(GuestSlice::new(value, value_len))?;
                Ok(g.state().enqueue(id as u32, value)?)
            })
        },
    )?;
    i.env(
        "proxy_dequeue_shared_queue",
        |mut c: C<'_>, id: i32, ptr_ptr: i32, size_ptr: i32| {
            proxy(&mut c, |g| {
                let value = g.state().dequeue(id as u32)?;
                Ok(g.copy_out(&value, GuestPtr::new(ptr_ptr), GuestPtr::new(size_ptr))?)
            })
        },
    )?;
    Ok(())
}
