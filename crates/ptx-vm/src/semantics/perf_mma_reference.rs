//! The first implementation of [`mma_sync`](super::mma_sync), kept as a slow reference: it builds
//! the matrices through the general `Fmt` conversions and rounds with `f64_to_fmt`. The fast
//! implementation must give the same bits for every input, which the randomised differential tests
//! below check over every shape, input type and accumulator type, specials included.

// Lane-indexed loops mirror the ISA's per-lane formulas.
#![allow(clippy::needless_range_loop)]

use super::*;
use crate::semantics::float::{f64_to_fmt, Rnd};

fn input_value_ref(input: MmaInput, regs: &[u32; 4], i: usize) -> f64 {
    match input {
        MmaInput::Tf32 => f32::from_bits(regs[i] & 0xffff_e000) as f64,
        MmaInput::F16 | MmaInput::Bf16 => {
            let h = (regs[i / 2] >> (16 * (i % 2))) as u16;
            let fmt = if input == MmaInput::F16 { Fmt::F16 } else { Fmt::BF16 };
            fmt.to_f64(h as u64)
        }
    }
}

fn acc_value_ref(acc: MmaAcc, regs: &[u32; 4], i: usize) -> f64 {
    match acc {
        MmaAcc::F32 => f32::from_bits(regs[i]) as f64,
        MmaAcc::F16 => Fmt::F16.to_f64(((regs[i / 2] >> (16 * (i % 2))) & 0xffff) as u64),
    }
}

/// The reference: one f64 sum per element of D, in order c, then k = 0..K-1, then one rounding.
pub(super) fn mma_sync_reference(
    shape: MmaShape,
    input: MmaInput,
    ctype: MmaAcc,
    dtype: MmaAcc,
    a: &[[u32; 4]; 32],
    b: &[[u32; 4]; 32],
    c: &[[u32; 4]; 32],
) -> [[u32; 4]; 32] {
    let k = shape.k();
    let (na, nb, _) = fragment_regs(shape, input, ctype);
    let per = elements_per_reg(input);
    let mut am = [[0f64; 16]; 16];
    let mut bm = [[0f64; 8]; 16];
    let mut cm = [[0f64; 8]; 16];
    for lane in 0..32 {
        for i in 0..na * per {
            let (r, col) = a_coord(shape, input, lane, i);
            am[r][col] = input_value_ref(input, &a[lane], i);
        }
        for i in 0..nb * per {
            let (r, col) = b_coord(shape, input, lane, i);
            bm[r][col] = input_value_ref(input, &b[lane], i);
        }
        for i in 0..4 {
            let (r, col) = c_coord(lane, i);
            cm[r][col] = acc_value_ref(ctype, &c[lane], i);
        }
    }
    let mut d = [[0u32; 4]; 32];
    for (lane, dl) in d.iter_mut().enumerate() {
        for i in 0..4 {
            let (r, col) = c_coord(lane, i);
            let mut s = cm[r][col];
            for (kk, brow) in bm.iter().enumerate().take(k) {
                s += am[r][kk] * brow[col];
            }
            match dtype {
                MmaAcc::F32 => dl[i] = f64_to_fmt(s, Fmt::F32, Rnd::Rn) as u32,
                MmaAcc::F16 => {
                    let h = f64_to_fmt(s, Fmt::F16, Rnd::Rn) as u32;
                    dl[i / 2] |= h << (16 * (i % 2));
                }
            }
        }
    }
    d
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
}

/// How the elements of one operand are drawn in a trial.
#[derive(Clone, Copy, Debug)]
enum Draw {
    /// Every bit pattern alike: NaNs with any payload, infinities, subnormals, zeros of both signs.
    Bits,
    /// Magnitudes within a few binades of 1: long sums with cancellation.
    Narrow,
    /// A handful of values per trial with random signs: exact cancellation to zero and signed zeros.
    Pool,
    /// Two leading fraction bits over a spread of 25 binades: sums that land on rounding ties.
    Sparse,
    /// Any finite exponent, subnormals included: overflow and underflow of the result.
    Wide,
    /// One in three elements a special value (zeros, infinities, NaNs, extreme finite values).
    Specials,
    /// Subnormals and the smallest normals: results that underflow to subnormals or to zero.
    Tiny,
    /// Zeros of one sign per operand: signed-zero sums.
    Zeros,
}

