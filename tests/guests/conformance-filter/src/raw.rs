//! The two ABI 0.2.1 host calls the Rust SDK does not wrap.
#![allow(
    unsafe_code,
    reason = "declaring and calling host imports needs unsafe"
)]

use proxy_wasm::types::{BufferType, MapType, Status};

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_get_header_map_size(map_type: u32, return_size: *mut usize) -> u32;
    fn proxy_get_buffer_status(
        buffer_type: u32,
        return_size: *mut usize,
        return_flags: *mut u32,
    ) -> u32;
}

fn status(code: u32) -> Result<(), Status> {
    match code {
        0 => Ok(()),
        1 => Err(Status::NotFound),
        2 => Err(Status::BadArgument),
        _ => Err(Status::InternalFailure),
    }
}

/// The serialized size of a header map.
pub(crate) fn header_map_size(map: MapType) -> Result<usize, Status> {
    let mut size = 0_usize;
    // SAFETY: the host writes one `usize` through a pointer to a live local.
    status(unsafe { proxy_get_header_map_size(map as u32, &mut size) })?;
    Ok(size)
}

/// The size of a buffer.
pub(crate) fn buffer_status(buffer: BufferType) -> Result<usize, Status> {
    let mut size = 0_usize;
    let mut flags = 0_u32;
    // SAFETY: the host writes one `usize` and one `u32` through pointers to
    // live locals.
    status(unsafe { proxy_get_buffer_status(buffer as u32, &mut size, &mut flags) })?;
    Ok(size)
}
