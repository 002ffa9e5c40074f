//! `mma.sync.aligned` on the fragments of a whole warp (PTX ISA 9.0 §9.7.14.5
//! "Matrix multiply-accumulate operation using mma instruction").
//!
//! Supported: `.m16n8k16` with `.f16`/`.bf16` A and B, `.m16n8k8` with `.f16`/`.bf16` A and B, and
//! `.m16n8k8` with `.tf32` A and B; C and D are `.f32` (any A/B type) or `.f16` (f16 A/B only), all
//! `.row.col`. Fragment layouts are those of §9.7.14.5.8 "Matrix Fragments for mma.m16n8k8" and
//! §9.7.14.5.9 "Matrix Fragments for mma.m16n8k16 with floating point type", with
//! `groupID = laneid >> 2` and `threadID_in_group = laneid % 4`.
//!
//! Rounding: the ISA does not fix the order or intermediate precision of the accumulation. The
//! VM forms every product exactly (f16/bf16/tf32 products have at most 22 significant bits), adds
//! them to C in f64 in order k = 0, 1, ..., K-1, and rounds once to the destination type, to
//! nearest even. For K <= 16 with inputs of similar magnitude the f64 sum is exact, so this is the
//! exact result correctly rounded; real tensor cores may differ by a few ulp of f32, which is why
//! kernel tests compare against tolerances and not bits.
//!
//! Speed: this runs once per warp-wide `mma` and dominates tensor-core kernels on the VM, so it
//! decodes fragments with bit operations into fixed arrays and accumulates several rows at a time
//! (see [`mma_sync`]). The first, plainer implementation stays as a test reference
//! (`perf_mma_reference.rs`), and a randomised differential test holds the two to the same bits.

use super::float::Fmt;

/// Shape of the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmaShape {
    /// `.m16n8k16`
    M16N8K16,
    /// `.m16n8k8`
    M16N8K8,
}

impl MmaShape {
    /// The K dimension.
    pub fn k(self) -> usize {
        match self {
            MmaShape::M16N8K16 => 16,
            MmaShape::M16N8K8 => 8,
        }
    }
}

/// Element type of A and B.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmaInput {
    /// `.f16`
    F16,
    /// `.bf16`
    Bf16,
    /// `.tf32` (m16n8k8 only): an f32 bit pattern whose low 13 bits are ignored.
    Tf32,
}

/// Element type of C or D.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmaAcc {
    /// `.f32`: one element per register.
    F32,
    /// `.f16`: two elements per register (low half first).
    F16,
}

/// Number of 32-bit registers per lane for A, B, and for C/D, as the ISA's operand lists give them.
pub fn fragment_regs(shape: MmaShape, input: MmaInput, acc: MmaAcc) -> (usize, usize, usize) {
    let cd = match acc {
        MmaAcc::F32 => 4,
        MmaAcc::F16 => 2,
    };
    match (shape, input) {
        (MmaShape::M16N8K16, _) => (4, 2, cd),
        (MmaShape::M16N8K8, MmaInput::Tf32) => (4, 2, cd),
        (MmaShape::M16N8K8, _) => (2, 1, cd),
    }
}

/// (row, col) of element `i` of lane `lane`'s A fragment.
pub fn a_coord(shape: MmaShape, input: MmaInput, lane: usize, i: usize) -> (usize, usize) {
    let (g, t) = (lane >> 2, lane % 4);
    match (shape, input) {
        // §9.7.14.5.9, A .f16/.bf16: row = groupID for a0,a1,a4,a5 and groupID + 8 for
        // a2,a3,a6,a7; col = threadID_in_group * 2 + (i & 1) for i < 4, + 8 for i >= 4.
        (MmaShape::M16N8K16, _) => {
            let row = if i & 2 == 0 { g } else { g + 8 };
            let col = t * 2 + (i & 1) + if i >= 4 { 8 } else { 0 };
            (row, col)
        }
        // §9.7.14.5.8, A .tf32: row = groupID for a0,a2, groupID + 8 for a1,a3;
        // col = threadID_in_group for a0,a1, threadID_in_group + 4 for a2,a3.
        (MmaShape::M16N8K8, MmaInput::Tf32) => {
            let row = if i & 1 == 0 { g } else { g + 8 };
            let col = if i < 2 { t } else { t + 4 };
            (row, col)
        }
        // §9.7.14.5.8, A .f16/.bf16: row = groupID for a0,a1, groupID + 8 for a2,a3;
        // col = threadID_in_group * 2 + (i & 1).
        (MmaShape::M16N8K8, _) => {
            let row = if i < 2 { g } else { g + 8 };
            (row, t * 2 + (i & 1))
        }
    }
}

