//! Device memory: global allocations and the generic-address windows of the other state spaces.
//!
//! Generic addressing (PTX ISA 5.1.1): each non-global state space gets its own window of the
//! 64-bit generic address space, far above any global allocation, so `cvta` is an add or a
//! subtract and a generic access finds its space from the address alone.

use crate::error::{Result, VmError};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

/// Width of one window.
pub(crate) const WIN_BITS: u32 = 40;
/// Generic window of shared memory.
pub(crate) const SHARED_WIN: u64 = 0x71 << WIN_BITS;
/// Generic window of local memory.
pub(crate) const LOCAL_WIN: u64 = 0x72 << WIN_BITS;
/// Generic window of constant memory.
pub(crate) const CONST_WIN: u64 = 0x73 << WIN_BITS;
/// Kernel parameters (their param-space addresses are the generic ones).
pub(crate) const PARAM_WIN: u64 = 0x74 << WIN_BITS;
/// `.func` parameters of the current thread.
pub(crate) const FPARAM_WIN: u64 = 0x75 << WIN_BITS;
/// First global allocation address.
pub(crate) const GLOBAL_BASE: u64 = 0x1_0000_0000;
/// Bytes of unmapped space after each allocation, so small overruns fault.
pub(crate) const GUARD: u64 = 4096;

/// One global allocation. Its bytes are atomics so that blocks running on several host
/// threads may touch them concurrently without undefined behaviour in Rust; plain loads and
/// stores use relaxed ordering (PTX weak accesses), `atom` uses read-modify-write atomics.
pub(crate) struct Buffer {
    words: Box<[AtomicU64]>,
    pub len: usize,
}

impl Buffer {
    pub fn new(len: usize) -> Buffer {
        let n = len.div_ceil(8).max(1);
        let words: Box<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
        Buffer { words, len }
    }

    fn base(&self) -> *mut u8 {
        self.words.as_ptr() as *mut u8
    }

    /// Loads `size` (1, 2, 4, 8) bytes at `off`, which must be in bounds and aligned.
    #[inline]
    pub fn load(&self, off: usize, size: u8) -> u64 {
        debug_assert!(off + size as usize <= self.words.len() * 8 && off % size as usize == 0);
        // SAFETY: callers check `off + size <= len` and natural alignment; the storage is
        // 8-aligned, so the pointer is aligned for the access size and lies inside `words`.
        // Accesses are atomic, so concurrent blocks do not race in the Rust sense.
        unsafe {
            let p = self.base().add(off);
            match size {
                1 => AtomicU8::from_ptr(p).load(Relaxed) as u64,
                2 => AtomicU16::from_ptr(p as *mut u16).load(Relaxed) as u64,
                4 => AtomicU32::from_ptr(p as *mut u32).load(Relaxed) as u64,
                _ => AtomicU64::from_ptr(p as *mut u64).load(Relaxed),
            }
        }
    }

    /// Stores the low `size` bytes of `v` at `off` (in bounds and aligned).
    #[inline]
    pub fn store(&self, off: usize, size: u8, v: u64) {
        debug_assert!(off + size as usize <= self.words.len() * 8 && off % size as usize == 0);
        // SAFETY: as in `load`.
        unsafe {
            let p = self.base().add(off);
            match size {
                1 => AtomicU8::from_ptr(p).store(v as u8, Relaxed),
                2 => AtomicU16::from_ptr(p as *mut u16).store(v as u16, Relaxed),
                4 => AtomicU32::from_ptr(p as *mut u32).store(v as u32, Relaxed),
                _ => AtomicU64::from_ptr(p as *mut u64).store(v, Relaxed),
            }
        }
    }

    /// The 32-bit atomic cell at `off` (4-aligned, in bounds).
    pub fn atomic32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: callers check bounds and 4-byte alignment; the cell lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.base().add(off) as *mut u32) }
    }

    /// The 64-bit atomic cell at `off` (8-aligned, in bounds).
    pub fn atomic64(&self, off: usize) -> &AtomicU64 {
        &self.words[off / 8]
    }
}

/// Global memory: allocations sorted by address.
#[derive(Default)]
pub(crate) struct Global {
    /// (base, buffer), sorted by base.
    pub allocs: Vec<(u64, Arc<Buffer>)>,
    next: u64,
}

impl Global {
    pub fn alloc(&mut self, bytes: usize) -> Result<u64> {
        if self.next == 0 {
            self.next = GLOBAL_BASE;
        }
        let base = self.next;
        let span = (bytes as u64).div_ceil(256) * 256 + GUARD;
        if base + span >= SHARED_WIN {
            return Err(VmError::Memory { message: format!("out of device address space allocating {bytes} bytes") });
        }
        self.next = base + span;
        self.allocs.push((base, Arc::new(Buffer::new(bytes))));
        Ok(base)
    }

    pub fn free(&mut self, ptr: u64) -> Result<()> {
        match self.allocs.binary_search_by_key(&ptr, |a| a.0) {
            Ok(i) => {
                self.allocs.remove(i);
                Ok(())
            }
            Err(_) => {
                Err(VmError::Memory { message: format!("free of {ptr:#x}, which is not the start of an allocation") })
            }
        }
    }

    /// The allocation holding `[addr, addr+len)` and the offset of `addr` in it.
    #[inline]
    pub fn find(&self, addr: u64, len: usize) -> Option<(&Buffer, usize)> {
        let i = self.allocs.partition_point(|a| a.0 <= addr);
        if i == 0 {
            return None;
        }
        let (base, buf) = &self.allocs[i - 1];
        let off = (addr - base) as usize;
        if off.checked_add(len)? <= buf.len {
            Some((buf, off))
        } else {
            None
        }
    }

    /// `find`, trying the allocation of the previous hit first.
    #[inline(always)]
    pub fn find_cached(&self, addr: u64, len: usize, cache: &std::cell::Cell<usize>) -> Option<(&Buffer, usize)> {
        if let Some((base, buf)) = self.allocs.get(cache.get()) {
            let off = addr.wrapping_sub(*base) as usize;
            if addr >= *base && off + len <= buf.len {
                return Some((buf, off));
            }
        }
        let i = self.allocs.partition_point(|a| a.0 <= addr);
        cache.set(i.saturating_sub(1));
        self.find(addr, len)
    }

    pub fn write(&self, ptr: u64, data: &[u8]) -> Result<()> {
        let (buf, off) = self.find(ptr, data.len()).ok_or_else(|| VmError::Memory {
            message: format!("write of {} bytes at {ptr:#x} is outside every allocation", data.len()),
        })?;
        for (i, &b) in data.iter().enumerate() {
            buf.store(off + i, 1, b as u64);
        }
        Ok(())
    }

    pub fn read(&self, ptr: u64, out: &mut [u8]) -> Result<()> {
        let (buf, off) = self.find(ptr, out.len()).ok_or_else(|| VmError::Memory {
            message: format!("read of {} bytes at {ptr:#x} is outside every allocation", out.len()),
        })?;
        for (i, b) in out.iter_mut().enumerate() {
            *b = buf.load(off + i, 1) as u8;
        }
        Ok(())
    }
}
