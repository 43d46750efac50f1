//! Guest memory, reached only through typed, bounds-checked pointers.
//!
//! Every host function decodes its arguments and encodes its results here:
//! a guest pointer is a [`GuestPtr`] or a [`GuestSlice`], never a bare
//! offset, and every access checks its range against the memory as it is
//! at that moment (the guest may have grown it). A bad access becomes a
//! [`MemoryError`], and [`Fault`] maps it to the answer the ABI gives for
//! it (`INVALID_MEMORY_ACCESS`, or `EFAULT` for WASI) in one place.

use std::marker::PhantomData;

use wasmtime::{Caller, Memory, TypedFunc};

use crate::abi::{Errno, Status};
use crate::state::HostState;

/// The exports the host needs to reach guest memory.
#[derive(Clone)]
pub(crate) struct GuestExports {
    pub(crate) memory: Memory,
    /// `proxy_on_memory_allocate` or `malloc`: where returned data goes.
    pub(crate) alloc: TypedFunc<i32, i32>,
}

/// Why a guest memory access failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemoryError {
    /// The module's memory is not attached yet (a host call during
    /// instantiation).
    #[error("the module's memory is not available yet")]
    NoMemory,
    /// The range is not inside the memory.
    #[error("guest range at {addr} of {len} bytes is outside memory of {size} bytes")]
    OutOfBounds { addr: u32, len: u64, size: usize },
    /// The data does not fit a wasm32 length.
    #[error("{0} bytes do not fit a guest length")]
    TooLarge(usize),
    /// The guest allocator answered null for a non-empty request.
    #[error("the guest allocator returned null for {0} bytes")]
    AllocatorNull(usize),
    /// The guest allocator trapped; the VM has failed and the host call
    /// must trap too.
    #[error("the guest allocator failed")]
    AllocatorTrap(#[source] wasmtime::Error),
}

/// The address of a `T` in guest memory, as wasm32 passes it (an `i32`
/// holding an unsigned offset).
pub(crate) struct GuestPtr<T> {
    addr: u32,
    ty: PhantomData<fn() -> T>,
}

impl<T> Clone for GuestPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for GuestPtr<T> {}

impl<T> std::fmt::Debug for GuestPtr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuestPtr({:#x})", self.addr)
    }
}

impl<T> GuestPtr<T> {
    /// The pointer the guest passed.
    pub(crate) fn new(raw: i32) -> Self {
        Self::at(raw as u32)
    }

    fn at(addr: u32) -> Self {
        Self {
            addr,
            ty: PhantomData,
        }
    }

    /// The address, to hand back to the guest.
    pub(crate) fn addr(self) -> u32 {
        self.addr
    }

    /// True for the null pointer, which some calls accept as "no output".
    pub(crate) fn is_null(self) -> bool {
        self.addr == 0
    }
}

impl<T: Scalar> GuestPtr<T> {
    /// The `n`th `T` of an array starting here.
    pub(crate) fn add(self, n: u32) -> Result<Self, MemoryError> {
        let offset = u64::from(n) * T::SIZE as u64;
        u32::try_from(u64::from(self.addr) + offset)
            .map(Self::at)
            .map_err(|_| MemoryError::OutOfBounds {
                addr: self.addr,
                len: offset,
                size: 0,
            })
    }
}

/// A byte range in guest memory, as the ABI passes it: pointer and length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuestSlice {
    addr: u32,
    len: u32,
}

impl GuestSlice {
    /// The range the guest passed as `ptr, len`.
    pub(crate) fn new(ptr: i32, len: i32) -> Self {
        Self {
            addr: ptr as u32,
            len: len as u32,
        }
    }
}

/// A fixed-size little-endian value the ABI passes by pointer.
pub(crate) trait Scalar: Copy {
    const SIZE: usize;
    fn encode(self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Option<Self>;
}

impl Scalar for u8 {
    const SIZE: usize = 1;
    fn encode(self) -> Vec<u8> {
        vec![self]
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [b] => Some(*b),
            _ => None,
        }
    }
}

impl Scalar for u32 {
    const SIZE: usize = 4;
    fn encode(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self::from_le_bytes(bytes.try_into().ok()?))
    }
}

impl Scalar for u64 {
    const SIZE: usize = 8;
    fn encode(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self::from_le_bytes(bytes.try_into().ok()?))
    }
}

/// A WASI `ciovec`: a buffer the guest wants written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IoVec {
    pub(crate) buf: GuestSlice,
}

impl Scalar for IoVec {
    const SIZE: usize = 8;
    fn encode(self) -> Vec<u8> {
        let mut out = self.buf.addr.encode();
        out.extend(self.buf.len.encode());
        out
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (addr, len) = bytes.split_at_checked(4)?;
        Some(Self {
            buf: GuestSlice {
                addr: u32::decode(addr)?,
                len: u32::decode(len)?,
            },
        })
    }
}