/// (row, col) of element `i` of lane `lane`'s B fragment (B is K x 8).
pub fn b_coord(shape: MmaShape, input: MmaInput, lane: usize, i: usize) -> (usize, usize) {
    let (g, t) = (lane >> 2, lane % 4);
    match (shape, input) {
        // §9.7.14.5.9, B .f16/.bf16: row = threadID_in_group * 2 + (i & 1) for b0,b1 and
        // + 8 for b2,b3; col = groupID.
        (MmaShape::M16N8K16, _) => (t * 2 + (i & 1) + if i >= 2 { 8 } else { 0 }, g),
        // §9.7.14.5.8, B .tf32: row = threadID_in_group for b0, + 4 for b1; col = groupID.
        (MmaShape::M16N8K8, MmaInput::Tf32) => (if i == 0 { t } else { t + 4 }, g),
        // §9.7.14.5.8, B .f16/.bf16: row = threadID_in_group * 2 + i; col = groupID.
        (MmaShape::M16N8K8, _) => (t * 2 + i, g),
    }
}

/// (row, col) of element `i` of lane `lane`'s C/D fragment (16 x 8), for every shape here:
/// row = groupID for c0,c1 and groupID + 8 for c2,c3; col = threadID_in_group * 2 + (i & 1).
pub fn c_coord(lane: usize, i: usize) -> (usize, usize) {
    let (g, t) = (lane >> 2, lane % 4);
    (if i < 2 { g } else { g + 8 }, t * 2 + (i & 1))
}

fn elements_per_reg(input: MmaInput) -> usize {
    match input {
        MmaInput::Tf32 => 1,
        _ => 2,
    }
}

/// The exact value of an `.f16` bit pattern (every f16 is exact in f64). Bit operations instead
/// of `Fmt::to_f64`'s general path: this runs 384 times per warp-wide mma.
#[inline]
fn f16_bits_to_f64(h: u16) -> f64 {
    let neg = h & 0x8000 != 0;
    let e = (h >> 10) & 0x1f;
    let m = (h & 0x3ff) as u64;
    let mag = match e {
        // Subnormal: m * 2^-24.
        0 => m as f64 * (1.0 / 16_777_216.0),
        0x1f if m == 0 => f64::INFINITY,
        0x1f => f64::NAN,
        // Normal: rebias the exponent (15 -> 1023) and widen the fraction (10 -> 52 bits).
        _ => f64::from_bits(((e as u64 + 1023 - 15) << 52) | (m << 42)),
    };
    if neg {
        -mag
    } else {
        mag
    }
}

/// Element `i` of a lane's A or B fragment as an exact f64.
#[inline(always)]
fn input_value(input: MmaInput, regs: &[u32; 4], i: usize) -> f64 {
    match input {
        MmaInput::Tf32 => f32::from_bits(regs[i] & 0xffff_e000) as f64,
        // A bf16 is the high half of an f32 with the same value.
        MmaInput::Bf16 => f32::from_bits((regs[i / 2] >> (16 * (i % 2))) << 16) as f64,
        MmaInput::F16 => f16_bits_to_f64((regs[i / 2] >> (16 * (i % 2))) as u16),
    }
}

#[inline(always)]
fn acc_value(acc: MmaAcc, regs: &[u32; 4], i: usize) -> f64 {
    match acc {
        MmaAcc::F32 => f32::from_bits(regs[i]) as f64,
        MmaAcc::F16 => f16_bits_to_f64((regs[i / 2] >> (16 * (i % 2))) as u16),
    }
}

