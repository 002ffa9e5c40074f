//! Bulk tensor copies on hand-written PTX (PTX ISA 9.7.9.25.5.1, `cp.async.bulk.tensor`, tile
//! mode), against a model written here from the ISA and the CUDA programming guide:
//! - the box at coordinates `c` holds, along each dimension `i`, `ceil(box[i] / s[i])` elements at
//!   coordinates `c[i] + j * s[i]` (`s` the element strides); in shared memory it is dense and
//!   row-major, dimension 0 innermost; elements outside the tensor read as zeros and a store skips
//!   them;
//! - with an N-byte swizzle, the 16-byte chunk at shared address bits 4.. is XORed with address bits
//!   7.. (as many bits as an N-byte row has chunks: 3, 2, 1 for 128, 64, 32 bytes);
//! - a global -> shared copy performs complete-tx of the whole box's bytes on its mbarrier, the
//!   zero-filled part included; without a matching expect-tx the phase can never complete.
//!
//! The maps are built with `ptx_vm::semantics::tensor_map::TensorMap` (the VM's encoding) and
//! passed as a `.param .align 128 .b8 [128]` kernel parameter (`__grid_constant__`, declared as
//! nvcc declares a `CUtensorMap`) or in global memory. Inputs are seeded random bytes; shared
//! memory starts poisoned with `0xab` bytes and every byte of it is compared.
//!
//! The load and store kernels of every rank are tests/ptx/isa_sm90.ptx's `tma_load_Nd` and
//! `tma_store_Nd` (vm_diff.txt runs them on a Hopper GPU too); the variants here (other ways of
//! naming the map, other bodies) are built from the same template.

mod isa_common;
use isa_common::{sm90_kernel, Rng, SM90_PTX};
use ptx_vm::semantics::tensor_map::TensorMap;
use ptx_vm::semantics::wgmma::Swizzle;
use ptx_vm::{Arch, FindingKind, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder, VmError};

/// Bytes of the shared buffer the box is copied into (1024-byte aligned) and dumped from.
const SMEM: usize = 16384;
const THREADS: u32 = 128;
/// The poison shared memory starts with in the load tests.
const POISON: u8 = 0xab;

/// One copy: the tensor, its map's fields, the box's coordinates and the shared offset of the box.
#[derive(Clone, Debug)]
struct Case {
    eb: u8,
    dims: Vec<u64>,
    strides: Vec<u64>,
    boxd: Vec<u32>,
    es: Vec<u32>,
    swizzle: Swizzle,
    c: Vec<i32>,
    doff: u32,
}

