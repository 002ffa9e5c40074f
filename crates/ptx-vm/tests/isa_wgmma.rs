//! `wgmma.mma_async.sync.aligned.m64nNk16.{f32,f16}.{bf16,f16}` on hand-written PTX (PTX ISA 9.7.15,
//! "Asynchronous Warpgroup Level Matrix Multiply-Accumulate"), against a float64 product:
//! - 9.7.15.5.1.1 register fragments: warp q of the warpgroup holds rows 16q..16q+16 of A (the
//!   four registers of the m16n8k16 A fragment) and of D (per 8 columns j, `d[4j..4j+4]` as the
//!   m16n8 C fragment);
//! - 9.7.15.5.1.2 shared-memory layouts, K-major: core matrices of 8 rows x 16 bytes (LBO along K,
//!   SBO between groups of 8 rows) without swizzle; atoms of 8 rows x 32/64/128 bytes, SBO apart,
//!   with the 16-byte chunks of each address permuted by its row in the repeating pattern;
//! - 9.7.15.5.1.2.1 MN-major (imm-trans 1), A and B from descriptors with every swizzle mode and
//!   B with A in registers: placed by evaluating the ISA's canonical layouts (9.7.15.5.1.2.1.3)
//!   in the test, the bytes no operand occupies poisoned with NaN; imm-trans-a with A in
//!   registers is refused by name;
//! - f16 accumulators: N / 4 `.f16x2` registers, element i in the half i % 2 of register i / 2 at
//!   the f32 layout's position of element i; the expected value is the float64 sum rounded to f16
//!   (nearest even) once per `mma_async` (the VM's documented model, which the ISA leaves open);
//! - scale-d (false: D = A * B), imm-scale-a/b (-1 negates the operand);
//! - `wgmma.fence` is accepted; results are written to the accumulators only when `wait_group`
//!   retires their group (9.7.15.6-7): a store of them before it sees the old values and is a
//!   definedness finding naming the `mma_async`; a chain on the same accumulators accumulates.
//!
//! - sanitizer: a write (store, atomic, cp.async) to shared bytes a pending `mma_async` reads, or
//!   a write of its A-fragment or accumulator registers, before its `wait_group` is a finding
//!   naming the writer and the `mma_async`; other writes, and writes after the wait, are not.
//!
//! The placement of operands in shared memory is written here from the ISA's figures, apart from
//! the VM's decoder (`semantics::wgmma`). Inputs are small dyadic values, so the float64 sums are
//! exact and the f32 results are compared bit for bit.

mod isa_common;
use isa_common::Rng;
use ptx_vm::{Arch, Counters, FindingKind, LaunchConfig, Machine, Module, ParamBuilder, SanitizerReport};

#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Bf16,
    F16,
}

/// An operand layout: swizzle mode (descriptor bits 62-63 value), LBO, SBO, the byte offset of
/// the operand's K slice within its swizzle atom row (K-major only), and whether it is MN-major
/// (imm-trans 1).
#[derive(Clone, Copy)]
struct Layout {
    mode: u64,
    lbo: u64,
    sbo: u64,
    kbyte0: u64,
    mn: bool,
}

const NONE: Layout = Layout { mode: 0, lbo: 128, sbo: 256, kbyte0: 0, mn: false };

/// A K-major layout.
const fn kl(mode: u64, lbo: u64, sbo: u64, kbyte0: u64) -> Layout {
    Layout { mode, lbo, sbo, kbyte0, mn: false }
}

/// An MN-major layout.
const fn mnl(mode: u64, lbo: u64, sbo: u64) -> Layout {
    Layout { mode, lbo, sbo, kbyte0: 0, mn: true }
}

/// Evaluates a CuTe-style layout `(shape) : (stride)` (strides in bytes) at the coordinates
/// `coord`, each mode split into three sub-modes first-fastest (a K mode `(8,k)` is written
/// `(1,8,k)`).
fn cute(mut coord: [u64; 2], shape: [[u64; 3]; 2], stride: [[u64; 3]; 2]) -> u64 {
    let mut off = 0;
    for d in 0..2 {
        for i in 0..3 {
            // The last sub-mode takes whatever is left (the repeat count m or k).
            let x = if i == 2 { coord[d] } else { coord[d] % shape[d][i] };
            off += x * stride[d][i];
            if i < 2 {
                coord[d] /= shape[d][i];
            }
        }
    }
    off
}

impl Layout {
    fn row_bytes(&self) -> u64 {
        match self.mode {
            0 => 16,
            1 => 128,
            2 => 64,
            _ => 32,
        }
    }

    /// Byte address (from a 1024-aligned base) of element (row, k) of the matrix (row along M
    /// for A, N for B).
    fn addr(&self, row: u64, k: u64) -> u64 {
        if self.mn {
            return self.mn_addr(row, k);
        }
        let kb = self.kbyte0 + 2 * k;
        if self.mode == 0 {
            return row / 8 * self.sbo + kb / 16 * self.lbo + row % 8 * 16 + kb % 16;
        }
        let w = self.row_bytes();
        let a = row / 8 * self.sbo + row % 8 * w + kb;
        // The 16-byte chunk within the row XOR the row within the 8-row pattern (address bits 7+).
        a ^ (((a >> 7) & (w / 16 - 1)) << 4)
    }