const DRAWS: [Draw; 8] =
    [Draw::Bits, Draw::Narrow, Draw::Pool, Draw::Sparse, Draw::Wide, Draw::Specials, Draw::Tiny, Draw::Zeros];

/// Draws bit patterns of a binary format with `e` exponent and `m` fraction bits.
struct Gen {
    e: u32,
    m: u32,
    draw: Draw,
    pool: [u64; 4],
}

impl Gen {
    fn new(rng: &mut Rng, e: u32, m: u32, draw: Draw) -> Gen {
        let mut g = Gen { e, m, draw: Draw::Narrow, pool: [0; 4] };
        g.pool = std::array::from_fn(|_| g.one(rng));
        g.draw = draw;
        g
    }
    fn bias(&self) -> i64 {
        (1 << (self.e - 1)) - 1
    }
    fn emax(&self) -> i64 {
        (1 << self.e) - 1
    }
    fn pack(&self, neg: bool, exp: i64, man: u64) -> u64 {
        ((neg as u64) << (self.e + self.m)) | ((exp as u64) << self.m) | (man & ((1 << self.m) - 1))
    }
    fn one(&self, rng: &mut Rng) -> u64 {
        let neg = rng.next() & 1 == 1;
        let man = rng.next();
        let clamp = |x: i64| x.clamp(0, self.emax() - 1);
        match self.draw {
            Draw::Bits => rng.next() & (u64::MAX >> (63 - self.e - self.m)),
            Draw::Narrow => self.pack(neg, clamp(self.bias() + rng.range(-3, 3)), man),
            Draw::Pool => self.pool[rng.below(4) as usize] ^ ((neg as u64) << (self.e + self.m)),
            Draw::Sparse => {
                let top = man & 3;
                self.pack(neg, clamp(self.bias() + rng.range(-12, 12)), top << (self.m.max(2) - 2))
            }
            Draw::Wide => self.pack(neg, rng.range(0, self.emax() - 1), man),
            Draw::Tiny => self.pack(neg, rng.range(0, 2), man),
            Draw::Zeros => self.pool[0] & (1 << (self.e + self.m)),
            Draw::Specials => {
                if rng.below(3) != 0 {
                    return self.pack(neg, clamp(self.bias() + rng.range(-2, 2)), man);
                }
                let man_mask = (1u64 << self.m) - 1;
                let specials = [
                    0,                                           // zero
                    self.pack(false, self.emax(), 0),            // infinity
                    self.pack(false, self.emax(), man_mask),     // the canonical NaN
                    self.pack(false, self.emax(), 1),            // a NaN with a small payload
                    1,                                           // smallest subnormal
                    man_mask,                                    // largest subnormal
                    self.pack(false, 1, 0),                      // smallest normal
                    self.pack(false, self.emax() - 1, man_mask), // largest finite
                    self.pack(false, self.bias(), 0),            // one
                ];
                specials[rng.below(specials.len() as u64) as usize] | ((neg as u64) << (self.e + self.m))
            }
        }
    }
}

/// One lane's 32-bit registers for `input` elements: two halves per register, or one tf32 per
/// register with random bits in the 13 bits the instruction ignores.
fn input_regs(rng: &mut Rng, g: &Gen, input: MmaInput) -> [u32; 4] {
    std::array::from_fn(|_| match input {
        MmaInput::Tf32 => (g.one(rng) as u32) | (rng.next() as u32 & 0x1fff),
        MmaInput::F16 | MmaInput::Bf16 => g.one(rng) as u32 | (g.one(rng) as u32) << 16,
    })
}

