//! The sanitizer's bookkeeping: shadow state for shared-memory races, uninitialised reads, and
//! conflicting global writes between blocks. The interpreter reports events (accesses, barriers,
//! warp synchronisations); these types decide what is a finding.
//!
//! Happens-before, as CUDA defines it for the cases kernels rely on:
//! - a barrier (`bar.sync`/`barrier.sync`, named or not) orders every access its participating warps
//!   made before it with every access they make after it;
//! - a release (an mbarrier arrival, or the completion of a bulk copy's bytes on it) orders the
//!   releasing warp's earlier accesses before the accesses a warp makes after an acquire (a wait
//!   that observes the phase's completion), and nothing else: the acquiring warp's own earlier
//!   accesses stay unordered with the releasing warp's later ones (PTX ISA 9.7.13.15.16 and the
//!   memory consistency model: `arrive` is a release, `test_wait`/`try_wait` an acquire);
//! - a warp-level synchronisation (`bar.warp.sync`, and every `.sync` collective: shfl, vote, match,
//!   redux, mma, ldmatrix) orders accesses of the lanes in its member mask;
//! - program order orders a thread's own accesses;
//! - atomics never race with atomics.
//!
//! Happens-before is transitive: a warp learns at each synchronisation what the warps it synchronises
//! with knew (a vector clock per warp). Two accesses to one byte race when they come from different
//! threads, at least one writes, not both are atomic, and no chain of synchronisations orders them.

use std::fmt;

/// What a sanitizer finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// Shared memory: a write after a write with no synchronisation between.
    SharedWriteAfterWrite,
    /// Shared memory: a read after a write with no synchronisation between.
    SharedReadAfterWrite,
    /// Shared memory: a write after a read with no synchronisation between.
    SharedWriteAfterRead,
    /// Global memory: two blocks wrote one address non-atomically in one launch.
    GlobalWriteConflict,
    /// A read of global memory never written since allocation (upload and memset count as writes).
    UninitializedGlobalRead,
    /// A read of shared memory not written earlier in the block.
    UninitializedSharedRead,
    /// Shared memory: a write after a write with no synchronisation between, where the later
    /// writer stored the bytes the memory already held (e.g. every lane of a warp storing the
    /// warp's reduced sum to one slot). The result does not depend on the order, so, as in
    /// compute-sanitizer, it is a warning.
    SharedWriteAfterWriteSameValue,
    /// Definedness tracking: a value derived from uninitialised memory was stored to global
    /// memory (or given to an atomic on it).
    UndefinedValueStoredToGlobal,
    /// Definedness tracking: a value derived from uninitialised memory was used as an address.
    UndefinedAddress,
    /// Definedness tracking: a value derived from uninitialised memory decided control flow (a
    /// branch, the guard of an instruction with side effects, a barrier's operands, a member mask).
    UndefinedControlFlow,
    /// Definedness tracking: a value derived from uninitialised memory was a warp vote's input,
    /// whose result every member then acts on.
    UndefinedVote,
    /// A read of shared memory that a `cp.async.bulk` still writes: the reading warp has not
    /// observed (by an mbarrier wait, or a barrier with a warp that did) the completion of the
    /// mbarrier phase the copy completes on.
    SharedReadBeforeBulkCopyComplete,
}

/// How serious a finding is, as compute-sanitizer grades hazards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing, but the kernel's result does not depend on it.
    Warning,
    /// A hazard or an uninitialised use: the result may be wrong.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

impl FindingKind {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::SharedWriteAfterWrite => "racecheck: shared write-after-write",
            FindingKind::SharedReadAfterWrite => "racecheck: shared read-after-write",
            FindingKind::SharedWriteAfterRead => "racecheck: shared write-after-read",
            FindingKind::GlobalWriteConflict => "racecheck: global write conflict between blocks",
            FindingKind::UninitializedGlobalRead => "initcheck: uninitialized global read",
            FindingKind::UninitializedSharedRead => "initcheck: uninitialized shared read",
            FindingKind::SharedWriteAfterWriteSameValue => "racecheck: shared write-after-write of the same value",
            FindingKind::UndefinedValueStoredToGlobal => "initcheck: uninitialized value stored to global memory",
            FindingKind::UndefinedAddress => "initcheck: uninitialized value used as an address",
            FindingKind::UndefinedControlFlow => "initcheck: uninitialized value decides control flow",
            FindingKind::UndefinedVote => "initcheck: uninitialized value in a warp vote",
            FindingKind::SharedReadBeforeBulkCopyComplete => {
                "racecheck: shared read of a cp.async.bulk destination before its mbarrier phase completed"
            }
        }
    }

    /// Whether the kind is one of definedness tracking's (an undefined value reached a sink); for
    /// those, [`Finding::other`] is the read of uninitialised memory the value came from.
    pub fn is_undefined_use(self) -> bool {
        matches!(
            self,
            FindingKind::UndefinedValueStoredToGlobal
                | FindingKind::UndefinedAddress
                | FindingKind::UndefinedControlFlow
                | FindingKind::UndefinedVote
        )
    }

    /// Whether the finding is an error or a warning.
    pub fn severity(self) -> Severity {
        match self {
            FindingKind::SharedWriteAfterWriteSameValue => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// Where an access happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    /// Block index (x, y, z).
    pub block: [u32; 3],
    /// Thread index within the block (x, y, z).
    pub thread: [u32; 3],
    /// The PTX line, and the CUDA source `file:line` from `.loc` when the PTX has it.
    pub line: String,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [bx, by, bz] = self.block;
        let [tx, ty, tz] = self.thread;
        write!(f, "block ({bx},{by},{bz}) thread ({tx},{ty},{tz}) at {}", self.line)
    }
}