    /// MN-major, from the canonical layouts of PTX ISA 9.7.15.5.1.2.1.3 in bytes (2-byte
    /// elements: T = 8 per 16 bytes), then the swizzle `Swizzle<b, 4, 3>` (address bits 4..4+b
    /// XOR bits 7..7+b, b = log2(w / 16)):
    /// none: `((8,1,m),(8,k)) : ((2,16,SBO),(16,LBO))`;
    /// w-byte swizzle: `((8,w/16,m),(8,k)) : ((2,16,LBO),(w,SBO))`.
    fn mn_addr(&self, mn: u64, k: u64) -> u64 {
        if self.mode == 0 {
            return cute([mn, k], [[8, 1, 0], [1, 8, 0]], [[2, 16, self.sbo], [0, 16, self.lbo]]);
        }
        let w = self.row_bytes();
        let a = cute([mn, k], [[8, w / 16, 0], [1, 8, 0]], [[2, 16, self.lbo], [0, w, self.sbo]]);
        let b = (w / 16).trailing_zeros();
        a ^ (((a >> 7) & ((1 << b) - 1)) << 4)
    }

    /// The descriptor of a matrix placed at `base` (the kernel adds the shared base address).
    fn desc(&self, base: u64) -> u64 {
        let e = |x: u64| (x & 0x3ffff) >> 4;
        e(base + self.kbyte0) | e(self.lbo) << 16 | e(self.sbo) << 32 | self.mode << 62
    }
}

struct Case {
    ty: Ty,
    n: usize,
    b: Layout,
    /// A from a descriptor with this layout (placed after B), or from registers.
    a_smem: Option<Layout>,
    scale_d: bool,
    neg_a: bool,
    neg_b: bool,
    threads: u32,
    /// Issue the mma_async twice on the same accumulators (a chain) before one commit and wait.
    chain: bool,
    /// Whether the kernel waits for the group before storing the accumulators.
    wait: bool,
    /// The N of that `wait_group`, and whether an empty group is committed after the mma's.
    wait_n: u32,
    empty_commit: bool,
    /// f16 accumulators (`.f16.f16.f16`, two per register) instead of f32; the inputs then have
    /// full 11-bit significands so that the products do not fit in f16 and the rounding shows.
    acc16: bool,
    /// PTX placed between the `commit_group` and the `wait_group` (a planted early write); the
    /// sanitizer report is then the caller's to judge.
    early: String,
    /// Run the kernel of this name in `tests/ptx/wgmma_isa.ptx` (which must be this case's
    /// kernel: see [`file_kernels`]) instead of a generated module.
    kernel: Option<&'static str>,
}

impl Case {
    fn new(n: usize) -> Case {
        Case {
            ty: Ty::Bf16,
            n,
            b: NONE,
            a_smem: None,
            scale_d: true,
            neg_a: false,
            neg_b: false,
            threads: 128,
            chain: false,
            wait: true,
            wait_n: 0,
            empty_commit: false,
            acc16: false,
            early: String::new(),
            kernel: None,
        }
    }
}

const IMG: usize = 24576;
const A_BASE: u64 = 16384;

fn bits(ty: Ty, x: f64) -> u16 {
    // Every test value is a small dyadic rational: exact in both formats.
    let f = x as f32;
    match ty {
        Ty::Bf16 => (f.to_bits() >> 16) as u16,
        Ty::F16 => {
            let h = half_from_f32(f);
            assert_eq!(h.1, f, "{x} not exact in f16");
            h.0
        }
    }
}

/// f32 -> f16 for values exact in f16 (normal range, at most 11 significant bits).
fn half_from_f32(f: f32) -> (u16, f32) {
    if f == 0.0 {
        return (if f.is_sign_negative() { 0x8000 } else { 0 }, f);
    }
    let b = f.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let mant = ((b >> 13) & 0x3ff) as u16;
    assert!((1..31).contains(&exp), "{f} outside f16's normal range");
    (sign | (exp as u16) << 10 | mant, f)
}

/// f64 -> f16 bits, to nearest even, written from the format (1 sign, 5 exponent bits biased by
/// 15, 10 fraction bits; subnormals below 2^-14 in steps of 2^-24); finite results only.
fn f16_rn(x: f64) -> u16 {
    let sign = if x.is_sign_negative() { 0x8000 } else { 0 };
    let a = x.abs();
    if a == 0.0 {
        return sign;
    }
    let e = (((a.to_bits() >> 52) as i32) - 1023).max(-14);
    let q = 2f64.powi(e - 10);
    let mut m = (a / q).round_ties_even() as u32;
    let mut e = e;
    if m == 2048 {
        e += 1;
        m = 1024;
    }
    assert!(e <= 15, "{x} overflows f16");
    if m < 1024 {
        return sign | m as u16; // subnormal (e == -14)
    }
    sign | ((e + 15) as u16) << 10 | (m - 1024) as u16
}

fn f16_value(h: u16) -> f64 {
    let (e, m) = (((h >> 10) & 31) as i32, (h & 0x3ff) as f64);
    let v = if e == 0 { m * 2f64.powi(-24) } else { (1024.0 + m) * 2f64.powi(e - 25) };
    if h & 0x8000 != 0 {
        -v
    } else {
        v
    }
}

/// The header of the generated modules and of `tests/ptx/wgmma_isa.ptx`.
const HEADER: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n";

/// The module of one case, its kernel named `k`.
fn ptx(c: &Case) -> String {
    format!("{HEADER}\n{}", entry(c, "k"))
}