const SHAPES: [MmaShape; 2] = [MmaShape::M16N8K16, MmaShape::M16N8K8];
const INPUTS: [MmaInput; 3] = [MmaInput::F16, MmaInput::Bf16, MmaInput::Tf32];
const ACCS: [MmaAcc; 2] = [MmaAcc::F32, MmaAcc::F16];

/// Every combination the public function accepts, the ones `mma` lowering refuses (tf32 at k16,
/// f16 accumulators with bf16/tf32) included: the fast path must agree on all of them.
#[test]
fn fast_mma_matches_reference_bit_for_bit_on_random_fragments() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for shape in SHAPES {
        for input in INPUTS {
            for ctype in ACCS {
                for dtype in ACCS {
                    for trial in 0..512 {
                        let (e, m) = match input {
                            MmaInput::F16 => (5, 10),
                            MmaInput::Bf16 => (8, 7),
                            // tf32 as the f32 bit pattern it lives in; its low 13 bits are noise.
                            MmaInput::Tf32 => (8, 23),
                        };
                        let ga = Gen::new(&mut rng, e, m, DRAWS[trial % 8]);
                        let gb = Gen::new(&mut rng, e, m, DRAWS[(trial / 8) % 8]);
                        let (ce, cm) = if ctype == MmaAcc::F32 { (8, 23) } else { (5, 10) };
                        let gc = Gen::new(&mut rng, ce, cm, DRAWS[(trial / 64) % 8]);
                        let a: [[u32; 4]; 32] = std::array::from_fn(|_| input_regs(&mut rng, &ga, input));
                        let b: [[u32; 4]; 32] = std::array::from_fn(|_| input_regs(&mut rng, &gb, input));
                        let c: [[u32; 4]; 32] = std::array::from_fn(|_| match ctype {
                            MmaAcc::F32 => std::array::from_fn(|_| gc.one(&mut rng) as u32),
                            MmaAcc::F16 => {
                                std::array::from_fn(|_| gc.one(&mut rng) as u32 | (gc.one(&mut rng) as u32) << 16)
                            }
                        });
                        let want = mma_sync_reference(shape, input, ctype, dtype, &a, &b, &c);
                        let got = mma_sync(shape, input, ctype, dtype, &a, &b, &c);
                        assert_eq!(
                            got, want,
                            "{shape:?} {input:?} c {ctype:?} d {dtype:?} trial {trial}\na = {a:08x?}\nb = {b:08x?}\nc = {c:08x?}"
                        );
                    }
                }
            }
        }
    }
}

/// The draws reach what they are there for: NaN, infinite, signed-zero and subnormal results.
#[test]
fn random_fragments_cover_special_results() {
    let mut rng = Rng(7);
    let (mut nan, mut inf, mut neg_zero, mut subnormal, mut exact_zero) = (0, 0, 0, 0, 0);
    for trial in 0..512 {
        let ga = Gen::new(&mut rng, 8, 7, DRAWS[trial % 8]);
        let gb = Gen::new(&mut rng, 8, 7, DRAWS[(trial / 8) % 8]);
        let gc = Gen::new(&mut rng, 8, 23, DRAWS[trial / 64]);
        let a: [[u32; 4]; 32] = std::array::from_fn(|_| input_regs(&mut rng, &ga, MmaInput::Bf16));
        let b: [[u32; 4]; 32] = std::array::from_fn(|_| input_regs(&mut rng, &gb, MmaInput::Bf16));
        let c: [[u32; 4]; 32] = std::array::from_fn(|_| std::array::from_fn(|_| gc.one(&mut rng) as u32));
        let d = mma_sync(MmaShape::M16N8K16, MmaInput::Bf16, MmaAcc::F32, MmaAcc::F32, &a, &b, &c);
        for &x in d.iter().flatten() {
            let f = f32::from_bits(x);
            nan += f.is_nan() as u32;
            inf += f.is_infinite() as u32;
            neg_zero += (x == 0x8000_0000) as u32;
            exact_zero += (x == 0) as u32;
            subnormal += f.is_subnormal() as u32;
        }
    }
    assert!(
        nan > 0 && inf > 0 && neg_zero > 0 && subnormal > 0 && exact_zero > 0,
        "{nan} {inf} {neg_zero} {subnormal} {exact_zero}"
    );
}