impl Case {
    fn rank(&self) -> usize {
        self.dims.len()
    }
    /// Elements of the box along dimension `i`.
    fn n(&self, i: usize) -> usize {
        self.boxd[i].div_ceil(self.es[i]) as usize
    }
    fn box_bytes(&self) -> usize {
        (0..self.rank()).map(|i| self.n(i)).product::<usize>() * self.eb as usize
    }
    /// Byte offset of the element at `coord` from the tensor's start.
    fn offset(&self, coord: &[i64]) -> usize {
        let higher: usize = coord[1..].iter().zip(&self.strides).map(|(&x, &s)| x as usize * s as usize).sum();
        coord[0] as usize * self.eb as usize + higher
    }
    fn tensor_bytes(&self) -> usize {
        let last: Vec<i64> = self.dims.iter().map(|&d| d as i64 - 1).collect();
        (self.offset(&last) + self.eb as usize).next_multiple_of(16)
    }
    fn map(&self, addr: u64) -> [u8; 128] {
        let mut m = TensorMap::new(addr, self.eb, &self.dims, &self.strides, &self.boxd);
        m.element_strides[..self.rank()].copy_from_slice(&self.es);
        m.swizzle = self.swizzle;
        m.encode().unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
    /// Every element of the box in box order: its coordinates, and whether it is inside the tensor.
    fn elements(&self) -> Vec<(Vec<i64>, bool)> {
        let total: usize = (0..self.rank()).map(|i| self.n(i)).product();
        (0..total)
            .map(|mut l| {
                let mut coord = Vec::new();
                for i in 0..self.rank() {
                    let j = l % self.n(i);
                    l /= self.n(i);
                    coord.push(self.c[i] as i64 + j as i64 * self.es[i] as i64);
                }
                let inside = coord.iter().zip(&self.dims).all(|(&x, &d)| x >= 0 && (x as u64) < d);
                (coord, inside)
            })
            .collect()
    }
    /// How many bytes of the box lie inside the tensor.
    fn inside_bytes(&self) -> usize {
        self.elements().iter().filter(|e| e.1).count() * self.eb as usize
    }
}

/// The swizzled placement of shared byte `a` (a 1024-byte aligned buffer's offset), from the
/// address bits: bits 4-6 (128B), 4-5 (64B) or 4 (32B) XORed with the same number of bits from 7.
fn swizzled(s: Swizzle, a: usize) -> usize {
    let mask = match s {
        Swizzle::None => 0,
        Swizzle::B32 => 0x10,
        Swizzle::B64 => 0x30,
        Swizzle::B128 => 0x70,
    };
    a ^ ((a >> 3) & mask)
}

/// Shared memory after loading the box into `smem`.
fn model_load(case: &Case, tensor: &[u8], smem: &[u8]) -> Vec<u8> {
    let mut s = smem.to_vec();
    let eb = case.eb as usize;
    for (l, (coord, inside)) in case.elements().into_iter().enumerate() {
        for b in 0..eb {
            let v = if inside { tensor[case.offset(&coord) + b] } else { 0 };
            s[swizzled(case.swizzle, case.doff as usize + l * eb + b)] = v;
        }
    }
    s
}

/// The tensor after storing the box from `smem` into `tensor`.
fn model_store(case: &Case, tensor: &[u8], smem: &[u8]) -> Vec<u8> {
    let mut t = tensor.to_vec();
    let eb = case.eb as usize;
    for (l, (coord, inside)) in case.elements().into_iter().enumerate() {
        if inside {
            for b in 0..eb {
                t[case.offset(&coord) + b] = smem[swizzled(case.swizzle, case.doff as usize + l * eb + b)];
            }
        }
    }
    t
}

/// Where the kernel takes the tensor map's address from.
#[derive(Clone, Copy, PartialEq)]
enum MapAt {
    /// `mov.u64 %rd9, tmap;`: the generic address of the `.param`.
    ParamReg,
    /// `[tmap, {...}]`: the parameter named in the instruction.
    ParamNamed,
    /// `mov.b64 %rd8, tmap; cvta.param.u64 %rd9, %rd8;`: as nvcc 13.0 takes the address of a
    /// `__grid_constant__ CUtensorMap` parameter (which it declares `.align 128`).
    ParamCvta,
    /// The `gmap` pointer parameter: a map in global memory.
    Global,
}

/// A kernel `k` of 128 threads running `body` (tests/ptx/isa_sm90.ptx's `tma_load_Nd` with `body`
/// in place of its own; see there for the registers), the map's address taken as `at` says. In
/// `body`, `MAP` stands for the map operand, `COORDS` for the coordinate registers and `RANK` for
/// the rank.
fn kernel(rank: usize, body: &str, at: MapAt) -> String {
    let coords: Vec<String> = (0..rank).map(|i| format!("%r{}", 10 + i)).collect();
    let map = match at {
        MapAt::ParamReg => "    mov.u64 %rd9, tmap;\n",
        MapAt::ParamNamed => "",
        MapAt::ParamCvta => "    mov.b64 %rd8, tmap;\n    cvta.param.u64 %rd9, %rd8;\n",
        MapAt::Global => "    ld.param.u64 %rd9, [gmap];\n",
    };
    let map_op = if at == MapAt::ParamNamed { "tmap" } else { "%rd9" };
    let body = body.replace("MAP", map_op).replace("COORDS", &coords.join(", ")).replace("RANK", &rank.to_string());
    sm90_kernel(&format!("tma_load_{rank}d"), &[("map", map), ("body", &body)])
}

/// Thread 0 expects `tx` bytes and copies the box in; everyone waits for phase 0 (the body of
/// tests/ptx/isa_sm90.ptx's `tma_load_Nd`).
const LOAD: &str = "    @%p1 mbarrier.arrive.expect_tx.shared::cta.b64 %rd3, [%r3], %r5;
    @%p1 cp.async.bulk.tensor.RANKd.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r2], [MAP, {COORDS}], [%r3];
WAIT:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r3], 0;
    @!%p2 bra WAIT;
";

/// Thread 0 stores the box out in a bulk group and waits for it (the body of `tma_store_Nd`).
const STORE: &str = "    @%p1 cp.async.bulk.tensor.RANKd.global.shared::cta.tile.bulk_group [MAP, {COORDS}], [%r2];
    @%p1 cp.async.bulk.commit_group;
    @%p1 cp.async.bulk.wait_group 0;
";

struct Run {
    tensor_addr: u64,
    smem: Vec<u8>,
    tensor: Vec<u8>,
    report: LaunchReport,
}

/// Launches `body` for `case` with the tensor holding `tensor`, shared memory starting as `smem`,
/// and `tx` as the expected bytes; `map`, given the tensor's address, overrides the case's map.
type MapFn<'a> = Option<&'a dyn Fn(u64) -> [u8; 128]>;

fn launch(case: &Case, body: &str, at: MapAt, tensor: &[u8], smem: &[u8], tx: u32, map: MapFn) -> Result<Run, VmError> {
    launch_partly_written(case, body, at, (tensor, tensor.len()), (smem, smem.len()), tx, map)
}

