//! Exact performance counters of one launch: what Nsight Compute would count, from the VM's view of
//! every access of every thread.
//!
//! The rules that turn a warp's accesses into hardware units are pure functions here
//! ([`shared_wavefronts`], [`ldmatrix_wavefronts`], [`global_sectors`]) so that they are tested on
//! their own, independently of the interpreter that feeds them.

/// Instruction classes, as the units that execute them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InstClass {
    /// Integer and bit arithmetic, comparisons, moves and conversions between integers.
    Integer,
    /// f32 arithmetic (add, mul, fma, min/max, comparisons, conversions to/from f32).
    Fp32,
    /// f64 arithmetic.
    Fp64,
    /// f16 / bf16 arithmetic, scalar or packed x2.
    Half,
    /// Special-function unit: ex2, lg2, rcp, rsqrt, sqrt (approx), sin, cos, tanh.
    Sfu,
    /// Tensor-core `mma` (their FLOPs are in [`Counters::mma_flops`]).
    Tensor,
    /// Loads from global memory (including `.nc` / `ld.global` through a generic address).
    GlobalLoad,
    /// Stores to global memory.
    GlobalStore,
    /// Loads from shared memory, including `ldmatrix`.
    SharedLoad,
    /// Stores to shared memory, including `stmatrix`.
    SharedStore,
    /// Loads from thread-local memory (stack frames, spills).
    LocalLoad,
    /// Stores to thread-local memory.
    LocalStore,
    /// Param and const space loads (served by the constant cache).
    ConstLoad,
    /// `cp.async` copies global -> shared and their group commits and waits.
    CpAsync,
    /// `atom` and `red`, global or shared.
    Atomic,
    /// `bar`, `barrier`, `bar.warp.sync`, fences.
    Barrier,
    /// Warp collectives other than mma/ldmatrix: shfl, vote, match, redux.
    WarpCollective,
    /// Branches, calls, returns, exit.
    Control,
}

impl InstClass {
    /// Every class, in display order.
    pub const ALL: [InstClass; 18] = [
        InstClass::Integer,
        InstClass::Fp32,
        InstClass::Fp64,
        InstClass::Half,
        InstClass::Sfu,
        InstClass::Tensor,
        InstClass::GlobalLoad,
        InstClass::GlobalStore,
        InstClass::SharedLoad,
        InstClass::SharedStore,
        InstClass::LocalLoad,
        InstClass::LocalStore,
        InstClass::ConstLoad,
        InstClass::CpAsync,
        InstClass::Atomic,
        InstClass::Barrier,
        InstClass::WarpCollective,
        InstClass::Control,
    ];

    /// A short lower-case name for tables.
    pub fn name(self) -> &'static str {
        match self {
            InstClass::Integer => "integer",
            InstClass::Fp32 => "fp32",
            InstClass::Fp64 => "fp64",
            InstClass::Half => "fp16/bf16",
            InstClass::Sfu => "special fn",
            InstClass::Tensor => "tensor mma",
            InstClass::GlobalLoad => "global ld",
            InstClass::GlobalStore => "global st",
            InstClass::SharedLoad => "shared ld",
            InstClass::SharedStore => "shared st",
            InstClass::LocalLoad => "local ld",
            InstClass::LocalStore => "local st",
            InstClass::ConstLoad => "param/const ld",
            InstClass::CpAsync => "cp.async",
            InstClass::Atomic => "atomic",
            InstClass::Barrier => "barrier",
            InstClass::WarpCollective => "warp collective",
            InstClass::Control => "control",
        }
    }

    fn index(self) -> usize {
        InstClass::ALL.iter().position(|&c| c == self).unwrap_or(0)
    }
}

/// How often one class executed: per thread (each active lane) and per warp (issue slots).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCount {
    /// Thread-level count: active lanes summed over every issue.
    pub threads: u64,
    /// Warp-level count: instructions issued.
    pub warps: u64,
}