/// One finding, with how often the same (kind, lines) pair occurred in the launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What it is.
    pub kind: FindingKind,
    /// The kernel.
    pub kernel: String,
    /// The access that exposed it.
    pub at: Place,
    /// The earlier access it conflicts with (races), or the read of uninitialised memory an
    /// undefined value came from (definedness findings, when known).
    pub other: Option<Place>,
    /// The address (shared: offset in the block's shared window; global: device address).
    pub address: u64,
    /// How many accesses hit this same finding (same kind and lines).
    pub count: u64,
}

impl Finding {
    /// Whether the finding is an error or a warning (from its kind).
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.severity())?;
        write!(f, "{} in kernel {}: {} at address {:#x}", self.kind.name(), self.kernel, self.at, self.address)?;
        if let Some(o) = &self.other {
            if self.kind.is_undefined_use() {
                write!(f, ", from uninitialized memory read at {}", o.line)?;
            } else {
                write!(f, ", conflicting with {o}")?;
            }
        }
        write!(f, " ({} occurrence{})", self.count, if self.count == 1 { "" } else { "s" })
    }
}

/// Everything the sanitizer found in one launch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SanitizerReport {
    /// Deduplicated findings, in the order first seen.
    pub findings: Vec<Finding>,
}

impl SanitizerReport {
    /// No findings at all, warnings included.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings that are errors.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity() == Severity::Error)
    }

    /// The findings that are warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity() == Severity::Warning)
    }

    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Adds a finding, folding it into an earlier one of the same kind at the same lines.
    pub fn add(&mut self, f: Finding) {
        let same = |g: &Finding| {
            g.kind == f.kind
                && g.at.line == f.at.line
                && g.other.as_ref().map(|p| &p.line) == f.other.as_ref().map(|p| &p.line)
        };
        match self.findings.iter_mut().find(|g| same(g)) {
            Some(g) => g.count += f.count,
            None => self.findings.push(f),
        }
    }

    /// Folds another report in (one per block or per worker).
    pub fn merge(&mut self, other: SanitizerReport) {
        for f in other.findings {
            self.add(f);
        }
    }

    /// How many findings of `kind`.
    pub fn count(&self, kind: FindingKind) -> u64 {
        self.findings.iter().filter(|f| f.kind == kind).map(|f| f.count).sum()
    }
}

impl fmt::Display for SanitizerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.findings.is_empty() {
            return write!(f, "sanitizer: no findings");
        }
        let errors = self.errors().count();
        writeln!(f, "sanitizer: {} error(s), {} warning(s)", errors, self.findings.len() - errors)?;
        for x in &self.findings {
            writeln!(f, "  {x}")?;
        }
        Ok(())
    }
}

/// How an access touches memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    /// A plain load.
    Read,
    /// A plain store.
    Write,
    /// An atomic read-modify-write.
    Atomic,
}

/// `Stamp::who` flag: the stamp holds an access (an empty slot is all zeros).
const PRESENT: u32 = 1 << 31;
/// `Stamp::who` flag: the access was atomic.
const ATOMIC: u32 = 1 << 30;
/// `Stamp::who` flag, used on a byte's write slot only: the byte was initialised.
const BYTE_INIT: u32 = 1 << 29;
/// `Stamp::who` bits holding the linear thread index (blocks have at most 1024 threads).
const TID: u32 = BYTE_INIT - 1;

/// One earlier access of a shared byte: who and when (in sync-epoch terms). Packed into 16 bytes
/// (presence and atomicity live in spare bits of the thread index) so a byte's whole shadow is 48
/// bytes that compare and copy as a few vector moves: the shadow walk is the sanitizer's hot loop.
///
/// Held as two `u64`s (who and bar; wsync and line) rather than four `u32`s: a read hands its
/// stamp to the next read of the same word, often from the next lane a moment later, and loads that
/// match the earlier stores' width forward from the store buffer instead of stalling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stamp {
    /// Bits 0..32: the linear thread index in the block, plus the `PRESENT`, `ATOMIC` and
    /// `BYTE_INIT` flags. Bits 32..64: the block's barrier sequence number at the access.
    who_bar: u64,
    /// Bits 0..32: the warp's sync sequence number at the access. Bits 32..64: the instruction's
    /// id (PTX line index) for reports.
    wsync_line: u64,
}