/// [`launch`] with only the first `.1` bytes of the tensor and of the shared-memory image written
/// (the rest of each allocation is uninitialised).
fn launch_partly_written(
    case: &Case,
    body: &str,
    at: MapAt,
    (tensor, tensor_written): (&[u8], usize),
    (smem, smem_written): (&[u8], usize),
    tx: u32,
    map: MapFn,
) -> Result<Run, VmError> {
    // The loads and stores as tests/ptx/isa_sm90.ptx has them (and vm_diff runs them on a GPU),
    // else a variant built from its template.
    let (ptx, name) = match (body, at) {
        (LOAD, MapAt::ParamCvta) => (SM90_PTX.to_string(), format!("tma_load_{}d", case.rank())),
        (STORE, MapAt::ParamCvta) => (SM90_PTX.to_string(), format!("tma_store_{}d", case.rank())),
        _ => (kernel(case.rank(), body, at), "k".to_string()),
    };
    let module = Module::parse(&ptx).unwrap_or_else(|e| panic!("parse failed: {e}\n{ptx}"));
    let mut m = Machine::new(Arch::Sm90);
    let t = m.alloc(tensor.len()).unwrap();
    m.write(t, &tensor[..tensor_written]).unwrap();
    let map = map.map_or_else(|| case.map(t), |f| f(t));
    let gmap = m.alloc(128).unwrap();
    m.write(gmap, &map).unwrap();
    let inp = m.alloc(SMEM).unwrap();
    m.write(inp, &smem[..smem_written]).unwrap();
    let out = m.alloc(SMEM).unwrap();
    m.memset(out, 0xdd, SMEM).unwrap();
    let mut c = [0i32; 5];
    c[..case.rank()].copy_from_slice(&case.c);
    let mut pb = ParamBuilder::new().bytes(&map, 128).ptr(out).ptr(gmap).ptr(inp).u32(case.doff).u32(tx);
    for v in c {
        pb = pb.i32(v);
    }
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [THREADS, 1, 1], dynamic_smem: 0 };
    let report = m.launch(&module, &name, &cfg, &pb.finish())?;
    let mut s = vec![0u8; SMEM];
    m.read(out, &mut s).unwrap();
    let mut tb = vec![0u8; tensor.len()];
    m.read(t, &mut tb).unwrap();
    Ok(Run { tensor_addr: t, smem: s, tensor: tb, report })
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u32() as u8).collect()
}

/// Loads the box of `case` and compares all of shared memory with the model; returns the run.
fn check_load(case: &Case, seed: u64, at: MapAt) -> Run {
    let mut rng = Rng(seed);
    let tensor = random_bytes(&mut rng, case.tensor_bytes());
    let smem = vec![POISON; SMEM];
    let run = launch(case, LOAD, at, &tensor, &smem, case.box_bytes() as u32, None)
        .unwrap_or_else(|e| panic!("seed {seed:#x}: {e}\n{case:?}"));
    run.report.assert_clean_strict().unwrap_or_else(|e| panic!("seed {seed:#x}: sanitizer: {e}"));
    let want = model_load(case, &tensor, &smem);
    if let Some(i) = (0..SMEM).find(|&i| run.smem[i] != want[i]) {
        panic!("seed {seed:#x}: shared byte {i}: got {:#04x}, want {:#04x}\n{case:?}", run.smem[i], want[i]);
    }
    run
}

/// Stores the box of `case` from random shared contents into a poisoned tensor and compares the
/// whole tensor with the model.
fn check_store(case: &Case, seed: u64) -> Run {
    let mut rng = Rng(seed);
    let tensor = vec![0xdd; case.tensor_bytes()];
    let smem = random_bytes(&mut rng, SMEM);
    let run = launch(case, STORE, MapAt::ParamCvta, &tensor, &smem, 0, None)
        .unwrap_or_else(|e| panic!("seed {seed:#x}: {e}\n{case:?}"));
    run.report.assert_clean_strict().unwrap_or_else(|e| panic!("seed {seed:#x}: sanitizer: {e}"));
    let want = model_store(case, &tensor, &smem);
    if let Some(i) = (0..tensor.len()).find(|&i| run.tensor[i] != want[i]) {
        panic!("seed {seed:#x}: tensor byte {i}: got {:#04x}, want {:#04x}\n{case:?}", run.tensor[i], want[i]);
    }
    run
}

/// A random case of `rank` dimensions: small dims, padded row strides, boxes that often hang
/// over an edge (coordinates from `-box` to `dim`), at most 8 KiB.
fn random_case(rng: &mut Rng, rank: usize, swizzle: Swizzle) -> Case {
    loop {
        let eb = [1u8, 2, 4, 8][(rng.next_u32() % 4) as usize];
        let limit = if swizzle == Swizzle::None { 64 } else { swizzle.row_bytes() as u32 };
        let units = 1 + rng.next_u32() % (limit / 16);
        let box0 = units * 16 / eb as u32;
        let mut boxd = vec![box0];
        let mut dims = vec![1 + u64::from(rng.next_u32() % (2 * box0))];
        for _ in 1..rank {
            boxd.push(1 + rng.next_u32() % 5);
            dims.push(1 + u64::from(rng.next_u32() % 7));
        }
        let mut strides = Vec::new();
        let mut s = (dims[0] * eb as u64).next_multiple_of(16) + 16 * u64::from(rng.next_u32() % 2);
        for d in &dims[1..] {
            strides.push(s);
            s *= d;
        }
        let es = vec![1; rank];
        let c = (0..rank).map(|i| (rng.next_u32() % (dims[i] as u32 + boxd[i] + 1)) as i32 - boxd[i] as i32).collect();
        let case = Case { eb, dims, strides, boxd, es, swizzle, c, doff: 0 };
        if case.box_bytes() <= 8192 {
            return case;
        }
    }
}