/// f64 -> f32 bits, to nearest even, NaN to the canonical NaN: the same bits as
/// `f64_to_fmt(x, Fmt::F32, Rnd::Rn)`. Rust's `as f32` is IEEE 754 roundTiesToEven with
/// gradual underflow and overflow to infinity, so only NaN needs a rule of its own.
#[inline]
fn f64_to_f32_rn(x: f64) -> u32 {
    if x.is_nan() {
        Fmt::F32.canonical_nan() as u32
    } else {
        (x as f32).to_bits()
    }
}

/// f64 -> f16 bits, to nearest even, NaN to the canonical NaN: the same bits as
/// `f64_to_fmt(x, Fmt::F16, Rnd::Rn)`, on the bits of the f64 directly.
#[inline]
fn f64_to_f16_rn(x: f64) -> u16 {
    if x.is_nan() {
        return Fmt::F16.canonical_nan() as u16;
    }
    let sign = ((x.to_bits() >> 48) & 0x8000) as u16;
    let a = x.abs();
    let mag = if a >= 65520.0 {
        // 65520 is halfway between the largest finite f16 (65504, odd significand) and 2^16:
        // ties to even round it, and everything above, to infinity.
        0x7c00
    } else if a < 1.0 / 16384.0 {
        // Below 2^-14 the f16 quantum is 2^-24; scaling by 2^24 is exact, and a result of 1024
        // is the encoding of the smallest normal, 2^-14, as it should be.
        (a * 16_777_216.0).round_ties_even() as u16
    } else {
        let bits = a.to_bits();
        let e = (bits >> 52) as u32 - 1023 + 15;
        let kept = (e << 10) | ((bits >> 42) & 0x3ff) as u32;
        let rem = bits & ((1u64 << 42) - 1);
        let half = 1u64 << 41;
        // A carry out of the fraction increments the exponent, which is the right result.
        (kept + (rem > half || (rem == half && kept & 1 == 1)) as u32) as u16
    };
    sign | mag
}

/// `acc[r][col] += am[r][kk] * bm[kk][col]` for kk = 0..k in order, `R` rows at a time: the
/// `8 * R` sums of a chunk are independent, so they hide the latency of the additions and
/// vectorise along a row, while each sum still runs over k in order (the same roundings as a
/// scalar loop: IEEE additions and exact products do not depend on the vector width).
#[inline(always)]
fn accumulate<const R: usize>(k: usize, acc: &mut [[f64; 8]; 16], am: &[[f64; 16]; 16], bm: &[[f64; 8]; 16]) {
    for (sr, ar) in acc.chunks_exact_mut(R).zip(am.chunks_exact(R)) {
        let mut s: [[f64; 8]; R] = std::array::from_fn(|i| sr[i]);
        for (kk, brow) in bm.iter().enumerate().take(k) {
            for (si, arow) in s.iter_mut().zip(ar) {
                let av = arow[kk];
                for (sc, &bv) in si.iter_mut().zip(brow) {
                    *sc += av * bv;
                }
            }
        }
        sr.copy_from_slice(&s);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn accumulate_avx(k: usize, acc: &mut [[f64; 8]; 16], am: &[[f64; 16]; 16], bm: &[[f64; 8]; 16]) {
    accumulate::<4>(k, acc, am, bm)
}

/// [`accumulate`] at the widest vector width the host has: AVX, four rows at a time, where the CPU
/// has it (the standard library checks once and caches the answer), else SSE2, two rows at a time.
#[inline(always)]
fn accumulate_dispatch(k: usize, acc: &mut [[f64; 8]; 16], am: &[[f64; 16]; 16], bm: &[[f64; 8]; 16]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx") {
            // SAFETY: the host supports AVX, checked on the line above.
            return unsafe { accumulate_avx(k, acc, am, bm) };
        }
    }
    accumulate::<2>(k, acc, am, bm)
}