/// Counters of one launch. Every field is exact for the launch as executed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Per class, indexed like [`InstClass::ALL`].
    pub classes: [ClassCount; 18],
    /// Floating-point operations done by tensor-core mma with f16/bf16 inputs (2 per multiply-add):
    /// `mma.sync` and `wgmma.mma_async` together.
    pub mma_flops: u64,
    /// Of [`Counters::mma_flops`], those done by `wgmma.mma_async` (sm_90a); the rest are
    /// `mma.sync`'s, which Hopper runs at a lower rate (see [`crate::sol::DeviceModel`]).
    pub wgmma_flops: u64,
    /// Floating-point operations done by tensor-core mma with tf32 inputs.
    pub mma_tf32_flops: u64,
    /// Global loads: requests (see [`global_sectors`] for what a request is).
    pub global_load_requests: u64,
    /// Global loads: 32-byte sectors touched, summed over requests.
    pub global_load_sectors: u64,
    /// Global loads: bytes the threads asked for.
    pub global_load_bytes: u64,
    /// Global stores: requests.
    pub global_store_requests: u64,
    /// Global stores: 32-byte sectors touched, summed over requests.
    pub global_store_sectors: u64,
    /// Global stores: bytes the threads wrote.
    pub global_store_bytes: u64,
    /// Distinct bytes of global memory read at least once in the launch.
    pub unique_bytes_read: u64,
    /// Distinct bytes of global memory written at least once in the launch.
    pub unique_bytes_written: u64,
    /// Distinct 32-byte sectors read: what an L2 that never evicts fetches from DRAM.
    pub unique_sectors_read: u64,
    /// Distinct 32-byte sectors written: what such an L2 writes back.
    pub unique_sectors_written: u64,
    /// Shared-memory warp requests (loads, stores, ldmatrix, stmatrix, cp.async destinations).
    pub shared_requests: u64,
    /// Shared-memory wavefronts: one per bank-conflict-free pass; `wavefronts - ideal` are conflicts.
    pub shared_wavefronts: u64,
    /// The wavefronts the same requests would take with no bank conflict.
    pub shared_ideal_wavefronts: u64,
    /// Bytes copied by `cp.async`.
    pub cp_async_bytes: u64,
    /// Bytes copied by `cp.async.bulk` (either direction), `cp.async.bulk.tensor` included with
    /// its whole box. Their global side is also in the global load or store counters (one request,
    /// the sectors the range spans; for a tensor copy the bytes and sectors of the elements inside
    /// the tensor only) and in the unique bytes; their shared side in the shared requests (one) and
    /// wavefronts (one per 128 bytes, the shared-memory width per clock, never a bank conflict).
    pub bulk_copy_bytes: u64,
    /// Barrier instructions executed by warps (`bar.sync` and friends), summed over blocks.
    pub barriers: u64,
    /// Blocks executed.
    pub blocks: u64,
    /// Threads per block of the launch (the largest, when counters of several launches are merged).
    pub threads_per_block: u32,
    /// Shared memory per block of the launch: static (aligned as the launch lays it out) plus
    /// dynamic bytes (the largest, when merged). With `threads_per_block`, the launch shape that
    /// [`crate::sol`] turns into CTAs per SM and waves.
    pub shared_bytes_per_block: u32,
    /// PTX virtual registers the kernel declares (`.reg`, summed over every declaration). nvcc
    /// declares a fresh virtual register for nearly every value, so real kernels declare thousands;
    /// ptxas allocates far fewer. This says nothing about occupancy: the registers per thread the
    /// hardware allocates come from `ptxas -v` (`scripts/resource-report` in scaling-kernels), and
    /// [`crate::sol::LaunchResources`] takes them.
    pub ptx_virtual_registers: u32,
}

impl Counters {
    /// Records `threads` active lanes issuing one instruction of `class`.
    pub fn count(&mut self, class: InstClass, threads: u32) {
        let c = &mut self.classes[class.index()];
        c.threads += u64::from(threads);
        c.warps += 1;
    }