/// The kernels of `tests/ptx/wgmma_isa.ptx`, which the tests below run and
/// `tests/cuda/vm_diff.txt` compares with a Hopper GPU (layouts and inputs there come from the
/// parameters: the descriptors and the shared-memory image). The file is these cases' generated
/// kernels, and `the_wgmma_isa_ptx_file_holds_the_generated_kernels` keeps it so.
fn file_kernels() -> Vec<(&'static str, Case)> {
    vec![
        // A in registers, B K-major (any swizzle, from its descriptor).
        ("wgmma_m64n64_bf16_areg", Case::new(64)),
        // A in registers, B N-major.
        ("wgmma_m64n128_bf16_areg_bmn", Case { b: mnl(1, 2048, 1024), ..Case::new(128) }),
        // A M-major from a descriptor, B K-major.
        ("wgmma_m64n16_bf16_amn", Case { a_smem: Some(mnl(0, 128, 256)), ..Case::new(16) }),
        // f16 accumulators, A in registers, N an odd multiple of 8.
        ("wgmma_m64n24_f16acc_areg", Case { ty: Ty::F16, acc16: true, ..Case::new(24) }),
        // f16 accumulators, A M-major and B N-major from descriptors.
        (
            "wgmma_m64n72_f16acc_amn_bmn",
            Case { ty: Ty::F16, acc16: true, a_smem: Some(mnl(2, 1024, 512)), b: mnl(1, 2048, 1024), ..Case::new(72) },
        ),
    ]
}

/// The case of file kernel `name`, set to run it from the file.
fn from_file(name: &'static str) -> Case {
    let c = file_kernels().into_iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no file kernel {name}")).1;
    Case { kernel: Some(name), ..c }
}

fn file_text() -> String {
    let mut t = format!(
        "// Generated by crates/ptx-vm/tests/isa_wgmma.rs (file_kernels; WGMMA_ISA_REGEN=1 rewrites it): the\n\
         // wgmma ISA kernels the tests run and tests/cuda/vm_diff.txt compares with a Hopper GPU.\n{HEADER}"
    );
    for (name, c) in file_kernels() {
        t += "\n";
        t += &entry(&c, name);
    }
    t
}

#[test]
fn the_wgmma_isa_ptx_file_holds_the_generated_kernels() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ptx/wgmma_isa.ptx");
    let want = file_text();
    if std::env::var_os("WGMMA_ISA_REGEN").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "tests/ptx/wgmma_isa.ptx is stale: WGMMA_ISA_REGEN=1 cargo test -p ptx-vm --test isa_wgmma file"
    );
}

/// The kernel of a case, named `name`.
fn entry(c: &Case, name: &str) -> String {
    let t = if c.ty == Ty::Bf16 { "bf16" } else { "f16" };
    let nd = if c.acc16 { c.n / 4 } else { c.n / 2 };
    let dt = if c.acc16 { "f16" } else { "f32" };
    let dregs: Vec<String> = (0..nd).map(|i| format!("%f{i}")).collect();
    let mut body = String::new();
    for i in 0..nd {
        body += &format!("    ld.global.b32 %f{i}, [%rd20+{}];\n", 4 * i);
    }
    let a_op = if c.a_smem.is_some() { "%rd11".to_string() } else { "{%r10, %r11, %r12, %r13}".to_string() };
    // imm-trans-a (A from a descriptor only), imm-trans-b.
    let tb = c.b.mn as u32;
    let tail = match c.a_smem {
        Some(la) => format!(", {}, {tb}", la.mn as u32),
        None => format!(", {tb}"),
    };
    let (sa, sb) = (if c.neg_a { -1 } else { 1 }, if c.neg_b { -1 } else { 1 });
    let mma = format!(
        "    wgmma.mma_async.sync.aligned.m64n{}k16.{dt}.{t}.{t} {{{}}}, {a_op}, %rd12, %p1, {sa}, {sb}{tail};\n",
        c.n,
        dregs.join(", ")
    );
    let mma = if c.chain { format!("{mma}{mma}") } else { mma };
    let mut wait = String::new();
    if c.empty_commit {
        wait += "    wgmma.commit_group.sync.aligned;\n";
    }
    if c.wait || c.wait_n > 0 {
        wait += &format!("    wgmma.wait_group.sync.aligned {};\n", c.wait_n);
    }
    let mut store = String::new();
    for i in 0..nd {
        store += &format!("    st.global.b32 [%rd21+{}], %f{i};\n", 4 * i);
    }
    format!(
        ".visible .entry {name}(.param .u64 out, .param .u64 areg, .param .u64 cin, .param .u64 img, .param .u64 adesc,
    .param .u64 bdesc, .param .u32 scale)
{{
    .shared .align 1024 .b8 sm[{IMG}];
    .reg .pred %p<4>;
    .reg .b32 %r<32>;
    .reg .b32 %f<{nf}>;
    .reg .b64 %rd<32>;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [areg];
    ld.param.u64 %rd3, [cin];
    ld.param.u64 %rd4, [img];
    ld.param.u64 %rd11, [adesc];
    ld.param.u64 %rd12, [bdesc];
    ld.param.u32 %r5, [scale];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, sm;
    // Copy the shared-memory image, one word per thread per step.
    mov.u32 %r3, %r1;
COPY:
    mul.wide.u32 %rd5, %r3, 4;
    add.s64 %rd6, %rd4, %rd5;
    ld.global.u32 %r4, [%rd6];
    shl.b32 %r6, %r3, 2;
    add.u32 %r6, %r2, %r6;
    st.shared.u32 [%r6], %r4;
    add.u32 %r3, %r3, {nthreads};
    setp.lt.u32 %p2, %r3, {words};
    @%p2 bra COPY;
    // wgmma reads shared memory through the async proxy: order the generic-proxy stores first.
    fence.proxy.async.shared::cta;
    bar.sync 0;
    // The descriptors' start addresses are relative to sm: add its shared address.
    shr.u32 %r7, %r2, 4;
    cvt.u64.u32 %rd7, %r7;
    add.s64 %rd11, %rd11, %rd7;
    add.s64 %rd12, %rd12, %rd7;
    mul.wide.u32 %rd8, %r1, 16;
    add.s64 %rd8, %rd2, %rd8;
    ld.global.v4.u32 {{%r10, %r11, %r12, %r13}}, [%rd8];
    mul.wide.u32 %rd9, %r1, {dbytes};
    add.s64 %rd20, %rd3, %rd9;
    add.s64 %rd21, %rd1, %rd9;
{body}    setp.ne.u32 %p1, %r5, 0;
    wgmma.fence.sync.aligned;
{mma}    wgmma.commit_group.sync.aligned;
{early}{wait}{store}    ret;
}}
",
        nf = nd.max(1),
        nthreads = c.threads,
        words = IMG / 4,
        dbytes = 4 * nd,
        early = c.early,
    )
}

