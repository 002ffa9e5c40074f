//! Device memory: global allocations and the generic-address windows of the other state spaces.
//!
//! Generic addressing (PTX ISA 5.1.1): each non-global state space gets its own window of the
//! 64-bit generic address space, far above any global allocation, so `cvta` is an add or a
//! subtract and a generic access finds its space from the address alone.

use crate::error::{Result, VmError};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use crate::sanitizer::AllocShadow;

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
    /// Sanitizer and counter state, present once a launch counted or sanitised this allocation.
    tracking: OnceLock<Tracking>,
}

/// Per-allocation state of the sanitizer and the counters: the initcheck / write-conflict shadow
/// and, per launch, which bytes were read and written (first touch), as bitmaps of atomics since
/// blocks run in parallel on host threads.
pub(crate) struct Tracking {
    pub shadow: AllocShadow,
    read: Box<[AtomicU64]>,
    written: Box<[AtomicU64]>,
    /// A launch touched the allocation since the last reset: only then is resetting (O(bytes))
    /// and counting worth it, so launches that leave big buffers alone stay cheap.
    dirty: std::sync::atomic::AtomicBool,
}

impl Tracking {
    fn new(len: usize, initialized: bool) -> Tracking {
        let shadow = AllocShadow::new(len);
        if initialized {
            shadow.host_write(0, len);
        }
        let bits = || (0..len.div_ceil(64).max(1)).map(|_| AtomicU64::new(0)).collect();
        Tracking { shadow, read: bits(), written: bits(), dirty: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Starts a launch: forgets its writers and its touched bytes.
    pub fn begin_launch(&self) {
        if !self.dirty.swap(false, Relaxed) {
            return;
        }
        self.shadow.begin_launch();
        for w in self.read.iter().chain(self.written.iter()) {
            w.store(0, Relaxed);
        }
    }

    fn touch(&self, bits: &[AtomicU64], off: usize, len: usize) {
        if !self.dirty.load(Relaxed) {
            self.dirty.store(true, Relaxed);
        }
        let mut i = off;
        let end = off + len;
        while i < end {
            let word = i / 64;
            let hi = end.min((word + 1) * 64);
            let n = hi - i;
            let m = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << (i % 64) };
            // Bytes already marked need no locked read-modify-write (the common case).
            if let Some(w) = bits.get(word).filter(|w| w.load(Relaxed) & m != m) {
                w.fetch_or(m, Relaxed);
            }
            i = hi;
        }
    }

    /// Records bytes read by the launch.
    pub fn touch_read(&self, off: usize, len: usize) {
        self.touch(&self.read, off, len);
    }

    /// Records bytes written by the launch.
    pub fn touch_write(&self, off: usize, len: usize) {
        self.touch(&self.written, off, len);
    }

    /// Distinct bytes and 32-byte sectors read, then written, in this launch. Allocations start
    /// 256-byte aligned, so the allocation's sectors are the device's.
    pub fn unique(&self) -> [u64; 4] {
        if !self.dirty.load(Relaxed) {
            return [0; 4];
        }
        let count = |bits: &[AtomicU64]| {
            let (mut bytes, mut sectors) = (0u64, 0u64);
            for w in bits {
                let v = w.load(Relaxed);
                bytes += u64::from(v.count_ones());
                sectors += u64::from(v as u32 != 0) + u64::from((v >> 32) != 0);
            }
            (bytes, sectors)
        };
        let (br, sr) = count(&self.read);
        let (bw, sw) = count(&self.written);
        [br, sr, bw, sw]
    }
}

impl Buffer {
    pub fn new(len: usize) -> Buffer {
        let n = len.div_ceil(8).max(1);
        let words: Box<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
        Buffer { words, len, tracking: OnceLock::new() }
    }

    /// The allocation's tracking state, if a sanitised or counted launch has created it.
    #[inline]
    pub fn tracking(&self) -> Option<&Tracking> {
        self.tracking.get()
    }

    /// The tracking state, created on first use. An allocation made while the sanitizer was off has
    /// an unknown history, so it starts fully initialised (no initcheck false positives).
    pub fn ensure_tracking(&self) -> &Tracking {
        self.tracking.get_or_init(|| Tracking::new(self.len, true))
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
    /// New allocations get tracking at once (nothing initialised): the sanitizer is on.
    pub track: bool,
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
        let buf = Buffer::new(bytes);
        if self.track {
            // A fresh allocation holds garbage on a GPU (cudaMalloc does not clear): nothing is
            // initialised until the host or a kernel writes it.
            let _ = buf.tracking.set(Tracking::new(bytes, false));
        }
        self.allocs.push((base, Arc::new(buf)));
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
        if let Some(t) = buf.tracking() {
            t.shadow.host_write(off, data.len());
        }
        Ok(())
    }

    /// Fills `len` bytes at `ptr` with `byte` and marks them uninitialised for initcheck.
    pub fn poison(&self, ptr: u64, byte: u8, len: usize) -> Result<()> {
        let (buf, off) = self.find(ptr, len).ok_or_else(|| VmError::Memory {
            message: format!("poison fill of {len} bytes at {ptr:#x} is outside every allocation"),
        })?;
        for i in 0..len {
            buf.store(off + i, 1, byte as u64);
        }
        // An allocation made with the sanitizer off gets its tracking here, so that the poison is
        // seen as uninitialised once the sanitizer is on.
        buf.ensure_tracking().shadow.host_poison(off, len);
        Ok(())
    }

    /// For a faulting access of `len` bytes at `addr`: the nearest allocation and where the access
    /// lies relative to it (memcheck's report).
    pub fn describe(&self, addr: u64, len: usize) -> String {
        let i = self.allocs.partition_point(|a| a.0 <= addr);
        let below = i.checked_sub(1).and_then(|j| self.allocs.get(j));
        let above = self.allocs.get(i);
        let after = |(base, buf): &(u64, Arc<Buffer>)| {
            let end = base + buf.len as u64;
            let off = addr - base;
            if addr >= end {
                (
                    addr - end,
                    format!(
                        "nearest allocation: {} bytes at {base:#x}; the access starts {} bytes past its end (offset {off} from its start)",
                        buf.len,
                        addr - end
                    ),
                )
            } else if off + len as u64 > buf.len as u64 {
                (
                    0,
                    format!(
                        "nearest allocation: {} bytes at {base:#x}; the access at offset {off} runs {} bytes past its end",
                        buf.len,
                        off + len as u64 - buf.len as u64
                    ),
                )
            } else {
                (0, format!("allocation: {} bytes at {base:#x}; the access is at offset {off} from its start", buf.len))
            }
        };
        let before = |(base, buf): &(u64, Arc<Buffer>)| {
            (
                base - addr,
                format!(
                    "nearest allocation: {} bytes at {base:#x}; the access starts {} bytes before its start",
                    buf.len,
                    base - addr
                ),
            )
        };
        match (below.map(after), above.map(before)) {
            (Some(a), Some(b)) => {
                if a.0 <= b.0 {
                    a.1
                } else {
                    b.1
                }
            }
            (Some(a), None) => a.1,
            (None, Some(b)) => b.1,
            (None, None) => "no allocation exists".to_string(),
        }
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