    /// The counts of one class.
    pub fn class(&self, class: InstClass) -> ClassCount {
        self.classes[class.index()]
    }

    /// Thread-level instructions over every class.
    pub fn thread_instructions(&self) -> u64 {
        self.classes.iter().map(|c| c.threads).sum()
    }

    /// Warp-level instructions (issue slots) over every class.
    pub fn warp_instructions(&self) -> u64 {
        self.classes.iter().map(|c| c.warps).sum()
    }

    /// Bank conflicts: the extra wavefronts over a conflict-free layout.
    pub fn bank_conflicts(&self) -> u64 {
        self.shared_wavefronts.saturating_sub(self.shared_ideal_wavefronts)
    }

    /// Adds another partial count (a block's, or a worker thread's) into this one.
    pub fn merge(&mut self, o: &Counters) {
        for (a, b) in self.classes.iter_mut().zip(&o.classes) {
            a.threads += b.threads;
            a.warps += b.warps;
        }
        self.mma_flops += o.mma_flops;
        self.wgmma_flops += o.wgmma_flops;
        self.mma_tf32_flops += o.mma_tf32_flops;
        self.global_load_requests += o.global_load_requests;
        self.global_load_sectors += o.global_load_sectors;
        self.global_load_bytes += o.global_load_bytes;
        self.global_store_requests += o.global_store_requests;
        self.global_store_sectors += o.global_store_sectors;
        self.global_store_bytes += o.global_store_bytes;
        self.unique_bytes_read += o.unique_bytes_read;
        self.unique_bytes_written += o.unique_bytes_written;
        self.unique_sectors_read += o.unique_sectors_read;
        self.unique_sectors_written += o.unique_sectors_written;
        self.shared_requests += o.shared_requests;
        self.shared_wavefronts += o.shared_wavefronts;
        self.shared_ideal_wavefronts += o.shared_ideal_wavefronts;
        self.cp_async_bytes += o.cp_async_bytes;
        self.bulk_copy_bytes += o.bulk_copy_bytes;
        self.barriers += o.barriers;
        self.blocks += o.blocks;
        self.threads_per_block = self.threads_per_block.max(o.threads_per_block);
        self.shared_bytes_per_block = self.shared_bytes_per_block.max(o.shared_bytes_per_block);
        self.ptx_virtual_registers = self.ptx_virtual_registers.max(o.ptx_virtual_registers);
    }
}

/// Number of shared-memory banks and their width (CUDA C++ Programming Guide, "Shared Memory" for
/// compute capability 5.x and later: 32 banks, successive 32-bit words in successive banks).
pub const BANKS: u64 = 32;
/// Bytes per bank word.
pub const BANK_BYTES: u64 = 4;

/// Lanes served together in one pass for an access of `width` bytes per thread: the whole warp for
/// 1-4 bytes, half-warps for 8 bytes, quarter-warps for 16 bytes: a pass moves at most 128 bytes.
fn lanes_per_phase(width: u32) -> usize {
    match width {
        0..=4 => 32,
        5..=8 => 16,
        _ => 8,
    }
}

/// Wavefronts of one pass: the largest number of distinct 32-bit words any one bank must deliver.
/// The same word read by several lanes is broadcast and costs once.
fn phase_wavefronts(words: &mut Vec<u64>) -> u64 {
    words.sort_unstable();
    words.dedup();
    let mut per_bank = [0u64; BANKS as usize];
    for &w in words.iter() {
        per_bank[(w % BANKS) as usize] += 1;
    }
    per_bank.iter().copied().max().unwrap_or(0)
}

