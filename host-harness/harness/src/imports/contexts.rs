//! Contexts: `proxy_set_effective_context` and `proxy_done`.

use super::{C, Imports};
use crate::memory::proxy;

pub(super) fn link(i: &mut Imports) -> wasmtime::Result<()> {
    i.env("proxy_set_effective_context", |mut c: C<'_>, id: i32| {
        proxy(&mut c, |g| {
            Ok(g.state_mut().set_effective_context(id as u32)?)
        })
    })?;
    i.env("proxy_done", |mut c: C<'_>| {
        proxy(&mut c, |g| Ok(g.state_mut().done()?))
    })?;
    Ok(())
}