/// `mma.sync.aligned.shape.row.col.dtype.atype.btype.ctype d, a, b, c` for a full warp.
/// Registers beyond [`fragment_regs`] are ignored in the inputs and zero in the output.
///
/// Each element of D is `c`, then `+ a[r][k] * b[k][col]` for k = 0, 1, ..., K-1 in f64 (each
/// product exact, each addition rounded to f64 to nearest even), rounded once to the destination
/// type to nearest even; a NaN result is the canonical NaN.
pub fn mma_sync(
    shape: MmaShape,
    input: MmaInput,
    ctype: MmaAcc,
    dtype: MmaAcc,
    a: &[[u32; 4]; 32],
    b: &[[u32; 4]; 32],
    c: &[[u32; 4]; 32],
) -> [[u32; 4]; 32] {
    // One monomorphic body per shape and input type: the fragment coordinates and the element
    // decode fold to constants and the loops unroll.
    use MmaInput::*;
    use MmaShape::*;
    match (shape, input) {
        (M16N8K16, F16) => mma_typed::<true, 0>(ctype, dtype, a, b, c),
        (M16N8K16, Bf16) => mma_typed::<true, 1>(ctype, dtype, a, b, c),
        (M16N8K16, Tf32) => mma_typed::<true, 2>(ctype, dtype, a, b, c),
        (M16N8K8, F16) => mma_typed::<false, 0>(ctype, dtype, a, b, c),
        (M16N8K8, Bf16) => mma_typed::<false, 1>(ctype, dtype, a, b, c),
        (M16N8K8, Tf32) => mma_typed::<false, 2>(ctype, dtype, a, b, c),
    }
}

const fn input_of(tag: u8) -> MmaInput {
    match tag {
        0 => MmaInput::F16,
        1 => MmaInput::Bf16,
        _ => MmaInput::Tf32,
    }
}

#[inline(always)]
fn mma_typed<const K16: bool, const INPUT: u8>(
    ctype: MmaAcc,
    dtype: MmaAcc,
    a: &[[u32; 4]; 32],
    b: &[[u32; 4]; 32],
    c: &[[u32; 4]; 32],
) -> [[u32; 4]; 32] {
    let input = input_of(INPUT);
    let shape = if K16 { MmaShape::M16N8K16 } else { MmaShape::M16N8K8 };
    let k = shape.k();
    let (na, nb, _) = fragment_regs(shape, input, ctype);
    let per = elements_per_reg(input);
    // A as [row][k], B as [k][col] and C as [row][col]: the inner loop below runs along a row of
    // B and of the accumulators, eight independent sums that the compiler can vectorise while
    // each sum keeps its own order over k.
    let mut am = [[0f64; 16]; 16];
    let mut bm = [[0f64; 8]; 16];
    let mut acc = [[0f64; 8]; 16];
    for lane in 0..32 {
        for i in 0..na * per {
            let (r, col) = a_coord(shape, input, lane, i);
            am[r][col] = input_value(input, &a[lane], i);
        }
        for i in 0..nb * per {
            let (r, col) = b_coord(shape, input, lane, i);
            bm[r][col] = input_value(input, &b[lane], i);
        }
        for i in 0..4 {
            let (r, col) = c_coord(lane, i);
            acc[r][col] = acc_value(ctype, &c[lane], i);
        }
    }
    accumulate_dispatch(k, &mut acc, &am, &bm);
    let mut d = [[0u32; 4]; 32];
    for (lane, dl) in d.iter_mut().enumerate() {
        for i in 0..4 {
            let (r, col) = c_coord(lane, i);
            let s = acc[r][col];
            match dtype {
                MmaAcc::F32 => dl[i] = f64_to_f32_rn(s),
                MmaAcc::F16 => dl[i / 2] |= (f64_to_f16_rn(s) as u32) << (16 * (i % 2)),
            }
        }
    }
    d
}

#[cfg(test)]
#[path = "perf_mma_reference.rs"]
mod reference;

