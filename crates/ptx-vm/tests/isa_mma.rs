//! `mma.sync.aligned` on the VM against the PTX ISA's fragment layouts (PTX ISA 9.0 §9.7.14.5.8
//! "Matrix Fragments for mma.m16n8k8" and §9.7.14.5.9 "... mma.m16n8k16 with floating point
//! type"). Plain matrices A (16 x K), B (K x 8) and C (16 x 8) are scattered into each lane's
//! registers with the ISA's row/column formulas, written out below; each lane of one warp loads
//! its registers, runs one mma, and stores D; D is gathered with the same formulas and compared
//! to a float64 product.

mod isa_common;
use isa_common::{run_u32, Rng, HEADER};

#[derive(Clone, Copy, Debug, PartialEq)]
enum In {
    F16,
    Bf16,
    Tf32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Acc {
    F16,
    F32,
}

struct Case {
    k: usize,
    input: In,
    acc: Acc,
}

impl Case {
    fn regs(&self) -> (usize, usize, usize) {
        let cd = if self.acc == Acc::F32 { 4 } else { 2 };
        match (self.k, self.input) {
            (16, _) => (4, 2, cd),
            (8, In::Tf32) => (4, 2, cd),
            _ => (2, 1, cd),
        }
    }

    fn ptx(&self) -> String {
        let (na, nb, nc) = self.regs();
        let ty = |t: In| match t {
            In::F16 => "f16",
            In::Bf16 => "bf16",
            In::Tf32 => "tf32",
        };
        let acc = if self.acc == Acc::F32 { "f32" } else { "f16" };
        let creg = if self.acc == Acc::F32 { ".f32" } else { ".b32" };
        let list = |p: &str, n: usize| (0..n).map(|i| format!("%{p}{i}")).collect::<Vec<_>>().join(", ");
        let loads = |p: &str, base: &str, n: usize, ty: &str| {
            (0..n).map(|i| format!("    ld.global.{ty} %{p}{i}, [{base}+{}];\n", 4 * i)).collect::<String>()
        };
        let cty = if self.acc == Acc::F32 { "f32" } else { "b32" };
        format!(
            "{HEADER}
.visible .entry mma_test(.param .u64 pa, .param .u64 pb, .param .u64 pc, .param .u64 pd)
{{
    .reg .b32 %a<4>;
    .reg .b32 %b<2>;
    .reg {creg} %c<4>;
    .reg {creg} %d<4>;
    .reg .b32 %ln;
    .reg .b64 %rd<16>;
    ld.param.u64 %rd1, [pa];
    ld.param.u64 %rd2, [pb];
    ld.param.u64 %rd3, [pc];
    ld.param.u64 %rd4, [pd];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    cvta.to.global.u64 %rd3, %rd3;
    cvta.to.global.u64 %rd4, %rd4;
    mov.u32 %ln, %tid.x;
    mul.wide.u32 %rd5, %ln, 16;
    add.s64 %rd6, %rd1, %rd5;
    add.s64 %rd7, %rd2, %rd5;
    add.s64 %rd8, %rd3, %rd5;
    add.s64 %rd9, %rd4, %rd5;
{la}{lb}{lc}    mma.sync.aligned.m16n8k{k}.row.col.{acc}.{at}.{at}.{acc} {{{ld}}}, {{{la_}}}, {{{lb_}}}, {{{lc_}}};
{st}    ret;
}}
",
            la = loads("a", "%rd6", na, "b32"),
            lb = loads("b", "%rd7", nb, "b32"),
            lc = loads("c", "%rd8", nc, cty),
            k = self.k,
            at = ty(self.input),
            ld = list("d", nc),
            la_ = list("a", na),
            lb_ = list("b", nb),
            lc_ = list("c", nc),
            st = (0..nc).map(|i| format!("    st.global.{cty} [%rd9+{}], %d{i};\n", 4 * i)).collect::<String>(),
        )
    }
}

/// (row, col) in A of element i of lane's A fragment, per the ISA's formulas.
fn a_pos(case: &Case, lane: usize, i: usize) -> (usize, usize) {
    let group = lane >> 2;
    let tig = lane % 4;
    match (case.k, case.input) {
        // m16n8k16 .f16/.bf16: row = groupID for a0, a1, a4, a5, groupID + 8 for a2, a3, a6, a7;
        // col = threadID_in_group * 2 + (i & 0x1) for i < 4, + 8 for i >= 4.
        (16, _) => {
            let row = if matches!(i, 0 | 1 | 4 | 5) { group } else { group + 8 };
            let col = if i < 4 { tig * 2 + (i & 1) } else { tig * 2 + (i & 1) + 8 };
            (row, col)
        }
        // m16n8k8 .tf32: row = groupID for a0, a2, groupID + 8 for a1, a3;
        // col = threadID_in_group for a0, a1, threadID_in_group + 4 for a2, a3.
        (8, In::Tf32) => {
            let row = if i == 0 || i == 2 { group } else { group + 8 };
            let col = if i < 2 { tig } else { tig + 4 };
            (row, col)
        }
        // m16n8k8 .f16/.bf16: row = groupID for a0, a1, groupID + 8 for a2, a3;
        // col = threadID_in_group * 2 + (i & 0x1).
        _ => {
            let row = if i < 2 { group } else { group + 8 };
            (row, tig * 2 + (i & 1))
        }
    }
}

/// (row, col) in B (K x 8) of element i of lane's B fragment.
fn b_pos(case: &Case, lane: usize, i: usize) -> (usize, usize) {
    let group = lane >> 2;
    let tig = lane % 4;
    match (case.k, case.input) {
        // m16n8k16: row = threadID_in_group * 2 + (i & 0x1) for b0, b1, + 8 for b2, b3;
        // col = groupID.
        (16, _) => (tig * 2 + (i & 1) + if i >= 2 { 8 } else { 0 }, group),
        // m16n8k8 .tf32: row = threadID_in_group for b0, threadID_in_group + 4 for b1.
        (8, In::Tf32) => (if i == 0 { tig } else { tig + 4 }, group),
        // m16n8k8 .f16/.bf16: row = threadID_in_group * 2 + i for b0, b1.
        _ => (tig * 2 + i, group),
    }
}

/// (row, col) in C/D of element i: row = groupID for c0, c1, groupID + 8 for c2, c3;
/// col = threadID_in_group * 2 + (i & 0x1).
fn c_pos(lane: usize, i: usize) -> (usize, usize) {
    let group = lane >> 2;
    let tig = lane % 4;
    (if i < 2 { group } else { group + 8 }, tig * 2 + (i & 1))
}

/// Rounds x to the input type and returns (bits, exact value).
fn quantise(input: In, x: f64) -> (u32, f64) {
    match input {
        In::F16 => {
            let h = half::f16::from_f64(x);
            (h.to_bits() as u32, h.to_f64())
        }
        In::Bf16 => {
            let h = half::bf16::from_f64(x);
            (h.to_bits() as u32, h.to_f64())
        }
        In::Tf32 => {
            // A tf32 value: an f32 with the low 13 fraction bits zero.
            let bits = (x as f32).to_bits() & 0xffff_e000;
            (bits, f32::from_bits(bits) as f64)
        }
    }
}

fn check(case: Case, seed: u64) {
    let mut rng = Rng(seed);
    let k = case.k;
    let (na, nb, nc) = case.regs();
    let per_reg = if case.input == In::Tf32 { 1 } else { 2 };
    let (mut am, mut bm, mut cm) = (vec![[0f64; 16]; 16], vec![[0f64; 8]; 16], [[0f64; 8]; 16]);
    let (mut a, mut b, mut c) = (vec![0u32; 128], vec![0u32; 128], vec![0u32; 128]);
    // Scatter: element i of a lane lives in register i / per_reg, low half first.
    for lane in 0..32 {
        for i in 0..na * per_reg {
            let (r, col) = a_pos(&case, lane, i);
            let (bits, v) = quantise(case.input, rng.signed_unit() * 2.0);
            am[r][col] = v;
            a[lane * 4 + i / per_reg] |= bits << (16 * (i % per_reg));
        }
        for i in 0..nb * per_reg {
            let (r, col) = b_pos(&case, lane, i);
            let (bits, v) = quantise(case.input, rng.signed_unit() * 2.0);
            bm[r][col] = v;
            b[lane * 4 + i / per_reg] |= bits << (16 * (i % per_reg));
        }
        for i in 0..4 {
            let (r, col) = c_pos(lane, i);
            let x = rng.signed_unit();
            match case.acc {
                Acc::F32 => {
                    let v = x as f32;
                    cm[r][col] = v as f64;
                    c[lane * 4 + i] = v.to_bits();
                }
                Acc::F16 => {
                    let h = half::f16::from_f64(x);
                    cm[r][col] = h.to_f64();
                    c[lane * 4 + i / 2] |= (h.to_bits() as u32) << (16 * (i % 2));
                }
            }
        }
    }
    let _ = nc;
    let out = run_u32(&case.ptx(), "mma_test", 1, 32, &[&a, &b, &c], &[128], &[], 0xff);
    let d = &out[0];
    // Accumulation: the ISA fixes neither order nor internal precision; any order of f32 (f16)
    // additions of the K exact products and C errs by at most (K + 1) u (sum |a b| + |c|).
    let u = if case.acc == Acc::F32 { 2f64.powi(-24) } else { 2f64.powi(-11) };
    let mut seen = [[false; 8]; 16];
    for lane in 0..32 {
        for i in 0..4 {
            let (r, col) = c_pos(lane, i);
            seen[r][col] = true;
            let got = match case.acc {
                Acc::F32 => f32::from_bits(d[lane * 4 + i]) as f64,
                Acc::F16 => half::f16::from_bits((d[lane * 4 + i / 2] >> (16 * (i % 2))) as u16).to_f64(),
            };
            let (mut want, mut mag) = (cm[r][col], cm[r][col].abs());
            for kk in 0..k {
                want += am[r][kk] * bm[kk][col];
                mag += (am[r][kk] * bm[kk][col]).abs();
            }
            let tol = (k as f64 + 2.0) * u * mag;
            assert!(
                (got - want).abs() <= tol,
                "{:?} k{} {:?}: lane {lane} d{i} = D[{r}][{col}] = {got}, want {want} (seed {seed})",
                case.input,
                k,
                case.acc
            );
        }
        // Registers past the fragment were poisoned and must be untouched.
        let nd = if case.acc == Acc::F32 { 4 } else { 2 };
        for j in nd..4 {
            assert_eq!(d[lane * 4 + j], 0xffff_ffff, "lane {lane} wrote past its fragment");
        }
    }
    assert!(seen.iter().flatten().all(|&s| s), "every D element is held by some lane");
}

#[test]
fn mma_m16n8k16_bf16_f32_fragments_match_isa_layout() {
    check(Case { k: 16, input: In::Bf16, acc: Acc::F32 }, 0x1601);
}

#[test]
fn mma_m16n8k16_f16_f32_fragments_match_isa_layout() {
    check(Case { k: 16, input: In::F16, acc: Acc::F32 }, 0x1602);
}

#[test]
fn mma_m16n8k16_f16_f16_accumulators_match_isa_layout() {
    check(Case { k: 16, input: In::F16, acc: Acc::F16 }, 0x1603);
}

#[test]
fn mma_m16n8k8_bf16_and_f16_fragments_match_isa_layout() {
    check(Case { k: 8, input: In::Bf16, acc: Acc::F32 }, 0x0801);
    check(Case { k: 8, input: In::F16, acc: Acc::F32 }, 0x0802);
    check(Case { k: 8, input: In::F16, acc: Acc::F16 }, 0x0803);
}

#[test]
fn mma_m16n8k8_tf32_fragments_match_isa_layout() {
    check(Case { k: 8, input: In::Tf32, acc: Acc::F32 }, 0x0804);
}