impl Stamp {
    fn new(who: u32, bar: u32, wsync: u32, line: u32) -> Stamp {
        Stamp { who_bar: u64::from(who) | u64::from(bar) << 32, wsync_line: u64::from(wsync) | u64::from(line) << 32 }
    }

    fn who(&self) -> u32 {
        self.who_bar as u32
    }

    fn bar(&self) -> u32 {
        (self.who_bar >> 32) as u32
    }

    fn wsync(&self) -> u32 {
        self.wsync_line as u32
    }

    fn line(&self) -> u32 {
        (self.wsync_line >> 32) as u32
    }

    fn present(&self) -> bool {
        self.who() & PRESENT != 0
    }

    fn tid(&self) -> u32 {
        self.who() & TID
    }

    fn atomic(&self) -> bool {
        self.who() & ATOMIC != 0
    }
}

/// Shadow of one shared-memory byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ShadowByte {
    /// The last write (when `PRESENT`), and the byte's initialised flag (`BYTE_INIT`), which
    /// outlives nothing but is kept here to keep the byte at 48 bytes.
    write: Stamp,
    /// Reads since the last write by up to two distinct threads: enough to expose a write-after-read
    /// race whenever one exists with a thread other than the writer.
    reads: [Stamp; 2],
}

impl ShadowByte {
    fn init(&self) -> bool {
        self.write.who() & BYTE_INIT != 0
    }
}

/// A race found by [`BlockShadow::access`]: the kind and the earlier access's thread and line id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// What was found.
    pub kind: FindingKind,
    /// The earlier access's linear thread index (races), or the reader itself (initcheck).
    pub other_tid: u32,
    /// The earlier access's line id (races), or the reader's (initcheck).
    pub other_line: u32,
}

/// Shared-memory shadow and synchronisation history of one block.
///
/// Kernels access shared memory in whole 4-byte words (or multiples) far more often than in parts,
/// so the 4 bytes of an aligned word usually share one shadow state. The shadow keeps one state per
/// word and falls back to per-byte states only for words accessed in parts: a word access then
/// checks and updates one state instead of four, which is what the byte-by-byte rules would do for
/// four equal states.
pub struct BlockShadow {
    /// Shared-memory size in bytes: accesses are clipped to it.
    len: usize,
    /// Per word: its state, while `split` says it is uniform.
    words: Vec<ShadowByte>,
    /// Per word: whether its bytes have their own states, in `bytes[4 * word..4 * word + 4]`.
    split: Vec<bool>,
    /// Per byte: its state, meaningful only in split words.
    bytes: Vec<ShadowByte>,
    /// The words touched since the last reset lie in `dirty.0..dirty.1`: resetting clears only
    /// those, as blocks often use a fraction of a large shadow and clearing it all dominated.
    dirty: (usize, usize),
    /// Kept apart from the states so the walk can borrow both at once.
    sync: SyncHistory,
}

/// The block's synchronisation history, which decides whether an earlier access is ordered.
struct SyncHistory {
    /// Barrier sequence (incremented by every completed barrier of any kind).
    bar_seq: u32,
    /// Sequence number of the last barrier all warps took part in.
    full_bar: u32,
    /// Vector clocks, one row per warp: `clock[b * nwarps + a]` is the largest barrier sequence
    /// number `s` such that warp a's accesses stamped at or before `s` happen before warp b's next
    /// access (through partial barriers and mbarrier release/acquire pairs; full barriers live in
    /// `full_bar` alone, which every entry implicitly includes).
    clock: Vec<u32>,
    nwarps: usize,
    /// Per warp: sync sequence, last full-mask sync, and per lane pair the last common sync.
    wsync_seq: Vec<u32>,
    wsync_full: Vec<u32>,
    wsync_pair: Vec<[[u32; 32]; 32]>,
    /// Whether a read of an uninitialised byte is a finding. Off when the interpreter tracks
    /// definedness through registers instead (see `crate::definedness`): the read then only makes
    /// the loaded value undefined.
    report_uninit: bool,
}

impl BlockShadow {
    /// Shadow for `smem_bytes` of shared memory and `nwarps` warps; everything uninitialised.
    pub fn new(smem_bytes: usize, nwarps: usize) -> Self {
        let nwords = smem_bytes.div_ceil(4);
        BlockShadow {
            len: smem_bytes,
            words: vec![ShadowByte::default(); nwords],
            split: vec![false; nwords],
            bytes: vec![ShadowByte::default(); nwords * 4],
            dirty: (usize::MAX, 0),
            sync: SyncHistory {
                bar_seq: 1,
                full_bar: 0,
                clock: vec![0; nwarps * nwarps],
                nwarps,
                wsync_seq: vec![1; nwarps],
                wsync_full: vec![0; nwarps],
                wsync_pair: vec![[[0; 32]; 32]; nwarps],
                report_uninit: true,
            },
        }
    }

    /// Starts a new block with the same geometry.
    pub fn reset(&mut self) {
        let (lo, hi) = std::mem::replace(&mut self.dirty, (usize::MAX, 0));
        if lo < hi {
            // Split words' byte states are rewritten when a word splits again, so they can stay.
            self.words[lo..hi].fill(ShadowByte::default());
            self.split[lo..hi].fill(false);
        }
        let s = &mut self.sync;
        s.bar_seq = 1;
        s.full_bar = 0;
        s.clock.fill(0);
        s.wsync_seq.fill(1);
        s.wsync_full.fill(0);
        for m in &mut s.wsync_pair {
            *m = [[0; 32]; 32];
        }
    }