/// The checked range `addr..addr + len` of a memory of `size` bytes.
fn range(addr: u32, len: usize, size: usize) -> Result<std::ops::Range<usize>, MemoryError> {
    let start = addr as usize;
    start
        .checked_add(len)
        .filter(|end| *end <= size)
        .map(|end| start..end)
        .ok_or(MemoryError::OutOfBounds {
            addr,
            len: len as u64,
            size,
        })
}

/// A running host call's view of the guest: its memory and allocator, and
/// the host state.
pub(crate) struct Guest<'a, 'c> {
    caller: &'a mut Caller<'c, HostState>,
}

impl<'a, 'c> Guest<'a, 'c> {
    pub(crate) fn new(caller: &'a mut Caller<'c, HostState>) -> Self {
        Self { caller }
    }

    pub(crate) fn state(&self) -> &HostState {
        self.caller.data()
    }

    pub(crate) fn state_mut(&mut self) -> &mut HostState {
        self.caller.data_mut()
    }

    fn exports(&self) -> Result<GuestExports, MemoryError> {
        self.caller
            .data()
            .guest_exports()
            .cloned()
            .ok_or(MemoryError::NoMemory)
    }

    /// Copies the bytes of `slice` out of guest memory.
    pub(crate) fn read_bytes(&self, slice: GuestSlice) -> Result<Vec<u8>, MemoryError> {
        let memory = self.exports()?.memory;
        let data = memory.data(&*self.caller);
        let range = range(slice.addr, slice.len as usize, data.len())?;
        data.get(range)
            .map(<[u8]>::to_vec)
            .ok_or(MemoryError::OutOfBounds {
                addr: slice.addr,
                len: u64::from(slice.len),
                size: data.len(),
            })
    }

    /// Reads `slice` as text; invalid UTF-8 is replaced, as Envoy's
    /// `std::string_view`s let any byte through.
    pub(crate) fn read_string(&self, slice: GuestSlice) -> Result<String, MemoryError> {
        Ok(String::from_utf8_lossy(&self.read_bytes(slice)?).into_owned())
    }

    /// Reads the `T` at `ptr`.
    pub(crate) fn read<T: Scalar>(&self, ptr: GuestPtr<T>) -> Result<T, MemoryError> {
        let len = u32::try_from(T::SIZE).map_err(|_| MemoryError::TooLarge(T::SIZE))?;
        let bytes = self.read_bytes(GuestSlice {
            addr: ptr.addr,
            len,
        })?;
        T::decode(&bytes).ok_or(MemoryError::TooLarge(T::SIZE))
    }

    /// Writes `bytes` at `ptr`.
    pub(crate) fn write_bytes(
        &mut self,
        ptr: GuestPtr<u8>,
        bytes: &[u8],
    ) -> Result<(), MemoryError> {
        let memory = self.exports()?.memory;
        let data = memory.data_mut(&mut *self.caller);
        let size = data.len();
        let range = range(ptr.addr, bytes.len(), size)?;
        data.get_mut(range)
            .ok_or(MemoryError::OutOfBounds {
                addr: ptr.addr,
                len: bytes.len() as u64,
                size,
            })?
            .copy_from_slice(bytes);
        Ok(())
    }

    /// Writes `value` at `ptr`.
    pub(crate) fn write<T: Scalar>(
        &mut self,
        ptr: GuestPtr<T>,
        value: T,
    ) -> Result<(), MemoryError> {
        self.write_bytes(GuestPtr::at(ptr.addr), &value.encode())
    }

    /// Returns `bytes` the way Envoy returns every value: copied into
    /// memory the guest allocates, with the address written to `ptr_ptr`
    /// and the length to `size_ptr`.
    pub(crate) fn copy_out(
        &mut self,
        bytes: &[u8],
        ptr_ptr: GuestPtr<u32>,
        size_ptr: GuestPtr<u32>,
    ) -> Result<(), MemoryError> {
        // Like Envoy (proxy-wasm-cpp-host's `copyToPointerSize`), an empty
        // value allocates nothing and comes back as a null pointer: the Rust
        // SDK reads that as `None`, so a filter sees no value, not `Some("")`.
        if bytes.is_empty() {
            self.write(ptr_ptr, 0)?;
            return self.write(size_ptr, 0);
        }
        let alloc = self.exports()?.alloc;
        let size = i32::try_from(bytes.len()).map_err(|_| MemoryError::TooLarge(bytes.len()))?;
        let at = alloc
            .call(&mut *self.caller, size)
            .map_err(MemoryError::AllocatorTrap)?;
        let at = GuestPtr::<u8>::new(at);
        if at.is_null() && !bytes.is_empty() {
            return Err(MemoryError::AllocatorNull(bytes.len()));
        }
        self.write_bytes(at, bytes)?;
        self.write(ptr_ptr, at.addr)?;
        self.write(size_ptr, len_u32(bytes.len()))
    }
}