/// Runs the case with random A (64x16), B (16xN), C (64xN); returns (got, want) per thread word
/// and the sanitizer's report.
fn run(c: &Case, seed: u64) -> Result<(Vec<u32>, Vec<u32>, SanitizerReport, Counters), String> {
    let mut rng = Rng(seed);
    let n = c.n;
    let acc16 = c.acc16;
    let mut val = |den: f64| {
        let r = rng.next_u32();
        if acc16 {
            // +-(1 + f / 1024) 2^(e - 1), e in 0..3: every f16 significand occurs.
            let v = (1024 + r % 1024) as f64 / 1024.0 * 2f64.powi((r >> 10) as i32 % 3 - 1) * 4.0 / den;
            if r >> 31 == 1 {
                -v
            } else {
                v
            }
        } else {
            (r % 17) as f64 / den - 8.0 / den
        }
    };
    let a: Vec<[f64; 16]> = (0..64).map(|_| std::array::from_fn(|_| val(4.0))).collect();
    let b: Vec<[f64; 16]> = (0..n).map(|_| std::array::from_fn(|_| val(4.0))).collect(); // b[n][k]
    let cm: Vec<Vec<f64>> = (0..64).map(|_| (0..n).map(|_| val(8.0)).collect()).collect();
    // Every byte the operands do not occupy is poison (0xffff: NaN in f16 and bf16), so a read
    // from a misplaced address shows in the results.
    let mut img = vec![0xffu8; IMG];
    for (col, bc) in b.iter().enumerate() {
        for (k, &x) in bc.iter().enumerate() {
            let at = c.b.addr(col as u64, k as u64) as usize;
            img[at..at + 2].copy_from_slice(&bits(c.ty, x).to_le_bytes());
        }
    }
    if let Some(la) = c.a_smem {
        for (m, ar) in a.iter().enumerate() {
            for (k, &x) in ar.iter().enumerate() {
                let at = (A_BASE + la.addr(m as u64, k as u64)) as usize;
                img[at..at + 2].copy_from_slice(&bits(c.ty, x).to_le_bytes());
            }
        }
    }
    // A's register fragment and C/D's, per thread T = 32 q + l (g = l / 4, t = l % 4).
    let nthreads = c.threads as usize;
    let mut areg = vec![0u32; 4 * nthreads];
    // Accumulator words per thread: one f32 per element, or two f16 per word (low half first).
    let words = if acc16 { n / 4 } else { n / 2 };
    let mut cin = vec![0u32; nthreads * words];
    let mut want = vec![0u32; nthreads * words];
    let (sa, sb) = (if c.neg_a { -1.0 } else { 1.0 }, if c.neg_b { -1.0 } else { 1.0 });
    for tid in 0..nthreads {
        let (q, l) = (tid / 32 % 4, tid % 32);
        let (g, t) = (l / 4, l % 4);
        for r in 0..4 {
            let row = 16 * q + g + if r % 2 == 1 { 8 } else { 0 };
            let col = 2 * t + if r >= 2 { 8 } else { 0 };
            areg[4 * tid + r] = bits(c.ty, a[row][col]) as u32 | (bits(c.ty, a[row][col + 1]) as u32) << 16;
        }
        for idx in 0..n / 2 {
            let (j, i) = (idx / 4, idx % 4);
            let row = 16 * q + g + if i >= 2 { 8 } else { 0 };
            let col = 8 * j + 2 * t + (i & 1);
            let mut s = if c.scale_d { cm[row][col] } else { 0.0 };
            for _ in 0..if c.chain { 2 } else { 1 } {
                for k in 0..16 {
                    s += (sa * a[row][k]) * (sb * b[col][k]);
                }
                // f16 accumulators: one rounding per mma_async (the VM's documented model).
                if acc16 {
                    s = f16_value(f16_rn(s));
                }
            }
            // Without a wait the registers still hold C when they are stored.
            let s = if c.wait { s } else { cm[row][col] };
            if acc16 {
                let (w, sh) = (tid * words + idx / 2, 16 * (idx % 2));
                cin[w] |= (bits(Ty::F16, cm[row][col]) as u32) << sh;
                want[w] |= (f16_rn(s) as u32) << sh;
            } else {
                cin[tid * words + idx] = (cm[row][col] as f32).to_bits();
                want[tid * words + idx] = (s as f32).to_bits();
            }
        }
    }
    let (module, kname) = match c.kernel {
        Some(name) => {
            let file = include_str!("ptx/wgmma_isa.ptx");
            assert!(
                file.contains(&entry(c, name)),
                "tests/ptx/wgmma_isa.ptx has no kernel {name} for this case (WGMMA_ISA_REGEN=1 cargo test -p ptx-vm \
                 --test isa_wgmma file rewrites the file from file_kernels)"
            );
            (Module::parse(file).unwrap_or_else(|e| panic!("wgmma_isa.ptx: {e}")), name)
        }
        None => {
            let ptx = ptx(c);
            (Module::parse(&ptx).unwrap_or_else(|e| panic!("parse failed: {e}\n{ptx}")), "k")
        }
    };
    let mut m = Machine::new(Arch::Sm90);
    let up = |m: &mut Machine, bytes: &[u8]| {
        let p = m.alloc(bytes.len().max(4)).unwrap();
        m.write(p, bytes).unwrap();
        p
    };
    let pa = up(&mut m, &areg.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    let pc = up(&mut m, &cin.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    let pi = up(&mut m, &img);
    let out_bytes = 4 * nthreads * words;
    let po = m.alloc(out_bytes).unwrap();
    m.memset(po, 0xdd, out_bytes).unwrap();
    let adesc = c.a_smem.map(|la| la.desc(A_BASE)).unwrap_or(0);
    let p =
        ParamBuilder::new().ptr(po).ptr(pa).ptr(pc).ptr(pi).u64(adesc).u64(c.b.desc(0)).u32(c.scale_d as u32).finish();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [c.threads, 1, 1], dynamic_smem: 0 };
    let rep = m.launch(&module, kname, &cfg, &p).map_err(|e| e.to_string())?;
    let san = rep.sanitizer.clone().expect("sanitizer report");
    if !c.early.is_empty() {
        // Judged by the caller.
    } else if c.wait {
        rep.assert_clean_strict().unwrap_or_else(|e| panic!("sanitizer: {e}"));
    } else {
        // Every accumulator store before the wait reads a pending register.
        let findings = san.count(FindingKind::UndefinedValueStoredToGlobal);
        assert_eq!(findings, (nthreads * words) as u64, "{san}");
        let text = san.to_string();
        let line = ptx(c).lines().position(|l| l.contains("wgmma.mma_async")).unwrap() + 1;
        assert!(text.contains(&format!("from uninitialized memory read at PTX line {line}")), "{text}");
    }
    let mut ob = vec![0u8; out_bytes];
    m.read(po, &mut ob).unwrap();
    let got = ob.chunks_exact(4).map(|x| u32::from_le_bytes(x.try_into().unwrap())).collect();
    Ok((got, want, san, rep.counters.expect("counters")))
}

fn check(c: &Case, seed: u64) {
    let (got, want, _, _) = run(c, seed).unwrap_or_else(|e| panic!("launch failed: {e}"));
    let words = if c.acc16 { c.n / 4 } else { c.n / 2 };
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let show = |x: u32| {
            if c.acc16 {
                format!("{x:#010x} = ({}, {})", f16_value(x as u16), f16_value((x >> 16) as u16))
            } else {
                format!("{}", f32::from_bits(x))
            }
        };
        assert_eq!(
            g,
            w,
            "seed {seed} N {} word {i} (thread {}, reg {}): got {} want {}",
            c.n,
            i / words,
            i % words,
            show(*g),
            show(*w)
        );
    }
}