    /// Applies `f` to the state of every byte of the `len` bytes at `offset` (clipped to the
    /// shadow), in address order: once per whole uniform word, else once per byte. `f` must give
    /// equal states for equal states, so that a uniform word stays exactly what its bytes would be.
    #[inline(always)]
    fn update(&mut self, offset: usize, len: usize, mut f: impl FnMut(&SyncHistory, &mut ShadowByte)) {
        let end = offset.saturating_add(len).min(self.len);
        if offset >= end {
            return;
        }
        self.dirty = (self.dirty.0.min(offset / 4), self.dirty.1.max(end.div_ceil(4)));
        let BlockShadow { words, split, bytes, sync, .. } = self;
        let mut i = offset;
        while i < end {
            let w = i / 4;
            let (ws, we) = (w * 4, w * 4 + 4);
            let bs = &mut bytes[ws..we];
            if i == ws && we <= end {
                if split[w] {
                    for b in bs.iter_mut() {
                        f(sync, b);
                    }
                    // Equal bytes again: the word is uniform once more.
                    if bs.iter().all(|b| *b == bs[0]) {
                        words[w] = bs[0];
                        split[w] = false;
                    }
                } else {
                    f(sync, &mut words[w]);
                }
                i = we;
            } else {
                if !split[w] {
                    bs.fill(words[w]);
                    split[w] = true;
                }
                let e = we.min(end);
                for b in &mut bs[i - ws..e - ws] {
                    f(sync, b);
                }
                i = e;
            }
        }
    }

    /// A barrier completed; `warps[w]` says whether warp `w` took part.
    pub fn barrier(&mut self, warps: &[bool]) {
        let s = &mut self.sync;
        let seq = s.bar_seq;
        s.bar_seq += 1;
        if warps.iter().take(s.nwarps).all(|&p| p) {
            s.full_bar = seq;
            return;
        }
        // Every part learns what any part knew, and each part's accesses up to the barrier.
        let n = s.nwarps;
        let parts: Vec<usize> = (0..n).filter(|&w| warps.get(w).copied().unwrap_or(false)).collect();
        let mut joined = vec![0u32; n];
        for &a in &parts {
            for (j, &c) in joined.iter_mut().zip(&s.clock[a * n..a * n + n]) {
                *j = (*j).max(c);
            }
        }
        for &a in &parts {
            joined[a] = seq;
        }
        for &b in &parts {
            s.clock[b * n..b * n + n].copy_from_slice(&joined);
        }
    }

    /// A release by `warp` (an mbarrier arrival, or a bulk copy it issued completing its bytes):
    /// joins into `into` (a vector clock of [`BlockShadow::warps`] entries, kept by the caller for
    /// the synchronisation object) everything the warp's accesses so far are ordered after, and
    /// those accesses themselves. Accesses the warp makes later are not covered.
    pub fn release(&mut self, warp: usize, into: &mut [u32]) {
        let s = &mut self.sync;
        let n = s.nwarps;
        if warp >= n || into.len() < n {
            return;
        }
        for (i, &c) in into.iter_mut().zip(&s.clock[warp * n..warp * n + n]) {
            *i = (*i).max(c).max(s.full_bar);
        }
        into[warp] = into[warp].max(s.bar_seq);
        s.bar_seq += 1;
    }

    /// An acquire by `warp` (a wait that observed an mbarrier phase's completion) of the releases
    /// joined in `from` (see [`BlockShadow::release`]): the released accesses happen before the
    /// warp's next accesses. Nothing of the warp's own earlier accesses is ordered by it.
    pub fn acquire(&mut self, warp: usize, from: &[u32]) {
        let s = &mut self.sync;
        let n = s.nwarps;
        if warp >= n {
            return;
        }
        for (c, &f) in s.clock[warp * n..warp * n + n].iter_mut().zip(from) {
            *c = (*c).max(f);
        }
    }

    /// The number of warps the shadow was made for (the length of a vector clock).
    pub fn warps(&self) -> usize {
        self.sync.nwarps
    }

    /// A warp-level synchronisation of `warp` among the lanes of `mask` completed.
    pub fn warp_sync(&mut self, warp: usize, mask: u32) {
        let s = &mut self.sync;
        let seq = s.wsync_seq[warp];
        s.wsync_seq[warp] += 1;
        if mask == u32::MAX {
            s.wsync_full[warp] = seq;
            return;
        }
        let lanes: Vec<usize> = (0..32).filter(|l| mask & (1 << l) != 0).collect();
        let m = &mut s.wsync_pair[warp];
        for &a in &lanes {
            for &b in &lanes {
                m[a][b] = seq;
            }
        }
    }