/// A length as the ABI reports it; nothing the harness holds is near 4 GiB.
pub(crate) fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The answer codes of one ABI: `Status` for proxy-wasm, `Errno` for WASI.
pub(crate) trait Answer: Copy {
    const OK: Self;
    /// The answer to a guest pointer or length that is out of bounds.
    const BAD_MEMORY: Self;
    fn code(self) -> i32;
}

impl Answer for Status {
    const OK: Self = Status::Ok;
    const BAD_MEMORY: Self = Status::InvalidMemoryAccess;
    fn code(self) -> i32 {
        Status::code(self)
    }
}

impl Answer for Errno {
    const OK: Self = Errno::Success;
    const BAD_MEMORY: Self = Errno::Fault;
    fn code(self) -> i32 {
        Errno::code(self)
    }
}

/// Why a host call did not succeed: an answer from Envoy's semantics, or a
/// memory access that failed.
#[derive(Debug)]
pub(crate) enum Fault<A> {
    Answer(A),
    Memory(MemoryError),
}

impl From<Status> for Fault<Status> {
    fn from(status: Status) -> Self {
        Self::Answer(status)
    }
}

impl From<Errno> for Fault<Errno> {
    fn from(errno: Errno) -> Self {
        Self::Answer(errno)
    }
}

impl<A> From<MemoryError> for Fault<A> {
    fn from(e: MemoryError) -> Self {
        Self::Memory(e)
    }
}

/// The one place a host call's outcome becomes what the guest sees: the
/// answer code, or a trap when the guest allocator failed under the call.
pub(crate) fn answer<A: Answer>(result: Result<(), Fault<A>>) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(A::OK.code()),
        Err(Fault::Answer(a)) => Ok(a.code()),
        Err(Fault::Memory(MemoryError::AllocatorTrap(e))) => Err(e),
        Err(Fault::Memory(e)) => {
            tracing::debug!(error = %e, "host call refused a guest memory access");
            Ok(A::BAD_MEMORY.code())
        }
    }
}

/// Runs a proxy-wasm host call body against the guest.
pub(crate) fn proxy(
    caller: &mut Caller<'_, HostState>,
    body: impl FnOnce(&mut Guest<'_, '_>) -> Result<(), Fault<Status>>,
) -> wasmtime::Result<i32> {
    answer(body(&mut Guest::new(caller)))
}

/// Runs a WASI host call body against the guest.
pub(crate) fn wasi(
    caller: &mut Caller<'_, HostState>,
    body: impl FnOnce(&mut Guest<'_, '_>) -> Result<(), Fault<Errno>>,
) -> wasmtime::Result<i32> {
    answer(body(&mut Guest::new(caller)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_at_both_ends() {
        assert_eq!(range(0, 4, 4).ok(), Some(0..4));
        assert_eq!(range(4, 0, 4).ok(), Some(4..4));
        assert!(range(1, 4, 4).is_err());
        assert!(range(5, 0, 4).is_err());
        assert!(range(u32::MAX, usize::MAX, usize::MAX).is_err());
    }

    #[test]
    fn array_pointers_do_not_wrap() {
        let p = GuestPtr::<IoVec>::new(8);
        assert_eq!(p.add(2).map(|p| p.addr).ok(), Some(24));
        assert!(GuestPtr::<IoVec>::new(-8).add(1).is_err());
    }

    #[test]
    fn answers_map_memory_errors_per_abi() {
        let oob = || MemoryError::OutOfBounds {
            addr: 0,
            len: 1,
            size: 0,
        };
        assert_eq!(
            answer::<Status>(Err(oob().into())).ok(),
            Some(Status::InvalidMemoryAccess.code())
        );
        assert_eq!(
            answer::<Errno>(Err(oob().into())).ok(),
            Some(Errno::Fault.code())
        );
        assert_eq!(answer::<Status>(Err(Status::NotFound.into())).ok(), Some(1));
        let trap = MemoryError::AllocatorTrap(wasmtime::Error::msg("boom"));
        assert!(answer::<Status>(Err(trap.into())).is_err());
    }

    #[test]
    fn iovecs_decode_little_endian() {
        let v = IoVec::decode(&[1, 0, 0, 0, 2, 0, 0, 0]).map(|v| (v.buf.addr, v.buf.len));
        assert_eq!(v, Some((1, 2)));
        assert!(IoVec::decode(&[1, 2, 3]).is_none());
    }
}