/// Wavefronts of one warp-level shared-memory request, and the conflict-free ideal.
///
/// `accesses` holds `(lane, byte address)` of the active lanes, each accessing `width` bytes
/// (1, 2, 4, 8 or 16). Lanes are grouped into passes of at most 128 bytes (whole, half or quarter warps);
/// each pass costs as many wavefronts as its most loaded bank has distinct words. The ideal is one
/// wavefront per pass that has any active lane.
pub fn shared_wavefronts(accesses: &[(u32, u64)], width: u32) -> (u64, u64) {
    let per_phase = lanes_per_phase(width);
    let mut total = 0;
    let mut ideal = 0;
    // Reused across passes: a sorted, deduplicated vector is far cheaper here than a tree set.
    let mut words = Vec::with_capacity(64);
    for phase in 0..32 / per_phase {
        let lanes = (phase * per_phase) as u32..((phase + 1) * per_phase) as u32;
        words.clear();
        for &(_, addr) in accesses.iter().filter(|(l, _)| lanes.contains(l)) {
            let first = addr / BANK_BYTES;
            let last = (addr + u64::from(width.max(1)) - 1) / BANK_BYTES;
            words.extend(first..=last);
        }
        if !words.is_empty() {
            total += phase_wavefronts(&mut words);
            ideal += 1;
        }
    }
    (total, ideal)
}

/// Wavefronts of an `ldmatrix`/`stmatrix` with `matrices` 8x8 b16 matrices (x1, x2, x4): each matrix
/// is one pass of 8 rows of 16 bytes, whose start addresses come from lanes `8m..8m+8`.
/// `row_addrs[i]` is the address lane `i` supplied (only the first `8 * matrices` are used).
pub fn ldmatrix_wavefronts(row_addrs: &[u64], matrices: usize) -> (u64, u64) {
    let mut total = 0;
    let mut words = Vec::with_capacity(32);
    for m in 0..matrices {
        words.clear();
        for &addr in row_addrs.iter().skip(8 * m).take(8) {
            words.extend(addr / BANK_BYTES..(addr + 16) / BANK_BYTES);
        }
        total += phase_wavefronts(&mut words);
    }
    (total, matrices as u64)
}

/// Size of a DRAM/L2 sector.
pub const SECTOR_BYTES: u64 = 32;