fn loads_match_the_model_at_rank(rank: usize, seed: u64) {
    let mut rng = Rng(seed);
    for k in 0..6 {
        let case = random_case(&mut rng, rank, Swizzle::None);
        check_load(&case, seed + k, MapAt::ParamCvta);
    }
}

#[test]
fn a_1d_box_loads_as_the_model_says() {
    loads_match_the_model_at_rank(1, 0x1d);
}

#[test]
fn a_2d_box_loads_as_the_model_says() {
    loads_match_the_model_at_rank(2, 0x2d);
}

#[test]
fn a_3d_box_loads_as_the_model_says() {
    loads_match_the_model_at_rank(3, 0x3d);
}

#[test]
fn a_4d_box_loads_as_the_model_says() {
    loads_match_the_model_at_rank(4, 0x4d);
}

#[test]
fn a_5d_box_loads_as_the_model_says() {
    loads_match_the_model_at_rank(5, 0x5d);
}

/// A 2-D bf16-sized tensor of 40 x 10 with rows 96 bytes apart, box 16 x 4.
fn case2d(c: [i32; 2]) -> Case {
    Case {
        eb: 2,
        dims: vec![40, 10],
        strides: vec![96],
        boxd: vec![16, 4],
        es: vec![1, 1],
        swizzle: Swizzle::None,
        c: c.to_vec(),
        doff: 0,
    }
}

#[test]
fn boxes_over_every_edge_fill_with_zeros_and_complete_the_whole_box() {
    // Left, top, right, bottom, a corner, and entirely outside: each completes 128 bytes.
    for (k, c) in [[-5, 3], [8, -2], [30, 1], [2, 8], [-15, -3], [40, 0], [0, -4], [-16, 2]].into_iter().enumerate() {
        let case = case2d(c);
        let run = check_load(&case, 0xed6e + k as u64, MapAt::ParamCvta);
        let inside = case.inside_bytes() as u64;
        let cn = run.report.counters.expect("counters");
        assert_eq!(cn.bulk_copy_bytes, 128, "{c:?}");
        assert_eq!(cn.global_load_bytes - SMEM as u64, inside, "{c:?}");
    }
}

#[test]
fn each_swizzle_places_the_chunks_as_the_address_bit_pattern() {
    for (k, s) in [Swizzle::B32, Swizzle::B64, Swizzle::B128].into_iter().enumerate() {
        let w = s.row_bytes() as u32;
        // Rows as wide as the swizzle, 16 of them: two full repeats of the pattern.
        let mut case = Case {
            eb: 2,
            dims: vec![w as u64 / 2 + 3, 20],
            strides: vec![(w as u64 + 16).next_multiple_of(16)],
            boxd: vec![w / 2, 16],
            es: vec![1, 1],
            swizzle: s,
            c: vec![0, 0],
            doff: 0,
        };
        check_load(&case, 0x5a1 + k as u64, MapAt::ParamCvta);
        // Partial, and at a destination 128 bytes into the pattern.
        case.c = vec![5, 9];
        case.doff = 128;
        check_load(&case, 0x5b1 + k as u64, MapAt::ParamCvta);
        check_store(&case, 0x5c1 + k as u64);
        case.doff = 0;
        case.c = vec![-3, -2];
        check_store(&case, 0x5d1 + k as u64);
    }
}

#[test]
fn random_swizzled_boxes_of_every_rank_load_and_store_as_the_model_says() {
    let mut rng = Rng(0x5c0de);
    for rank in 1..=5 {
        for s in [Swizzle::B32, Swizzle::B64, Swizzle::B128] {
            let case = random_case(&mut rng, rank, s);
            check_load(&case, rng.next_u64(), MapAt::ParamCvta);
            check_store(&case, rng.next_u64());
        }
    }
}

#[test]
fn element_strides_take_every_s_th_element_and_pack_them() {
    let mut case = Case {
        eb: 4,
        dims: vec![50, 9, 5],
        strides: vec![208, 208 * 9],
        boxd: vec![12, 5, 2],
        es: vec![3, 2, 1],
        swizzle: Swizzle::None,
        c: vec![1, 0, 0],
        doff: 0,
    };
    // 4 x 3 x 2 elements of 4 bytes: 96 bytes.
    assert_eq!(case.box_bytes(), 96);
    check_load(&case, 0xe5, MapAt::ParamCvta);
    case.c = vec![-4, 5, 4];
    check_load(&case, 0xe6, MapAt::ParamCvta);
    check_store(&case, 0xe7);
}

#[test]
fn stores_of_every_rank_write_only_the_elements_inside_the_tensor() {
    let mut rng = Rng(0x57);
    for rank in 1..=5 {
        for _ in 0..3 {
            let case = random_case(&mut rng, rank, Swizzle::None);
            check_store(&case, rng.next_u64());
        }
    }
}