#[test]
fn every_n_from_8_to_256_with_a_in_registers_and_b_without_swizzle() {
    for n in (8..=256).step_by(8) {
        check(&Case::new(n), 0x3900 + n as u64);
    }
}

#[test]
fn f16_accumulators_round_once_per_mma_for_several_n() {
    for n in [8, 136, 256] {
        check(&Case { ty: Ty::F16, acc16: true, ..Case::new(n) }, 0xacc16 + n as u64);
    }
    check(&from_file("wgmma_m64n24_f16acc_areg"), 0xacc16 + 24);
}

#[test]
fn f16_accumulators_with_a_from_a_swizzled_descriptor_and_scale_d_false() {
    let la = kl(1, 16, 1024, 0);
    let b = kl(3, 16, 256, 0);
    check(&Case { ty: Ty::F16, acc16: true, a_smem: Some(la), b, scale_d: false, ..Case::new(40) }, 0xacc17);
}

#[test]
fn f16_accumulators_chained_round_after_each_k16_step() {
    check(&Case { ty: Ty::F16, acc16: true, chain: true, neg_b: true, ..Case::new(16) }, 0xacc18);
}

#[test]
fn f16_accumulators_with_bf16_inputs_are_refused() {
    let ptx = ptx(&Case { ty: Ty::Bf16, acc16: true, ..Case::new(8) });
    let module = Module::parse(&ptx).unwrap();
    let names: Vec<String> = module.unsupported("k").unwrap().iter().map(|u| u.to_string()).collect();
    assert!(names.iter().any(|s| s.contains("m64n8k16.f16.bf16.bf16")), "{names:?}");
}

#[test]
fn f16_inputs() {
    check(&Case { ty: Ty::F16, ..Case::new(64) }, 0xf16);
}

#[test]
fn b_with_the_128_byte_swizzle() {
    check(&Case { b: kl(1, 16, 1024, 0), ..from_file("wgmma_m64n64_bf16_areg") }, 0x128);
}

#[test]
fn b_with_the_128_byte_swizzle_at_the_second_k_slice_of_its_atom() {
    // The descriptor starts 32 bytes into the atom (CUTLASS's k-iteration); the swizzle still
    // follows the absolute address, so the base offset stays 0.
    check(&Case { b: kl(1, 16, 1024, 32), ..Case::new(32) }, 0x1282);
}

