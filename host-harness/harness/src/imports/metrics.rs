//! Metrics (`proxy_*_metric`).

use super::{C, Imports};
use crate::memory::{GuestPtr, GuestSlice, proxy};

pub(super) fn link(i: &mut Imports) -> wasmtime::Result<()> {
    i.env(
        "proxy_define_metric",
        |mut c: C<'_>, kind: i32, name: i32, name_len: i32, id_ptr: i32| {
            proxy(&mut c, |g| {
                let name = g.read_string(GuestSlice::new(name, name_len))?;
                let id = g.state_mut().metrics_mut().define(kind, name)?;
                Ok(g.write(GuestPtr::new(id_ptr), id)?)
            })
        },
    )?;
    i.env(
        "proxy_increment_metric",
        |mut c: C<'_>, id: i32, delta: i64| {
            proxy(&mut c, |g| {
                Ok(g.state_mut().metrics_mut().increment(id as u32, delta)?)
            })
        },
    )?;
    i.env(
        "proxy_record_metric",
        |mut c: C<'_>, id: i32, value: i64| {
            proxy(&mut c, |g| {
                Ok(g.state_mut()
                    .metrics_mut()
                    .record(id as u32, value as u64)?)
            })
        },
    )?;
    i.env("proxy_get_metric", |mut c: C<'_>, id: i32, ptr: i32| {
        proxy(&mut c, |g| {
            let value = g.state_mut().metrics_mut().get(id as u32)?;
            Ok(g.write(GuestPtr::new(ptr), value)?)
        })
    })?;
    Ok(())
}