#[test]
fn a_store_counts_the_bytes_inside_the_tensor_as_global_stores() {
    let case = case2d([30, 8]);
    let run = check_store(&case, 0xc0);
    let c = run.report.counters.expect("counters");
    // 10 x 2 elements inside of the 16 x 4 box.
    assert_eq!(case.inside_bytes(), 40);
    // Besides the kernel's dump of shared memory: one request of 128 words per warp instruction.
    let dump = SMEM as u64 / 128;
    assert_eq!((c.global_store_requests - dump, c.global_store_bytes - SMEM as u64), (1, 40));
    assert_eq!(c.bulk_copy_bytes, 128);
}

#[test]
fn a_load_counts_the_box_once_in_the_global_and_shared_counters() {
    let case = case2d([8, 2]);
    let run = check_load(&case, 0xc1, MapAt::ParamCvta);
    let c = run.report.counters.expect("counters");
    // The kernel's own traffic: SMEM / 4 word loads of inp and stores to out by 128 threads.
    let words = SMEM as u64 / 4;
    assert_eq!(c.global_load_requests, words / 32 + 1);
    assert_eq!(c.global_load_bytes, 4 * words + 128);
    // 4 rows of 32 bytes at 16 + 96 r from a 16-byte aligned... each spans 2 sectors.
    assert_eq!(c.global_load_sectors, words / 8 + 4 * 2);
    assert_eq!(c.bulk_copy_bytes, 128);
}

#[test]
fn the_map_may_be_in_global_memory_or_named_as_the_parameter_or_behind_cvta_param() {
    let case = case2d([-3, 7]);
    check_load(&case, 0x91, MapAt::Global);
    check_load(&case, 0x92, MapAt::ParamNamed);
    check_load(&case, 0x93, MapAt::ParamReg);
}

#[test]
fn two_boxes_on_one_phase_complete_it_only_with_both_boxes_bytes() {
    // expect_tx of both boxes (the first partly inside, the second wholly outside); test_wait after the first sees the
    // phase open, after the second closed. The flags go to buf[8184..8192].
    let case = case2d([30, 8]);
    let body = "    @%p1 mbarrier.arrive.expect_tx.shared::cta.b64 %rd3, [%r3], 256;
    @%p1 cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r2], [%rd9, {%r10, %r11}], [%r3];
    @%p1 mbarrier.test_wait.parity.shared::cta.b64 %p4, [%r3], 0;
    selp.u32 %r30, 1, 0, %p4;
    add.u32 %r31, %r2, 128;
    @%p1 cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r31], [%rd9, {%r11, %r10}], [%r3];
    @%p1 mbarrier.test_wait.parity.shared::cta.b64 %p5, [%r3], 0;
    selp.u32 %r32, 1, 0, %p5;
WAIT:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r3], 0;
    @!%p2 bra WAIT;
    add.u32 %r33, %r6, 8184;
    @%p1 st.shared.v2.u32 [%r33], {%r30, %r32};
";
    let mut rng = Rng(0x2b);
    let tensor = random_bytes(&mut rng, case.tensor_bytes());
    let smem = vec![POISON; SMEM];
    let run = launch(&case, body, MapAt::ParamReg, &tensor, &smem, 0, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.smem[8184..8192], [0, 0, 0, 0, 1, 0, 0, 0]);
    let mut want = model_load(&case, &tensor, &smem);
    let second = Case { c: vec![8, 30], doff: 128, ..case.clone() };
    want = model_load(&second, &tensor, &want);
    want[8184..8192].copy_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(run.smem, want);
}