#[test]
fn b_with_the_64_byte_swizzle() {
    check(&Case { b: kl(2, 16, 512, 0), ..from_file("wgmma_m64n64_bf16_areg") }, 0x64);
}

#[test]
fn b_with_the_32_byte_swizzle() {
    check(&Case { b: kl(3, 16, 256, 0), ..from_file("wgmma_m64n64_bf16_areg") }, 0x32);
}

#[test]
fn b_without_swizzle_from_the_isa_kernel_file() {
    check(&Case { b: kl(0, 128, 256, 0), ..from_file("wgmma_m64n64_bf16_areg") }, 0x64a);
}

#[test]
fn b_without_swizzle_with_other_leading_and_stride_offsets() {
    // Core matrices along K 2048 bytes apart, groups of 8 rows 128 bytes apart.
    check(&Case { b: kl(0, 2048, 128, 0), ..Case::new(128) }, 0x1b0);
}

#[test]
fn a_from_a_descriptor() {
    let la = kl(0, 128, 256, 0);
    check(&Case { a_smem: Some(la), ..Case::new(24) }, 0xa5);
    let sw = kl(1, 16, 1024, 0);
    check(&Case { a_smem: Some(sw), b: kl(2, 16, 512, 0), ..Case::new(16) }, 0xa6);
}

/// Shared-memory counters of descriptor reads: one request per operand and one conflict-free
/// wavefront per core matrix (8 rows of 16 bytes), B counted once per warpgroup (2 N / 8 core
/// matrices), A from shared memory per warp (4 each). Every case below runs the same block and
/// copies the same image into shared memory, so the differences from the first are the wgmma's.
#[test]
fn descriptor_reads_count_one_conflict_free_wavefront_per_core_matrix() {
    let counters = |c: &Case| run(c, 0xc0).unwrap_or_else(|e| panic!("launch failed: {e}")).3;
    let base = counters(&Case::new(8));
    let cases = [
        ("B K-major, no swizzle, N 64", Case::new(64), 2 * 64 / 8 - 2, 0),
        ("B K-major, 128B swizzle, N 64", Case { b: kl(1, 16, 1024, 0), ..Case::new(64) }, 14, 0),
        ("B K-major, 64B swizzle, N 32", Case { b: kl(2, 16, 512, 0), ..Case::new(32) }, 6, 0),
        ("B N-major, 32B swizzle, N 40", Case { b: mnl(3, 512, 256), ..Case::new(40) }, 8, 0),
        ("A K-major from shared, N 8", Case { a_smem: Some(kl(0, 128, 256, 0)), ..Case::new(8) }, 16, 4),
        (
            "A K-major 128B swizzle, B 64B swizzle, N 16",
            Case { a_smem: Some(kl(1, 16, 1024, 0)), b: kl(2, 16, 512, 0), ..Case::new(16) },
            16 + 2,
            4,
        ),
    ];
    for (what, case, wavefronts, requests) in cases {
        let c = counters(&case);
        assert_eq!(c.shared_wavefronts - base.shared_wavefronts, wavefronts, "{what}: wavefronts");
        assert_eq!(c.shared_ideal_wavefronts - base.shared_ideal_wavefronts, wavefronts, "{what}: ideal wavefronts");
        assert_eq!(c.shared_requests - base.shared_requests, requests, "{what}: requests");
        assert_eq!(c.bank_conflicts(), base.bank_conflicts(), "{what}: bank conflicts");
    }
}

#[test]
fn scale_d_false_ignores_the_accumulators() {
    check(&Case { scale_d: false, ..Case::new(40) }, 0x5c);
}

#[test]
fn imm_scale_a_minus_one_negates_a() {
    check(&Case { neg_a: true, ..Case::new(16) }, 0x5a);
}

#[test]
fn imm_scale_b_minus_one_negates_b() {
    check(&Case { neg_b: true, ..Case::new(16) }, 0x5b);
}

#[test]
fn two_warpgroups_compute_independently() {
    check(&Case { threads: 256, ..Case::new(16) }, 0x256);
}

#[test]
fn a_block_without_a_whole_warpgroup_is_an_error() {
    let e = run(&Case { threads: 64, ..Case::new(8) }, 1).unwrap_err();
    assert!(e.contains("wgmma.mma_async needs all 128 threads of a warpgroup"), "{e}");
}

#[test]
fn imm_trans_a_with_a_in_registers_is_refused_by_name() {
    // The register form has imm-trans-b only; a fourth immediate is an imm-trans-a.
    let ptx = ptx(&Case::new(8)).replace("%p1, 1, 1, 0;", "%p1, 1, 1, 1, 0;");
    let module = Module::parse(&ptx).unwrap();
    let names: Vec<String> = module.unsupported("k").unwrap().iter().map(|u| u.to_string()).collect();
    assert!(names.iter().any(|s| s.contains("imm-trans-a operand and A in registers")), "{names:?}");
}

// MN-major (imm-trans 1) operands, one test per swizzle mode and operand. Each layout is chosen
// so that both of its byte offsets are used (apart from A with the 128-byte swizzle, whose one
// atom covers all 64 rows of M: its LBO points at poison) and differ, so a swapped or misread
// LBO/SBO reads poison or another element.

#[test]
fn b_n_major_without_swizzle() {
    // 16-byte chunks along N 128 bytes apart (SBO), groups of 8 K 4096 bytes apart (LBO).
    check(&Case { b: mnl(0, 4096, 128), ..from_file("wgmma_m64n128_bf16_areg_bmn") }, 0x7b0);
}