#[cfg(test)]
// Lane-indexed loops mirror the ISA's per-lane formulas.
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use crate::semantics::float::{f64_to_fmt, Rnd};

    fn rng(seed: &mut u64) -> f64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// Scatter plain matrices into fragments with the ISA's formulas written out here (not the
    /// module's coordinate helpers), run, gather D, compare to a float64 product.
    fn check_k16(input: MmaInput) {
        let fmt = if input == MmaInput::F16 { Fmt::F16 } else { Fmt::BF16 };
        let mut seed = 0xfeed_u64 + input as u64;
        let q = |x: f64| f64_to_fmt(x, fmt, Rnd::Rn) as u16;
        let am: Vec<Vec<u16>> = (0..16).map(|_| (0..16).map(|_| q(rng(&mut seed) * 4.0)).collect()).collect();
        let bm: Vec<Vec<u16>> = (0..16).map(|_| (0..8).map(|_| q(rng(&mut seed) * 4.0)).collect()).collect();
        let cm: Vec<Vec<f32>> = (0..16).map(|_| (0..8).map(|_| rng(&mut seed) as f32).collect()).collect();
        let mut a = [[0u32; 4]; 32];
        let mut b = [[0u32; 4]; 32];
        let mut c = [[0u32; 4]; 32];
        for lane in 0..32 {
            let g = lane / 4;
            let t = lane % 4;
            // A: register j holds a_{2j} (low) and a_{2j+1} (high).
            // a0,a1: (g, 2t..2t+1); a2,a3: (g+8, 2t..); a4,a5: (g, 2t+8..); a6,a7: (g+8, 2t+8..)
            let a_rc = [(g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8), (g + 8, 2 * t + 8)];
            for (j, &(r, col)) in a_rc.iter().enumerate() {
                a[lane][j] = am[r][col] as u32 | (am[r][col + 1] as u32) << 16;
            }
            // B: b0,b1 rows 2t, 2t+1; b2,b3 rows 2t+8, 2t+9; column g.
            b[lane][0] = bm[2 * t][g] as u32 | (bm[2 * t + 1][g] as u32) << 16;
            b[lane][1] = bm[2 * t + 8][g] as u32 | (bm[2 * t + 9][g] as u32) << 16;
            // C: c0,c1 at (g, 2t), (g, 2t+1); c2,c3 at (g+8, 2t), (g+8, 2t+1).
            c[lane] = [
                cm[g][2 * t].to_bits(),
                cm[g][2 * t + 1].to_bits(),
                cm[g + 8][2 * t].to_bits(),
                cm[g + 8][2 * t + 1].to_bits(),
            ];
        }
        let d = mma_sync(MmaShape::M16N8K16, input, MmaAcc::F32, MmaAcc::F32, &a, &b, &c);
        for lane in 0..32 {
            let (g, t) = (lane / 4, lane % 4);
            let at = [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)];
            for (i, &(r, col)) in at.iter().enumerate() {
                let mut want = cm[r][col] as f64;
                for k in 0..16 {
                    want += fmt.to_f64(am[r][k] as u64) * fmt.to_f64(bm[k][col] as u64);
                }
                let got = f32::from_bits(d[lane][i]) as f64;
                // One rounding to f32 of the exact sum: half an ulp.
                assert!(
                    (got - want).abs() <= want.abs() * 2f64.powi(-24) + 1e-30,
                    "{input:?} lane {lane} D[{r}][{col}] = {got}, want {want}"
                );
            }
        }
    }

    #[test]
    fn m16n8k16_f16_and_bf16_match_float64_product() {
        check_k16(MmaInput::F16);
        check_k16(MmaInput::Bf16);
    }

    /// Every (row, col) of A, B and C is held by exactly one (lane, element): the layouts are
    /// bijections.
    #[test]
    fn fragment_layouts_cover_each_element_once() {
        for (shape, input) in [
            (MmaShape::M16N8K16, MmaInput::F16),
            (MmaShape::M16N8K8, MmaInput::Bf16),
            (MmaShape::M16N8K8, MmaInput::Tf32),
        ] {
            let k = shape.k();
            let (na, nb, _) = fragment_regs(shape, input, MmaAcc::F32);
            let per = elements_per_reg(input);
            let mut seen_a = vec![0; 16 * k];
            let mut seen_b = vec![0; k * 8];
            let mut seen_c = [0; 128];
            for lane in 0..32 {
                for i in 0..na * per {
                    let (r, c) = a_coord(shape, input, lane, i);
                    seen_a[r * k + c] += 1;
                }
                for i in 0..nb * per {
                    let (r, c) = b_coord(shape, input, lane, i);
                    seen_b[r * 8 + c] += 1;
                }
                for i in 0..4 {
                    let (r, c) = c_coord(lane, i);
                    seen_c[r * 8 + c] += 1;
                }
            }
            assert!(seen_a.iter().all(|&n| n == 1), "{shape:?} {input:?} A");
            assert!(seen_b.iter().all(|&n| n == 1), "{shape:?} {input:?} B");
            assert!(seen_c.iter().all(|&n| n == 1));
        }
    }

    /// m16n8k8 with f16 accumulators and tf32 inputs: small integers make every result exact,
    /// so D must equal the integer product bit for bit.
    #[test]
    fn m16n8k8_f16_acc_and_tf32_exact_on_integers() {
        let am: Vec<Vec<i32>> = (0..16).map(|r| (0..8).map(|c| (r * 3 + c * 5) % 7 - 3).collect()).collect();
        let bm: Vec<Vec<i32>> = (0..8).map(|r| (0..8).map(|c| (r * 2 + c) % 5 - 2).collect()).collect();
        let want =
            |r: usize, c: usize| -> i32 { (0..8).map(|k| am[r][k] * bm[k][c]).sum::<i32>() + (r as i32 - c as i32) };
        let h = |v: i32| half::f16::from_f32(v as f32).to_bits() as u32;
        // f16, m16n8k8: a0,a1 = (g, 2t..2t+1), a2,a3 = (g+8, 2t..); b0,b1 = rows 2t, 2t+1, col g.
        let mut a = [[0u32; 4]; 32];
        let mut b = [[0u32; 4]; 32];
        let mut c = [[0u32; 4]; 32];
        for lane in 0..32 {
            let (g, t) = (lane / 4, lane % 4);
            a[lane][0] = h(am[g][2 * t]) | h(am[g][2 * t + 1]) << 16;
            a[lane][1] = h(am[g + 8][2 * t]) | h(am[g + 8][2 * t + 1]) << 16;
            b[lane][0] = h(bm[2 * t][g]) | h(bm[2 * t + 1][g]) << 16;
            let cv = |r: usize, col: usize| h(r as i32 - col as i32);
            c[lane][0] = cv(g, 2 * t) | cv(g, 2 * t + 1) << 16;
            c[lane][1] = cv(g + 8, 2 * t) | cv(g + 8, 2 * t + 1) << 16;
        }
        let d = mma_sync(MmaShape::M16N8K8, MmaInput::F16, MmaAcc::F16, MmaAcc::F16, &a, &b, &c);
        for lane in 0..32 {
            let (g, t) = (lane / 4, lane % 4);
            assert_eq!(d[lane][0], h(want(g, 2 * t)) | h(want(g, 2 * t + 1)) << 16);
            assert_eq!(d[lane][1], h(want(g + 8, 2 * t)) | h(want(g + 8, 2 * t + 1)) << 16);
            assert_eq!(d[lane][2], 0);
        }
        // tf32: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); b0 (t, g), b1 (t+4, g).
        // Low 13 bits set as garbage must be ignored.
        let f = |v: i32| (v as f32).to_bits() | (0x1fff * (v != 0) as u32);
        let mut a = [[0u32; 4]; 32];
        let mut b = [[0u32; 4]; 32];
        let mut c = [[0u32; 4]; 32];
        for lane in 0..32 {
            let (g, t) = (lane / 4, lane % 4);
            a[lane] = [f(am[g][t]), f(am[g + 8][t]), f(am[g][t + 4]), f(am[g + 8][t + 4])];
            b[lane][0] = f(bm[t][g]);
            b[lane][1] = f(bm[t + 4][g]);
            for i in 0..4 {
                let (r, col) = ([g, g, g + 8, g + 8][i], 2 * t + (i & 1));
                c[lane][i] = ((r as i32 - col as i32) as f32).to_bits();
            }
        }
        let d = mma_sync(MmaShape::M16N8K8, MmaInput::Tf32, MmaAcc::F32, MmaAcc::F32, &a, &b, &c);
        for lane in 0..32 {
            let (g, t) = (lane / 4, lane % 4);
            for i in 0..4 {
                let (r, col) = ([g, g, g + 8, g + 8][i], 2 * t + (i & 1));
                assert_eq!(f32::from_bits(d[lane][i]), want(r, col) as f32, "lane {lane} i {i}");
            }
        }
    }
}