fn load_err(case: &Case, body: &str, map: MapFn) -> String {
    let tensor = vec![0u8; case.tensor_bytes()];
    match launch(case, body, MapAt::ParamReg, &tensor, &vec![0; SMEM], case.box_bytes() as u32, map) {
        Ok(_) => panic!("the launch succeeded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_copy_without_expect_tx_deadlocks_naming_the_barrier_and_the_bytes() {
    let body = "    @%p1 cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r2], [%rd9, {%r10, %r11}], [%r3];
    @%p1 mbarrier.arrive.shared::cta.b64 %rd3, [%r3];
WAIT:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r3], 0;
    @!%p2 bra WAIT;
";
    let e = load_err(&case2d([30, 8]), body, None);
    assert!(e.contains("deadlocked"), "{e}");
    assert!(e.contains("mbarrier [shared 0x0]"), "{e}");
    // The whole box, not the 40 bytes inside the tensor.
    assert!(e.contains("128 transaction bytes completed beyond those expected"), "{e}");
}

#[test]
fn a_shared_destination_not_128_byte_aligned_is_an_error_naming_it() {
    let mut case = case2d([0, 0]);
    case.doff = 64;
    let e = load_err(&case, LOAD, None);
    assert!(e.contains("cp.async.bulk.tensor.2d global -> shared"), "{e}");
    assert!(e.contains("the shared-memory destination 0x440 is not 128-byte aligned"), "{e}");
}

#[test]
fn a_box_past_the_end_of_shared_memory_is_an_error() {
    let mut case = case2d([0, 0]);
    case.doff = SMEM as u32;
    let e = load_err(&case, LOAD, None);
    assert!(e.contains("outside the block's"), "{e}");
}

#[test]
fn a_map_not_in_the_vms_encoding_is_an_error_naming_the_operand_and_field() {
    let case = case2d([0, 0]);
    let foreign = |t: u64| {
        let mut m = case.map(t);
        m[0] ^= 0xff;
        m
    };
    let e = load_err(&case, LOAD, Some(&foreign));
    assert!(e.contains("the tensor-map operand: the tensor map at"), "{e}");
    assert!(e.contains("magic"), "{e}");
    let zero_box = |t: u64| {
        let mut m = case.map(t);
        m[88] = 0; // box_dims[0] = 0
        m
    };
    let e = load_err(&case, LOAD, Some(&zero_box));
    assert!(e.contains("box_dims[0]: expected 1..=256, got 0"), "{e}");
}

#[test]
fn a_map_of_another_rank_is_an_error() {
    let case = case2d([0, 0]);
    let other = Case {
        dims: vec![40, 10, 2],
        strides: vec![96, 960],
        boxd: vec![16, 4, 1],
        es: vec![1; 3],
        c: vec![0; 3],
        ..case.clone()
    };
    let e = load_err(&case, LOAD, Some(&|t| other.map(t)));
    assert!(e.contains("describes a rank-3 tensor, the instruction a rank-2 box"), "{e}");
}

#[test]
fn a_box_reaching_outside_every_allocation_is_an_error() {
    // The map claims 100 rows; the allocation holds 10.
    let mut far = case2d([0, 50]);
    let huge = Case { dims: vec![40, 100], ..far.clone() };
    let e = load_err(&far, LOAD, Some(&|t| huge.map(t)));
    assert!(e.contains("the box reads 32 bytes at global address"), "{e}");
    assert!(e.contains("outside every allocation"), "{e}");
    far.c = vec![0, 9];
    let e = load_err(&far, STORE, Some(&|t| huge.map(t)));
    assert!(e.contains("the box writes 32 bytes at global address"), "{e}");
}

#[test]
fn reading_the_box_before_the_phase_completed_is_a_racecheck_finding() {
    let body = "    @%p1 mbarrier.arrive.expect_tx.shared::cta.b64 %rd3, [%r3], %r5;
    @%p1 cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r2], [%rd9, {%r10, %r11}], [%r3];
    @%p1 ld.shared.u32 %r30, [%r2];
WAIT:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r3], 0;
    @!%p2 bra WAIT;
";
    let case = case2d([0, 0]);
    let run = launch(&case, body, MapAt::ParamReg, &vec![0; case.tensor_bytes()], &vec![0; SMEM], 128, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let san = run.report.sanitizer.expect("sanitizer report");
    assert_eq!(san.count(FindingKind::SharedReadBeforeBulkCopyComplete), 1, "{san}");
}

#[test]
fn im2col_and_multicast_forms_are_refused_by_name() {
    for form in ["im2col", "multicast::cluster"] {
        let body = format!(
            "    @%p1 cp.async.bulk.tensor.2d.shared::cluster.global.{form}.mbarrier::complete_tx::bytes [%r2], [%rd9, {{%r10, %r11}}], [%r3];\n"
        );
        let e = load_err(&case2d([0, 0]), &body, None);
        assert!(e.contains(&format!("cp.async.bulk.tensor.2d.shared::cluster.global.{form}")), "{e}");
    }
}

#[test]
fn prefetch_tensor_is_accepted_and_changes_nothing() {
    let case = case2d([3, 3]);
    let body = format!("    @%p1 cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%rd9, {{%r10, %r11}}];\n{LOAD}");
    let mut rng = Rng(0x9f);
    let tensor = random_bytes(&mut rng, case.tensor_bytes());
    let smem = vec![POISON; SMEM];
    let run = launch(&case, &body, MapAt::ParamReg, &tensor, &smem, 128, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.smem, model_load(&case, &tensor, &smem));
}

#[test]
fn loaded_elements_carry_their_sources_definedness_and_the_zero_fill_is_defined() {
    // Only tensor rows 0-4 are written (480 of 944 bytes); the dump of shared memory stores what
    // the box brought, so undefined elements surface there as undefined values stored to global.
    let undefined_stores = |c: [i32; 2]| {
        let case = case2d(c);
        let mut rng = Rng(0xdef);
        let tensor = random_bytes(&mut rng, case.tensor_bytes());
        let smem = vec![POISON; SMEM];
        let run = launch_partly_written(&case, LOAD, MapAt::ParamReg, (&tensor, 480), (&smem, SMEM), 128, None)
            .unwrap_or_else(|e| panic!("{e}"));
        run.report.sanitizer.expect("sanitizer report").count(FindingKind::UndefinedValueStoredToGlobal)
    };
    assert_eq!(undefined_stores([0, 0]), 0, "rows 0-3 are written");
    assert!(undefined_stores([0, 3]) > 0, "rows 5 and 6 are not");
    assert_eq!(undefined_stores([-16, 6]), 0, "a box wholly left of the tensor is zeros");
    assert_eq!(undefined_stores([4, 10]), 0, "a box wholly below the tensor is zeros");
}