#[test]
fn b_n_major_with_the_32_byte_swizzle() {
    // Eight atoms along N (16 elements each) 512 bytes apart (LBO), K groups 256 apart (SBO):
    // the two interleave.
    check(&Case { b: mnl(3, 512, 256), ..from_file("wgmma_m64n128_bf16_areg_bmn") }, 0x7b32);
}

#[test]
fn b_n_major_with_the_64_byte_swizzle() {
    check(&Case { b: mnl(2, 1024, 512), ..from_file("wgmma_m64n128_bf16_areg_bmn") }, 0x7b64);
}

#[test]
fn b_n_major_with_the_128_byte_swizzle() {
    check(&Case { b: mnl(1, 2048, 1024), ..from_file("wgmma_m64n128_bf16_areg_bmn") }, 0x7b128);
}

#[test]
fn a_m_major_without_swizzle() {
    // Chunks along M 256 bytes apart, K groups 128 apart: the two interleave.
    check(&Case { a_smem: Some(mnl(0, 128, 256)), ..from_file("wgmma_m64n16_bf16_amn") }, 0x7a0);
}

#[test]
fn a_m_major_with_the_32_byte_swizzle() {
    check(&Case { a_smem: Some(mnl(3, 512, 256)), ..from_file("wgmma_m64n16_bf16_amn") }, 0x7a32);
}

#[test]
fn a_m_major_with_the_64_byte_swizzle() {
    check(&Case { a_smem: Some(mnl(2, 1024, 512)), ..from_file("wgmma_m64n16_bf16_amn") }, 0x7a64);
}

#[test]
fn a_m_major_with_the_128_byte_swizzle() {
    check(&Case { a_smem: Some(mnl(1, 4096, 2048)), ..from_file("wgmma_m64n16_bf16_amn") }, 0x7a128);
}

#[test]
fn both_mn_major_with_f16_accumulators() {
    check(&from_file("wgmma_m64n72_f16acc_amn_bmn"), 0x7ab);
}

#[test]
fn a_in_registers_with_b_n_major() {
    check(&Case { b: mnl(3, 512, 256), neg_b: true, ..Case::new(40) }, 0x7c);
}

#[test]
fn a_chain_on_the_same_accumulators_accumulates_before_one_wait() {
    check(&Case { chain: true, ..Case::new(32) }, 0xc4a1);
}

#[test]
fn accumulators_stored_before_wait_group_hold_the_old_values_and_are_flagged() {
    check(&Case { wait: false, ..Case::new(16) }, 0x0a17);
}

#[test]
fn wait_group_1_retires_all_but_the_latest_group() {
    // The mma's group, then an empty group: waiting until one group is pending retires the mma's.
    check(&Case { empty_commit: true, wait_n: 1, ..Case::new(16) }, 0x1a);
}

#[test]
fn wait_group_1_with_one_group_retires_nothing() {
    check(&Case { wait: false, wait_n: 1, ..Case::new(16) }, 0x1b);
}

// Sanitizer: writes to a pending wgmma's operands before its wait_group (PTX ISA 9.7.15.7).

/// Runs `c` (with a planted write in `c.early`) and returns the report and the PTX lines of the
/// `mma_async` and of the planted instruction. The results are not judged: a planted shared
/// write may land before another warp of the warpgroup issues its `mma_async`.
fn planted(c: &Case, seed: u64) -> (SanitizerReport, usize, usize) {
    let (_, _, san, _) = run(c, seed).unwrap_or_else(|e| panic!("launch failed: {e}"));
    let text = ptx(c);
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let planted = c.early.lines().next().unwrap().trim();
    (san, line_of("wgmma.mma_async"), line_of(planted.split(';').next().unwrap()))
}

/// Only thread 0 writes (a 4-byte store at byte `off` of the shared image).
fn store_at(off: u64) -> String {
    format!("    setp.eq.u32 %p3, %r1, 0;\n    add.u32 %r20, %r2, {off};\n    @%p3 st.shared.u32 [%r20], %r1;\n")
}

#[test]
fn a_shared_store_into_b_before_the_wait_is_flagged_naming_the_mma_and_the_store() {
    let b = kl(1, 16, 1024, 0);
    // Element (5, 3) of B: the store covers it and its neighbour.
    let off = b.addr(5, 3) & !3;
    let c = Case { b, early: store_at(off), ..Case::new(32) };
    let (san, mma, st) = planted(&c, 0x5a1);
    assert_eq!(san.count(FindingKind::WgmmaSharedOperandOverwritten), 1, "{san}");
    let f = san.findings.iter().find(|f| f.kind == FindingKind::WgmmaSharedOperandOverwritten).unwrap();
    assert!(f.at.line.contains(&format!("PTX line {}", st + 2)), "{f}");
    assert_eq!(f.other.as_ref().unwrap().line, format!("PTX line {mma}"), "{f}");
    assert_eq!(f.address, off, "{f}"); // sm is the block's only shared variable, at 0
}

#[test]
fn a_shared_store_into_an_m_major_a_before_the_wait_is_flagged() {
    let la = mnl(2, 1024, 512);
    // Row 10 of A: read by warp 0, whose thread 0 writes it after issuing.
    let off = (A_BASE + la.addr(10, 9)) & !3;
    let c = Case { a_smem: Some(la), early: store_at(off), ..Case::new(16) };
    let (san, _, _) = planted(&c, 0x5a2);
    assert_eq!(san.count(FindingKind::WgmmaSharedOperandOverwritten), 1, "{san}");
}