#[test]
fn f16_decode_is_exact_for_every_pattern() {
    for h in 0..=u16::MAX {
        let (got, want) = (f16_bits_to_f64(h), Fmt::F16.to_f64(h as u64));
        assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{h:#06x}: {got} vs {want}");
    }
}

/// f64 -> f16 and f64 -> f32 against `f64_to_fmt`: every f16 value, the midpoints between
/// neighbours and one f64 ulp either side, and random f64s over the whole range.
#[test]
fn fast_roundings_match_f64_to_fmt() {
    let check = |x: f64| {
        assert_eq!(f64_to_f16_rn(x) as u64, f64_to_fmt(x, Fmt::F16, Rnd::Rn), "f16 of {x:e} ({:#x})", x.to_bits());
        assert_eq!(f64_to_f32_rn(x) as u64, f64_to_fmt(x, Fmt::F32, Rnd::Rn), "f32 of {x:e} ({:#x})", x.to_bits());
    };
    for h in 0..0x7c00u16 {
        let (lo, hi) = (Fmt::F16.to_f64(h as u64), Fmt::F16.to_f64(h as u64 + 1));
        let mid = (lo + hi) / 2.0;
        for x in [lo, mid, f64::from_bits(mid.to_bits() - 1), f64::from_bits(mid.to_bits() + 1)] {
            check(x);
            check(-x);
        }
    }
    let mut rng = Rng(3);
    for _ in 0..200_000 {
        check(f64::from_bits(rng.next()));
        // f32 midpoints: an f32 with one more bit just below its last.
        let f = f32::from_bits(rng.next() as u32);
        if f.is_finite() {
            let mid = f as f64 + (f as f64).abs() * 2f64.powi(-24);
            check(mid);
            check(f64::from_bits(mid.to_bits() ^ 1));
        }
    }
    for x in [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -f64::NAN, 65504.0, 65519.99, 65520.0, 1e300] {
        check(x);
    }
}

/// The accumulation gives the same bits at every vector width the host may pick.
#[test]
fn accumulate_is_independent_of_vector_width() {
    let mut rng = Rng(11);
    for trial in 0..400 {
        let g = Gen::new(&mut rng, 11, 52, DRAWS[trial % 8]);
        let val = |rng: &mut Rng| {
            // Exact products of 11-bit significands, as the inputs have.
            f64::from_bits(g.one(rng) & !((1 << 42) - 1))
        };
        let am: [[f64; 16]; 16] = std::array::from_fn(|_| std::array::from_fn(|_| val(&mut rng)));
        let bm: [[f64; 8]; 16] = std::array::from_fn(|_| std::array::from_fn(|_| val(&mut rng)));
        let acc0: [[f64; 8]; 16] = std::array::from_fn(|_| std::array::from_fn(|_| val(&mut rng)));
        let k = [8, 16][trial % 2];
        let mut want = acc0;
        for r in 0..16 {
            for col in 0..8 {
                for kk in 0..k {
                    want[r][col] += am[r][kk] * bm[kk][col];
                }
            }
        }
        // NaN payloads may follow operand order, which the vectoriser may swap; D's NaN is canonical.
        let bits = |m: &[[f64; 8]; 16]| m.map(|row| row.map(|x| if x.is_nan() { 1 } else { x.to_bits() }));
        let mut two = acc0;
        accumulate::<2>(k, &mut two, &am, &bm);
        assert_eq!(bits(&two), bits(&want));
        let mut four = acc0;
        accumulate::<4>(k, &mut four, &am, &bm);
        assert_eq!(bits(&four), bits(&want));
        let mut dispatched = acc0;
        accumulate_dispatch(k, &mut dispatched, &am, &bm);
        assert_eq!(bits(&dispatched), bits(&want));
    }
}