#[test]
fn storing_undefined_shared_bytes_is_an_undefined_value_stored_to_global() {
    // Shared memory is filled from an image written only in its first 128 bytes: a box stored from
    // there is defined, one from byte 256 on is not. (The kernel's dump of shared memory stores
    // undefined values too; only the findings in the tensor count here.)
    let count = |doff: u32| {
        let case = Case { doff, ..case2d([0, 0]) };
        let smem = vec![0x11; SMEM];
        let tensor = vec![0u8; case.tensor_bytes()];
        let run = launch_partly_written(&case, STORE, MapAt::ParamReg, (&tensor, tensor.len()), (&smem, 128), 0, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let t = run.tensor_addr..run.tensor_addr + tensor.len() as u64;
        let san = run.report.sanitizer.expect("sanitizer report");
        let f = san.findings.iter().filter(|f| f.kind == FindingKind::UndefinedValueStoredToGlobal);
        f.filter(|f| t.contains(&f.address)).count()
    };
    assert_eq!(count(0), 0);
    assert!(count(256) > 0);
}

#[test]
fn the_l2_cache_hint_and_its_policy_operand_change_nothing() {
    let case = case2d([33, 7]);
    let body = LOAD
        .replace("complete_tx::bytes [", "complete_tx::bytes.L2::cache_hint [")
        .replace("[%r3];\nWAIT", "[%r3], %rd8;\nWAIT");
    let body = format!("    mov.u64 %rd8, 0;\n{body}");
    assert!(body.contains(".L2::cache_hint [%r2]") && body.contains("[%r3], %rd8;"), "{body}");
    let mut rng = Rng(0xc4c);
    let tensor = random_bytes(&mut rng, case.tensor_bytes());
    let smem = vec![POISON; SMEM];
    let run = launch(&case, &body, MapAt::ParamReg, &tensor, &smem, 128, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.smem, model_load(&case, &tensor, &smem));
}

#[test]
fn an_undefined_box_coordinate_is_an_undefined_address() {
    // The image of shared memory is written only in its first half; a coordinate loaded from its
    // last word is undefined, one from its first word is not.
    let count = |at: usize| {
        let case = case2d([0, 0]);
        let body = format!("    ld.global.u32 %r10, [%rd2+{at}];\n    and.b32 %r10, %r10, 7;\n{LOAD}");
        let tensor = vec![0u8; case.tensor_bytes()];
        let smem = vec![0; SMEM];
        let run =
            launch_partly_written(&case, &body, MapAt::ParamReg, (&tensor, tensor.len()), (&smem, SMEM / 2), 128, None)
                .unwrap_or_else(|e| panic!("{e}"));
        run.report.sanitizer.expect("sanitizer report").count(FindingKind::UndefinedAddress)
    };
    assert_eq!(count(0), 0);
    assert_eq!(count(SMEM - 4), 1);
}

#[test]
fn the_shared_cta_destination_and_the_implicit_tile_mode_are_the_same_copy() {
    let case = case2d([-2, 5]);
    let body = LOAD.replace(".shared::cluster.global.tile.", ".shared::cta.global.");
    assert!(body.contains("tensor.RANKd.shared::cta.global.mbarrier"), "{body}");
    let mut rng = Rng(0xc7a);
    let tensor = random_bytes(&mut rng, case.tensor_bytes());
    let smem = vec![POISON; SMEM];
    let run = launch(&case, &body, MapAt::ParamReg, &tensor, &smem, 128, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.smem, model_load(&case, &tensor, &smem));
}

/// Bits of a bf16 holding `x` exactly.
fn bf16_bits(x: f64) -> [u8; 2] {
    let f = x as f32;
    assert_eq!(f.to_bits() & 0xffff, 0, "{x} is not exact in bf16");
    ((f.to_bits() >> 16) as u16).to_le_bytes()
}

#[test]
fn tiles_loaded_with_the_128_byte_swizzle_feed_wgmma_through_128_byte_swizzle_descriptors() {
    // D (64 x 64, f32) = A (64 x 64) B, K = 64 in four k16 steps. A is a 50 x 64 bf16 tensor
    // (rows of 128 bytes) and B^T a 64 x 56 one (rows of 112 bytes): the boxes of 64 x 64 hang
    // over both edges and the zero fill must make the missing rows of D zero and the missing K
    // terms vanish. Both boxes land with the 128-byte swizzle; each wgmma reads them through
    // K-major descriptors with the 128-byte swizzle, SBO 1024 (8 rows of 128 bytes), the start
    // advanced 32 bytes per k16 step within the atom's rows.
    let (ma, kb) = (50usize, 56usize);
    let mut rng = Rng(0x7a3c);
    let mut val = || (rng.next_u32() % 17) as f64 / 4.0 - 2.0;
    let a: Vec<Vec<f64>> = (0..ma).map(|_| (0..64).map(|_| val()).collect()).collect();
    let bt: Vec<Vec<f64>> = (0..64).map(|_| (0..kb).map(|_| val()).collect()).collect();
    let abytes: Vec<u8> = a.iter().flatten().flat_map(|&x| bf16_bits(x)).collect();
    let bbytes: Vec<u8> = bt.iter().flatten().flat_map(|&x| bf16_bits(x)).collect();
    let regs: Vec<String> = (0..32).map(|i| format!("%f{i}")).collect();
    let mut mma = String::new();
    for kk in 0..4 {
        mma += &format!(
            "    add.s64 %rd7, %rd5, {s};\n    add.s64 %rd8, %rd6, {s};\n    wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{{}}}, %rd7, %rd8, 1, 1, 1, 0, 0;\n",
            regs.join(", "),
            s = 2 * kk
        );
    }
    let zero: String = (0..32).map(|i| format!("    mov.f32 %f{i}, 0f00000000;\n")).collect();
    let store: String = (0..32).map(|i| format!("    st.global.f32 [%rd9+{}], %f{i};\n", 4 * i)).collect();
    // Descriptor bits above the start address: LBO 16 bytes (unused by swizzled K-major), SBO
    // 1024 bytes, 128-byte swizzle (mode 1).
    let hi: u64 = (16 >> 4) << 16 | (1024 >> 4) << 32 | 1 << 62;
    let ptx = format!(
        ".version 8.0\n.target sm_90a\n.address_size 64\n
.visible .entry k(.param .align 64 .b8 amap[128], .param .align 64 .b8 bmap[128], .param .u64 out)
{{
    .shared .align 8 .b64 bar;
    .shared .align 1024 .b8 sm[16384];
    .reg .pred %p<4>;
    .reg .b32 %r<16>;
    .reg .f32 %f<32>;
    .reg .b64 %rd<16>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u64 %rd2, amap;
    mov.u64 %rd3, bmap;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, sm;
    mov.u32 %r3, bar;
    add.u32 %r4, %r2, 8192;
    mov.u32 %r5, 0;
    setp.eq.u32 %p1, %r1, 0;
    @%p1 mbarrier.init.shared::cta.b64 [%r3], 1;
    bar.sync 0;
    @%p1 mbarrier.arrive.expect_tx.shared::cta.b64 %rd4, [%r3], 16384;
    @%p1 cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r2], [%rd2, {{%r5, %r5}}], [%r3];
    @%p1 cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r4], [%rd3, {{%r5, %r5}}], [%r3];
WAIT:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r3], 0;
    @!%p2 bra WAIT;
    cvt.u64.u32 %rd5, %r2;
    shr.u64 %rd5, %rd5, 4;
    or.b64 %rd5, %rd5, {hi};
    cvt.u64.u32 %rd6, %r4;
    shr.u64 %rd6, %rd6, 4;
    or.b64 %rd6, %rd6, {hi};
{zero}    wgmma.fence.sync.aligned;
{mma}    wgmma.commit_group.sync.aligned;
    wgmma.wait_group.sync.aligned 0;
    mul.wide.u32 %rd10, %r1, 128;
    add.s64 %rd9, %rd1, %rd10;
{store}    ret;
}}
"
    );
    let module = Module::parse(&ptx).unwrap_or_else(|e| panic!("parse failed: {e}\n{ptx}"));
    let mut m = Machine::new(Arch::Sm90);
    let pa = m.alloc(abytes.len()).unwrap();
    m.write(pa, &abytes).unwrap();
    let pb = m.alloc(bbytes.len()).unwrap();
    m.write(pb, &bbytes).unwrap();
    let out = m.alloc(128 * 128).unwrap();
    m.memset(out, 0xdd, 128 * 128).unwrap();
    let map = |addr, k: usize, rows: usize| {
        let mut t = TensorMap::new(addr, 2, &[k as u64, rows as u64], &[2 * k as u64], &[64, 64]);
        t.swizzle = Swizzle::B128;
        t.encode().unwrap()
    };
    let p = ParamBuilder::new().bytes(&map(pa, 64, ma), 64).bytes(&map(pb, kb, 64), 64).ptr(out).finish();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [128, 1, 1], dynamic_smem: 0 };
    let rep = m.launch(&module, "k", &cfg, &p).unwrap_or_else(|e| panic!("{e}"));
    rep.assert_clean_strict().unwrap_or_else(|e| panic!("sanitizer: {e}"));
    let mut ob = vec![0u8; 128 * 128];
    m.read(out, &mut ob).unwrap();
    let got: Vec<f32> = ob.chunks_exact(4).map(|x| f32::from_le_bytes(x.try_into().unwrap())).collect();
    for tid in 0..128 {
        let (q, l) = (tid / 32, tid % 32);
        let (g, t) = (l / 4, l % 4);
        for idx in 0..32 {
            let (j, i) = (idx / 4, idx % 4);
            let row = 16 * q + g + if i >= 2 { 8 } else { 0 };
            let col = 8 * j + 2 * t + (i & 1);
            let want: f64 = if row < ma { (0..kb).map(|k| a[row][k] * bt[col][k]).sum() } else { 0.0 };
            assert_eq!(got[32 * tid + idx], want as f32, "D[{row}][{col}] (thread {tid}, register {idx})");
        }
    }
}