#[test]
fn a_shared_atomic_into_b_before_the_wait_is_flagged() {
    let off = NONE.addr(7, 15) & !3;
    let early = format!(
        "    setp.eq.u32 %p3, %r1, 0;\n    add.u32 %r20, %r2, {off};\n    @%p3 atom.shared.add.u32 %r21, [%r20], 1;\n"
    );
    let (san, _, _) = planted(&Case { early, ..Case::new(8) }, 0x5a3);
    assert_eq!(san.count(FindingKind::WgmmaSharedOperandOverwritten), 1, "{san}");
}

#[test]
fn shared_stores_the_wgmma_does_not_read_or_after_the_wait_are_not_flagged() {
    // B with N = 8 and no swizzle occupies the first 256 bytes; byte 4096 is poison no one reads.
    let (san, _, _) = planted(&Case { early: store_at(4096), ..Case::new(8) }, 0x5a4);
    assert_eq!(san.count(FindingKind::WgmmaSharedOperandOverwritten), 0, "{san}");
    // The same store into B after wait_group 0 (an empty group committed, then waited on).
    let early = format!("    wgmma.wait_group.sync.aligned 0;\n{}", store_at(0));
    let (san, _, _) = planted(&Case { early, ..Case::new(8) }, 0x5a5);
    assert_eq!(san.count(FindingKind::WgmmaSharedOperandOverwritten), 0, "{san}");
}

#[test]
fn writing_an_accumulator_before_the_wait_is_flagged_naming_the_mma() {
    let early = "    mov.b32 %f3, 0;\n".to_string();
    let (san, mma, mov) = planted(&Case { early, ..Case::new(16) }, 0x5a6);
    // Once per warp of the warpgroup.
    assert_eq!(san.count(FindingKind::WgmmaRegisterWrittenBeforeWait), 4, "{san}");
    let f = san.findings.iter().find(|f| f.kind == FindingKind::WgmmaRegisterWrittenBeforeWait).unwrap();
    assert!(f.at.line.contains(&format!("PTX line {mov}")), "{f}");
    assert_eq!(f.other.as_ref().unwrap().line, format!("PTX line {mma}"), "{f}");
    assert!(f.to_string().contains("pending from the wgmma.mma_async at PTX line"), "{f}");
}

#[test]
fn writing_an_a_fragment_register_before_the_wait_is_flagged() {
    let early = "    add.u32 %r12, %r12, 1;\n".to_string();
    let (san, _, _) = planted(&Case { early, ..Case::new(8) }, 0x5a7);
    assert_eq!(san.count(FindingKind::WgmmaRegisterWrittenBeforeWait), 4, "{san}");
}

#[test]
fn writing_other_registers_before_the_wait_is_not_flagged() {
    // %r13 is A's last register, %f0 the first accumulator; %r14 and %r20 are neither.
    let early = "    add.u32 %r14, %r13, 1;\n    mov.u32 %r20, %r14;\n".to_string();
    let (san, _, _) = planted(&Case { early, ..Case::new(8) }, 0x5a8);
    assert!(san.is_clean(), "{san}");
}

#[test]
fn a_cp_async_into_b_before_the_wait_is_flagged() {
    let off = NONE.addr(3, 8) & !3;
    let early = format!(
        "    setp.eq.u32 %p3, %r1, 0;\n    add.u32 %r20, %r2, {off};\n    @%p3 cp.async.ca.shared.global [%r20], [%rd4], 4;\n    cp.async.commit_group;\n    cp.async.wait_all;\n"
    );
    let (san, mma, cp) = planted(&Case { early, ..Case::new(8) }, 0x5a9);
    assert_eq!(san.count(FindingKind::WgmmaSharedOperandOverwritten), 1, "{san}");
    let f = san.findings.iter().find(|f| f.kind == FindingKind::WgmmaSharedOperandOverwritten).unwrap();
    assert!(f.at.line.contains(&format!("PTX line {}", cp + 2)), "{f}");
    assert_eq!(f.other.as_ref().unwrap().line, format!("PTX line {mma}"), "{f}");
}

#[test]
fn a_bulk_copy_into_b_before_the_wait_is_flagged() {
    // Thread 0 copies 16 bytes of the image over B's row 2 with cp.async.bulk, on an mbarrier at
    // byte 20480 (poison no operand reads), and waits for it.
    let off = NONE.addr(2, 0) & !15;
    let early = format!(
        "    setp.eq.u32 %p3, %r1, 0;\n    @!%p3 bra BDONE;\n    add.u32 %r20, %r2, {off};\n    add.u32 %r21, %r2, 20480;\n\
         \x20   mbarrier.init.shared::cta.b64 [%r21], 1;\n\
         \x20   mbarrier.arrive.expect_tx.shared::cta.b64 %rd30, [%r21], 16;\n\
         \x20   cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%r20], [%rd4], 16, [%r21];\n\
         BWAIT:\n    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r21], 0;\n    @!%p2 bra BWAIT;\nBDONE:\n"
    );
    let c = Case { early, ..Case::new(8) };
    let (san, mma, _) = planted(&c, 0x5aa);
    assert_eq!(san.count(FindingKind::WgmmaSharedOperandOverwritten), 1, "{san}");
    let f = san.findings.iter().find(|f| f.kind == FindingKind::WgmmaSharedOperandOverwritten).unwrap();
    let cp = ptx(&c).lines().position(|l| l.contains("cp.async.bulk.shared")).unwrap() + 1;
    assert!(f.at.line.contains(&format!("PTX line {cp}")), "{f}");
    assert_eq!(f.other.as_ref().unwrap().line, format!("PTX line {mma}"), "{f}");
    assert_eq!(f.address, off, "{f}");
}