    /// Whether reads of uninitialised bytes are initcheck findings (the default). Turned off when
    /// the interpreter tracks definedness and asks [`BlockShadow::is_initialized`] itself.
    pub fn set_report_uninitialized(&mut self, on: bool) {
        self.sync.report_uninit = on;
    }

    /// Whether every byte of the `len` bytes at `offset` holds initialised (defined) data. Bytes
    /// outside the shadow count as initialised (the access faults elsewhere).
    pub fn is_initialized(&self, offset: usize, len: usize) -> bool {
        let end = offset.saturating_add(len).min(self.len);
        (offset..end).all(|i| {
            let w = i / 4;
            if self.split[w] {
                self.bytes[i].init()
            } else {
                self.words[w].init()
            }
        })
    }

    /// Marks bytes as holding undefined data (a store of an undefined value): a later read yields
    /// an undefined value again. The last-writer record stays, for racecheck.
    pub fn mark_undefined(&mut self, offset: usize, len: usize) {
        self.update(offset, len, |_, b| b.write.who_bar &= !u64::from(BYTE_INIT));
    }

    /// Marks bytes written by something outside the threads' program order (none today; kept for
    /// cp.async completion, which writes on the thread's behalf at its wait).
    pub fn mark_initialized(&mut self, offset: usize, len: usize) {
        self.update(offset, len, |_, b| b.write.who_bar |= u64::from(BYTE_INIT));
    }

    /// Records an access of `len` bytes at shared offset `offset` by linear thread `tid`, from the
    /// instruction with line id `line`. Returns the first finding it exposes, if any (one per access:
    /// the rest of the bytes usually repeat it).
    #[inline]
    pub fn access(&mut self, tid: u32, offset: usize, len: usize, kind: AccessKind, line: u32) -> Option<Hit> {
        self.access_same(tid, offset, len, kind, line, false)
    }

    /// [`BlockShadow::access`], for a write that stored exactly the bytes the memory held before
    /// it when `same` is true: a write-after-write race it exposes is then
    /// [`FindingKind::SharedWriteAfterWriteSameValue`], a warning, and the walk keeps looking for
    /// an error (a write-after-read race) to report instead.
    #[inline]
    pub fn access_same(
        &mut self,
        tid: u32,
        offset: usize,
        len: usize,
        kind: AccessKind,
        line: u32,
        same: bool,
    ) -> Option<Hit> {
        let warp = (tid / 32) as usize;
        let atomic = if kind == AccessKind::Atomic { ATOMIC } else { 0 };
        let stamp = Stamp::new(PRESENT | atomic | (tid & TID), self.sync.bar_seq, self.sync.wsync_seq[warp], line);
        let mut hit = None;
        // The common case, whole uniform words, without the general walk.
        let (w, n) = (offset / 4, len / 4);
        if offset % 4 == 0
            && len % 4 == 0
            && len > 0
            && offset + len <= self.len
            && self.split[w..w + n].iter().all(|s| !s)
        {
            self.dirty = (self.dirty.0.min(w), self.dirty.1.max(w + n));
            for word in &mut self.words[w..w + n] {
                self.sync.step(word, stamp, tid, kind, same, &mut hit);
            }
            return hit;
        }
        self.access_walk(tid, stamp, offset, len, kind, same)
    }

    /// [`BlockShadow::access`] past its one-uniform-word fast path, kept out of line so that the
    /// fast path inlines into the interpreter's per-lane loop.
    #[inline(never)]
    fn access_walk(
        &mut self,
        tid: u32,
        stamp: Stamp,
        offset: usize,
        len: usize,
        kind: AccessKind,
        same: bool,
    ) -> Option<Hit> {
        let mut hit = None;
        self.update(
            offset,
            len,
            #[inline(always)]
            |sync, b| sync.step(b, stamp, tid, kind, same, &mut hit),
        );
        hit
    }
}

impl SyncHistory {
    /// Whether `prior` is ordered before the current access of thread `tid`.
    #[inline(always)]
    fn ordered(&self, prior: &Stamp, tid: u32) -> bool {
        let ptid = prior.tid();
        if ptid == tid {
            return true;
        }
        let (wa, wb) = ((ptid / 32) as usize, (tid / 32) as usize);
        if self.full_bar >= prior.bar() || self.clock[wb * self.nwarps + wa] >= prior.bar() {
            return true;
        }
        if wa == wb {
            let (la, lb) = ((ptid % 32) as usize, (tid % 32) as usize);
            return self.wsync_full[wa] >= prior.wsync() || self.wsync_pair[wa][la][lb] >= prior.wsync();
        }
        false
    }

