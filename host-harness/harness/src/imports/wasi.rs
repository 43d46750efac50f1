//! The WASI preview1 subset Envoy gives filters: stdout and stderr become
//! logs, clocks are the virtual ones, and the rest answers as Envoy does.

use super::{C, Imports, ProcExit};
use crate::abi::Errno;
use crate::memory::{GuestPtr, IoVec, len_u32, wasi};
use crate::state::HostState;

/// Clock ids of `clock_time_get`.
const REALTIME: i32 = 0;
const MONOTONIC: i32 = 1;

/// The `fdstat` reported for stdout and stderr: only the `fd_write` right.
fn stdio_fdstat() -> [u8; 24] {
    const RIGHT_FD_WRITE: u64 = 64;
    let mut stat = [0_u8; 24];
    if let Some(rights) = stat.get_mut(8..16) {
        rights.copy_from_slice(&RIGHT_FD_WRITE.to_le_bytes());
    }
    stat
}

pub(super) fn link(i: &mut Imports) -> wasmtime::Result<()> {
    i.wasi(
        "fd_write",
        |mut c: C<'_>, fd: i32, iovs: i32, iovs_len: i32, written_ptr: i32| {
            wasi(&mut c, |g| {
                let level = HostState::stdio_level(fd)?;
                let iovs = GuestPtr::<IoVec>::new(iovs);
                let mut text = Vec::new();
                for n in 0..iovs_len as u32 {
                    let iov = g.read(iovs.add(n)?)?;
                    text.extend(g.read_bytes(iov.buf)?);
                }
                let written = len_u32(text.len());
                g.state_mut().log_output(level, text);
                Ok(g.write(GuestPtr::new(written_ptr), written)?)
            })
        },
    )?;
    i.wasi("fd_read", |_: i32, _: i32, _: i32, _: i32| {
        Errno::Nosys.code()
    })?;
    i.wasi("fd_seek", |_: i32, _: i64, _: i32, _: i32| {
        tracing::warn!("filter called fd_seek, which Envoy ignores");
        Errno::Success.code()
    })?;
    i.wasi("fd_close", |_: i32| {
        tracing::warn!("filter called fd_close, which Envoy ignores");
        Errno::Success.code()
    })?;
    i.wasi("fd_fdstat_get", |mut c: C<'_>, fd: i32, ptr: i32| {
        wasi(&mut c, |g| {
            HostState::stdio_level(fd)?;
            Ok(g.write_bytes(GuestPtr::new(ptr), &stdio_fdstat())?)
        })
    })?;
    i.wasi("fd_prestat_get", |_: i32, _: i32| Errno::Badf.code())?;
    i.wasi("fd_prestat_dir_name", |_: i32, _: i32, _: i32| {
        Errno::Nosys.code()
    })?;
    i.wasi(
        "path_open",
        |_: i32, _: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32, _: i32| {
            Errno::Noent.code()
        },
    )?;
    i.wasi(
        "environ_sizes_get",
        |mut c: C<'_>, count_ptr: i32, size_ptr: i32| {
            wasi(&mut c, |g| {
                let env = g.state().environ();
                let size: usize = env.iter().map(Vec::len).sum();
                g.write(GuestPtr::new(count_ptr), len_u32(env.len()))?;
                Ok(g.write(GuestPtr::new(size_ptr), len_u32(size))?)
            })
        },
    )?;
    i.wasi("environ_get", |mut c: C<'_>, array: i32, buf: i32| {
        wasi(&mut c, |g| {
            let (array, mut at) = (GuestPtr::<u32>::new(array), GuestPtr::<u8>::new(buf));
            for (n, entry) in (0..).zip(g.state().environ()) {
                g.write(array.add(n)?, at.addr())?;
                g.write_bytes(at, &entry)?;
                at = at.add(len_u32(entry.len()))?;
            }
            Ok(())
        })
    })?;
    i.wasi("args_sizes_get", |mut c: C<'_>, argc: i32, size: i32| {
        wasi(&mut c, |g| {
            g.write(GuestPtr::<u32>::new(argc), 0)?;
            Ok(g.write(GuestPtr::<u32>::new(size), 0)?)
        })
    })?;
    i.wasi("args_get", |_: i32, _: i32| Errno::Success.code())?;
    i.wasi(
        "clock_time_get",
        |mut c: C<'_>, id: i32, _precision: i64, ptr: i32| {
            wasi(&mut c, |g| {
                let value = match id {
                    REALTIME => g.state().now_nanos(),
                    MONOTONIC => g.state().monotonic_nanos(),
                    _ => return Err(Errno::Notsup.into()),
                };
                Ok(g.write(GuestPtr::new(ptr), value)?)
            })
        },
    )?;
    i.wasi("random_get", |mut c: C<'_>, ptr: i32, len: i32| {
        wasi(&mut c, |g| {
            let bytes = g.state_mut().random_bytes(len as u32 as usize)?;
            Ok(g.write_bytes(GuestPtr::new(ptr), &bytes)?)
        })
    })?;
    i.wasi("proc_exit", |code: i32| -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(ProcExit(code)))
    })?;
    Ok(())
}
