//! `proxy_log`, the log level, the clock and the timer.

use super::{C, Imports};
use crate::abi::{AbiVersion, LogLevel, Status};
use crate::memory::{GuestPtr, GuestSlice, proxy};

pub(super) fn link(i: &mut Imports, abi: AbiVersion) -> wasmtime::Result<()> {
    i.env(
        "proxy_log",
        |mut c: C<'_>, level: i32, ptr: i32, len: i32| {
            proxy(&mut c, |g| {
                let level = LogLevel::from_abi(level).ok_or(Status::BadArgument)?;
                let message = g.read_string(GuestSlice::new(ptr, len))?;
                g.state_mut().log(level, message);
                Ok(())
            })
        },
    )?;
    // Envoy links `proxy_get_log_level` only for ABI 0.2.1 modules.
    if abi == AbiVersion::V0_2_1 {
        i.env("proxy_get_log_level", |mut c: C<'_>, ptr: i32| {
            proxy(&mut c, |g| {
                let level = g.state().log_level().to_abi() as u32;
                Ok(g.write(GuestPtr::new(ptr), level)?)
            })
        })?;
    }
    i.env(
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, ptr: i32| {
            proxy(&mut c, |g| {
                let now = g.state().now_nanos();
                Ok(g.write(GuestPtr::new(ptr), now)?)
            })
        },
    )?;
    i.env(
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, period: i32| {
            proxy(&mut c, |g| {
                g.state_mut().set_tick_period(period as u32);
                Ok(())
            })
        },
    )?;
    i.env("pthread_equal", |a: i32, b: i32| i32::from(a == b))?;
    i.env("emscripten_notify_memory_growth", |_: i32| {})?;
    Ok(())
}