    /// One byte of an access: checks `b` against `stamp` (recording the first finding in `hit`, or
    /// an error in place of a warning found earlier) and updates it in place (copying whole states
    /// in and out through the stack cost more than the checks).
    #[inline(always)]
    fn step(&self, b: &mut ShadowByte, stamp: Stamp, tid: u32, kind: AccessKind, same: bool, hit: &mut Option<Hit>) {
        let open = |hit: &Option<Hit>| hit.is_none_or(|h| h.kind.severity() == Severity::Warning);
        if kind != AccessKind::Write && self.report_uninit && !b.init() && hit.is_none() {
            *hit = Some(Hit { kind: FindingKind::UninitializedSharedRead, other_tid: tid, other_line: stamp.line() });
        }
        let w = b.write;
        if w.present() {
            let both_atomic = w.atomic() && stamp.atomic();
            if !both_atomic && open(hit) && !self.ordered(&w, tid) {
                let k = match kind {
                    AccessKind::Read => FindingKind::SharedReadAfterWrite,
                    AccessKind::Write if same && !w.atomic() => FindingKind::SharedWriteAfterWriteSameValue,
                    _ => FindingKind::SharedWriteAfterWrite,
                };
                if hit.is_none() || k.severity() == Severity::Error {
                    *hit = Some(Hit { kind: k, other_tid: w.tid(), other_line: w.line() });
                }
            }
        }
        if kind != AccessKind::Read {
            for r in b.reads.iter().filter(|r| r.present()) {
                let both_atomic = r.atomic() && stamp.atomic();
                if !both_atomic && open(hit) && !self.ordered(r, tid) {
                    *hit =
                        Some(Hit { kind: FindingKind::SharedWriteAfterRead, other_tid: r.tid(), other_line: r.line() });
                }
            }
        }
        match kind {
            AccessKind::Read => {
                // Keep the newest read of each of up to two distinct threads.
                let (r0, r1) = (b.reads[0].who(), b.reads[1].who());
                let mine = |who: u32| who & PRESENT != 0 && who & TID == tid;
                if mine(r0) {
                    b.reads[0] = stamp;
                } else if mine(r1) {
                    b.reads[1] = stamp;
                } else if r0 & PRESENT == 0 {
                    b.reads[0] = stamp;
                } else if r1 & PRESENT == 0 {
                    b.reads[1] = stamp;
                } else {
                    b.reads[0] = b.reads[1];
                    b.reads[1] = stamp;
                }
            }
            AccessKind::Write | AccessKind::Atomic => {
                b.write = Stamp { who_bar: stamp.who_bar | u64::from(BYTE_INIT), ..stamp };
                b.reads = if kind == AccessKind::Atomic { [stamp, Stamp::default()] } else { [Stamp::default(); 2] };
            }
        }
    }
}

/// Shadow of one global allocation: per byte, whether it was ever written, and which block wrote it
/// non-atomically in the current launch. Shared by the worker threads of a launch.
pub struct AllocShadow {
    /// Bit 31: initialised. Bits 0..31: writer block + 1 in this launch (0: none).
    cells: Vec<std::sync::atomic::AtomicU32>,
    /// Whether a non-atomic kernel write may have recorded a writer since the last
    /// `begin_launch`: launches that only read an allocation then skip the scan of every cell.
    has_writers: std::sync::atomic::AtomicBool,
}

const INIT: u32 = 1 << 31;
const WRITER: u32 = INIT - 1;