/// Requests and 32-byte sectors of one warp-level global access.
///
/// A request is what one pass of the L1 handles, at most 128 bytes of the warp's data: the whole
/// warp for 1-4-byte accesses, each half-warp for 8 bytes, each quarter-warp for 16 bytes (the same
/// grouping as shared memory). A fully coalesced access therefore always costs exactly 4 sectors per
/// request, whatever its width; more sectors per request means scattered addresses.
/// `accesses` holds `(lane, byte address)` of the active lanes, each accessing `width` bytes.
pub fn global_sectors(accesses: &[(u32, u64)], width: u32) -> (u64, u64) {
    let per_phase = lanes_per_phase(width);
    let mut requests = 0;
    let mut sectors = 0;
    let mut set = Vec::with_capacity(64);
    for phase in 0..32 / per_phase {
        let lanes = (phase * per_phase) as u32..((phase + 1) * per_phase) as u32;
        set.clear();
        for &(_, addr) in accesses.iter().filter(|(l, _)| lanes.contains(l)) {
            let last = addr + u64::from(width.max(1)) - 1;
            set.extend(addr / SECTOR_BYTES..=last / SECTOR_BYTES);
        }
        set.sort_unstable();
        set.dedup();
        if !set.is_empty() {
            requests += 1;
            sectors += set.len() as u64;
        }
    }
    (requests, sectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(f: impl Fn(u32) -> u64) -> Vec<(u32, u64)> {
        (0..32).map(|l| (l, f(l))).collect()
    }

    #[test]
    fn consecutive_words_take_one_wavefront() {
        assert_eq!(shared_wavefronts(&lanes(|l| 4 * u64::from(l)), 4), (1, 1));
    }

    #[test]
    fn a_column_of_a_32_wide_float_tile_is_a_32_way_conflict() {
        // Thread l reads tile[l][c] of float tile[32][32]: stride 128 bytes, all in one bank.
        assert_eq!(shared_wavefronts(&lanes(|l| 128 * u64::from(l) + 12), 4), (32, 1));
        // Padding rows to 33 floats spreads the column over all 32 banks.
        assert_eq!(shared_wavefronts(&lanes(|l| 132 * u64::from(l) + 12), 4), (1, 1));
    }

    #[test]
    fn same_word_is_broadcast() {
        assert_eq!(shared_wavefronts(&lanes(|_| 64), 4), (1, 1));
        // Two distinct words in one bank, each read by 16 lanes: 2 wavefronts.
        assert_eq!(shared_wavefronts(&lanes(|l| if l < 16 { 0 } else { 128 }), 4), (2, 1));
    }

    #[test]
    fn stride_two_words_is_a_two_way_conflict() {
        assert_eq!(shared_wavefronts(&lanes(|l| 8 * u64::from(l)), 4), (2, 1));
    }

    #[test]
    fn wide_accesses_are_served_in_half_and_quarter_warps() {
        // 64-bit consecutive: two half-warp passes, each 128 bytes over all banks.
        assert_eq!(shared_wavefronts(&lanes(|l| 8 * u64::from(l)), 8), (2, 2));
        // 128-bit consecutive: four quarter-warp passes.
        assert_eq!(shared_wavefronts(&lanes(|l| 16 * u64::from(l)), 16), (4, 4));
        // 128-bit with a 256-byte stride: each quarter-warp's 8 lanes hit the same 4 banks.
        assert_eq!(shared_wavefronts(&lanes(|l| 256 * u64::from(l)), 16), (32, 4));
    }

    #[test]
    fn ldmatrix_rows_of_a_64_byte_wide_tile_conflict_unless_swizzled() {
        // 8 rows of 16 bytes at a 64-byte row pitch: rows 0, 2, 4, 6 share banks -> 4-way per matrix.
        let plain: Vec<u64> = (0..32).map(|l| 64 * (l % 8) + 16 * (l / 8)).collect();
        assert_eq!(ldmatrix_wavefronts(&plain, 4), (16, 4));
        // 128-byte pitch: every row in the same 4 banks -> 8-way.
        let bad: Vec<u64> = (0..32).map(|l| 128 * (l % 8)).collect();
        assert_eq!(ldmatrix_wavefronts(&bad, 1), (8, 1));
        // XOR-swizzled 16-byte chunks across a 128-byte pitch: conflict-free.
        let swz: Vec<u64> = (0..32).map(|l| 128 * (l % 8) + 16 * ((l % 8) ^ (l / 8))).collect();
        assert_eq!(ldmatrix_wavefronts(&swz, 4), (4, 4));
    }

    #[test]
    fn coalesced_global_access_is_four_sectors_per_request_at_any_width() {
        for width in [4u32, 8, 16] {
            let acc = lanes(|l| 4096 + u64::from(width) * u64::from(l));
            let (req, sec) = global_sectors(&acc, width);
            assert_eq!(sec, 4 * req, "width {width}");
            assert_eq!(req, u64::from(width) * 32 / 128, "width {width}");
        }
    }

    #[test]
    fn scattered_global_access_touches_a_sector_per_lane() {
        assert_eq!(global_sectors(&lanes(|l| 4096 * u64::from(l)), 4), (1, 32));
        // Misaligned by 4 bytes: the 128 contiguous bytes straddle 5 sectors.
        assert_eq!(global_sectors(&lanes(|l| 4100 + 4 * u64::from(l)), 4), (1, 5));
    }

    #[test]
    fn counts_merge() {
        let mut a = Counters::default();
        a.count(InstClass::Fp32, 32);
        a.count(InstClass::Fp32, 5);
        let mut b = Counters::default();
        b.count(InstClass::Integer, 7);
        b.shared_wavefronts = 3;
        b.shared_ideal_wavefronts = 2;
        a.merge(&b);
        assert_eq!(a.class(InstClass::Fp32), ClassCount { threads: 37, warps: 2 });
        assert_eq!(a.thread_instructions(), 44);
        assert_eq!(a.warp_instructions(), 3);
        assert_eq!(a.bank_conflicts(), 1);
    }
}