impl AllocShadow {
    /// A fresh allocation: nothing initialised.
    pub fn new(len: usize) -> Self {
        AllocShadow {
            cells: (0..len).map(|_| std::sync::atomic::AtomicU32::new(0)).collect(),
            has_writers: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The cells of `len` bytes at `offset`, clipped to the allocation.
    fn range(&self, offset: usize, len: usize) -> &[std::sync::atomic::AtomicU32] {
        let start = offset.min(self.cells.len());
        let end = offset.saturating_add(len).min(self.cells.len());
        &self.cells[start..end]
    }

    /// The host wrote bytes (upload, memset): they are initialised.
    pub fn host_write(&self, offset: usize, len: usize) {
        for c in self.range(offset, len) {
            c.fetch_or(INIT, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The host filled bytes with a poison pattern: they hold data, but nothing a kernel may read
    /// before writing it, so they count as uninitialised again.
    pub fn host_poison(&self, offset: usize, len: usize) {
        for c in self.range(offset, len) {
            c.fetch_and(!INIT, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Forgets the previous launch's writers (initialisation stays).
    pub fn begin_launch(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.has_writers.swap(false, Relaxed) {
            return;
        }
        // Only cells with a writer change: a load is much cheaper than a locked read-modify-write.
        for c in &self.cells {
            if c.load(Relaxed) & WRITER != 0 {
                c.fetch_and(INIT, Relaxed);
            }
        }
    }

    /// Whether every byte of the range was initialised.
    pub fn is_initialized(&self, offset: usize, len: usize) -> bool {
        self.range(offset, len).iter().all(|c| c.load(std::sync::atomic::Ordering::Relaxed) & INIT != 0)
    }

    /// A kernel wrote bytes from block `block` (linear index). Returns another block that already
    /// wrote one of them non-atomically in this launch, if any (atomic writes never conflict).
    pub fn write(&self, offset: usize, len: usize, block: u32, atomic: bool) -> Option<u32> {
        use std::sync::atomic::Ordering::Relaxed;
        let me = (block & WRITER) + 1;
        let mut conflict = None;
        if !atomic && !self.has_writers.load(Relaxed) {
            self.has_writers.store(true, Relaxed);
        }
        for c in self.range(offset, len) {
            let mut cur = c.load(Relaxed);
            // Skip the locked read-modify-write when it would store what the cell holds already
            // (a block rewriting its own bytes, or an atomic on initialised bytes): the common case.
            if atomic {
                if cur & INIT == 0 {
                    c.fetch_or(INIT, Relaxed);
                }
                continue;
            }
            loop {
                let prev = cur & WRITER;
                if prev != 0 && prev != me {
                    conflict.get_or_insert(prev - 1);
                    if cur & INIT == 0 {
                        c.fetch_or(INIT, Relaxed);
                    }
                    break;
                }
                if cur == INIT | me {
                    break;
                }
                match c.compare_exchange_weak(cur, INIT | me, Relaxed, Relaxed) {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
        conflict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessKind::{Atomic, Read, Write};

    fn all(n: usize) -> Vec<bool> {
        vec![true; n]
    }

    #[test]
    fn write_then_read_by_another_warp_without_barrier_races() {
        let mut s = BlockShadow::new(64, 2);
        assert_eq!(s.access(0, 0, 4, Write, 10), None);
        let hit = s.access(32, 0, 4, Read, 20).unwrap();
        assert_eq!(hit, Hit { kind: FindingKind::SharedReadAfterWrite, other_tid: 0, other_line: 10 });
    }

    #[test]
    fn a_block_barrier_orders_write_and_read() {
        let mut s = BlockShadow::new(64, 2);
        s.access(0, 0, 4, Write, 10);
        s.barrier(&all(2));
        assert_eq!(s.access(32, 0, 4, Read, 20), None);
        // ... and the next write after the reads needs another barrier.
        assert_eq!(s.access(0, 0, 4, Write, 30).map(|h| h.kind), Some(FindingKind::SharedWriteAfterRead));
    }

    #[test]
    fn write_after_write_by_two_threads_races() {
        let mut s = BlockShadow::new(16, 1);
        s.access(3, 8, 4, Write, 1);
        assert_eq!(s.access(4, 8, 4, Write, 2).map(|h| h.kind), Some(FindingKind::SharedWriteAfterWrite));
    }

    #[test]
    fn warp_sync_orders_only_the_lanes_in_its_mask() {
        let mut s = BlockShadow::new(64, 1);
        s.access(0, 0, 4, Write, 1);
        s.access(5, 4, 4, Write, 1);
        s.warp_sync(0, 0b11); // lanes 0 and 1
        assert_eq!(s.access(1, 0, 4, Read, 2), None);
        assert_eq!(s.access(2, 4, 4, Read, 2).map(|h| h.kind), Some(FindingKind::SharedReadAfterWrite));
        s.warp_sync(0, u32::MAX);
        assert_eq!(s.access(2, 4, 4, Read, 3), None);
    }

    #[test]
    fn warp_sync_does_not_order_other_warps() {
        let mut s = BlockShadow::new(8, 2);
        s.access(0, 0, 4, Write, 1);
        s.warp_sync(0, u32::MAX);
        s.warp_sync(1, u32::MAX);
        assert!(s.access(33, 0, 4, Read, 2).is_some());
    }

    #[test]
    fn partial_barriers_order_transitively() {
        // Warp 0 meets warp 1, warp 1 then meets warp 2: warp 0's write happens before warp 2's read.
        let mut s = BlockShadow::new(8, 3);
        s.access(0, 0, 4, Write, 1);
        s.barrier(&[true, true, false]);
        s.barrier(&[false, true, true]);
        assert_eq!(s.access(64, 0, 4, Read, 2), None);
    }

    #[test]
    fn a_release_orders_the_releasers_earlier_accesses_before_the_acquirers_later_ones_only() {
        let mut s = BlockShadow::new(16, 2);
        let mut clock = vec![0; s.warps()];
        s.access(0, 0, 4, Write, 1);
        s.access(32, 8, 4, Read, 1);
        s.release(0, &mut clock);
        s.access(0, 4, 4, Write, 2); // after the release: not covered by it
        s.acquire(1, &clock);
        assert_eq!(s.access(33, 0, 4, Read, 3), None);
        assert_eq!(s.access(33, 4, 4, Read, 3).map(|h| h.kind), Some(FindingKind::SharedReadAfterWrite));
        // The acquire released nothing of warp 1: its earlier read still races with warp 0's write.
        assert_eq!(s.access(0, 8, 4, Write, 4).map(|h| h.kind), Some(FindingKind::SharedWriteAfterRead));
    }

    #[test]
    fn an_acquire_carries_what_the_releaser_had_acquired() {
        // 0 -> 1 -> 2 through two release/acquire pairs.
        let mut s = BlockShadow::new(8, 3);
        let (mut c01, mut c12) = (vec![0; 3], vec![0; 3]);
        s.access(0, 0, 4, Write, 1);
        s.release(0, &mut c01);
        s.acquire(1, &c01);
        s.release(1, &mut c12);
        s.acquire(2, &c12);
        assert_eq!(s.access(64, 0, 4, Read, 2), None);
    }

    #[test]
    fn a_partial_barrier_orders_only_its_warps() {
        let mut s = BlockShadow::new(8, 3);
        s.access(0, 0, 4, Write, 1);
        s.barrier(&[true, true, false]);
        assert_eq!(s.access(40, 0, 4, Read, 2), None);
        assert!(s.access(70, 0, 4, Read, 3).is_some());
    }

    #[test]
    fn atomics_do_not_race_with_atomics_but_do_with_plain_reads() {
        let mut s = BlockShadow::new(8, 2);
        s.access(0, 0, 4, Write, 0);
        s.barrier(&all(2));
        for t in 0..64 {
            assert_eq!(s.access(t, 0, 4, Atomic, 1), None, "thread {t}");
        }
        assert_eq!(s.access(5, 0, 4, Read, 2).map(|h| h.kind), Some(FindingKind::SharedReadAfterWrite));
    }

    #[test]
    fn reading_unwritten_shared_memory_is_an_initcheck_finding() {
        let mut s = BlockShadow::new(32, 1);
        s.access(0, 0, 2, Write, 1);
        assert_eq!(s.access(0, 0, 2, Read, 2), None);
        assert_eq!(s.access(0, 0, 4, Read, 3).map(|h| h.kind), Some(FindingKind::UninitializedSharedRead));
        s.reset();
        assert!(s.access(0, 0, 1, Read, 4).is_some());
    }

    #[test]
    fn a_same_value_write_after_write_is_a_warning_that_a_read_race_overrides() {
        let mut s = BlockShadow::new(16, 1);
        s.access(0, 0, 4, Write, 1);
        let h = s.access_same(1, 0, 4, Write, 2, true).map(|h| h.kind);
        assert_eq!(h, Some(FindingKind::SharedWriteAfterWriteSameValue));
        assert_eq!(FindingKind::SharedWriteAfterWriteSameValue.severity(), Severity::Warning);
        // A read by a third thread, then a same-value write racing with both: the write-after-read
        // error is reported, not the write-after-write warning.
        s.access(2, 0, 4, Read, 3);
        assert_eq!(s.access_same(3, 0, 4, Write, 4, true).map(|h| h.kind), Some(FindingKind::SharedWriteAfterRead));
        // Different bytes stored: an error.
        s.warp_sync(0, u32::MAX);
        s.access(4, 8, 4, Write, 5);
        assert_eq!(s.access_same(5, 8, 4, Write, 6, false).map(|h| h.kind), Some(FindingKind::SharedWriteAfterWrite));
    }

    #[test]
    fn bytes_marked_undefined_read_as_uninitialised_and_keep_their_writer() {
        let mut s = BlockShadow::new(16, 1);
        s.access(0, 0, 8, Write, 1);
        s.mark_undefined(2, 4);
        assert!(s.is_initialized(0, 2) && !s.is_initialized(0, 4) && !s.is_initialized(4, 2) && s.is_initialized(6, 2));
        // The write is still recorded for racecheck.
        assert_eq!(s.access(1, 4, 4, Read, 2).map(|h| h.kind), Some(FindingKind::UninitializedSharedRead));
        s.set_report_uninitialized(false);
        assert_eq!(s.access(1, 4, 4, Read, 3).map(|h| h.kind), Some(FindingKind::SharedReadAfterWrite));
    }

    #[test]
    fn disjoint_bytes_of_one_word_do_not_race() {
        let mut s = BlockShadow::new(4, 1);
        for t in 0..4 {
            assert_eq!(s.access(t, t as usize, 1, Write, 1), None);
        }
    }

    #[test]
    fn global_shadow_tracks_initialisation_and_cross_block_writes() {
        let g = AllocShadow::new(16);
        assert!(!g.is_initialized(0, 4));
        g.host_write(0, 8);
        assert!(g.is_initialized(0, 8) && !g.is_initialized(4, 8));
        assert_eq!(g.write(8, 4, 3, false), None);
        assert!(g.is_initialized(0, 12));
        assert_eq!(g.write(8, 4, 3, false), None, "the same block may rewrite");
        assert_eq!(g.write(10, 4, 5, false), Some(3));
        assert_eq!(g.write(0, 4, 7, true), None);
        assert_eq!(g.write(0, 4, 8, true), None, "atomics never conflict");
        g.begin_launch();
        assert_eq!(g.write(8, 4, 9, false), None, "a new launch forgets writers");
        assert!(g.is_initialized(8, 4));
    }

    #[test]
    fn report_folds_repeats_and_counts() {
        let place = |line: &str| Place { block: [0, 0, 0], thread: [1, 0, 0], line: line.into() };
        let f = |line: &str| Finding {
            kind: FindingKind::SharedReadAfterWrite,
            kernel: "k".into(),
            at: place(line),
            other: Some(place("w")),
            address: 4,
            count: 1,
        };
        let mut r = SanitizerReport::default();
        r.add(f("a"));
        r.add(f("a"));
        r.add(f("b"));
        assert_eq!(r.findings.len(), 2);
        assert_eq!(r.count(FindingKind::SharedReadAfterWrite), 3);
        assert!(r.to_string().contains("2 occurrences"));
    }
}
