//! Floating-point comparisons as PTX defines them, and the packed `set` forms that compare two
//! halves at once (PTX ISA 9.0, 9.7.3.x "setp", 9.7.4.x "set" for `.f16x2`/`.bf16x2`).
//!
//! The ordered comparisons (`eq ne lt le gt ge`) are false when either operand is NaN; the
//! unordered ones (`equ neu ltu leu gtu geu`) are true then; `num` tests that neither is NaN and
//! `nan` that at least one is.

/// A floating-point comparison operator of `setp`/`set`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FCmp {
    /// `.eq`
    Eq,
    /// `.ne`
    Ne,
    /// `.lt`
    Lt,
    /// `.le`
    Le,
    /// `.gt`
    Gt,
    /// `.ge`
    Ge,
    /// `.equ`
    Equ,
    /// `.neu`
    Neu,
    /// `.ltu`
    Ltu,
    /// `.leu`
    Leu,
    /// `.gtu`
    Gtu,
    /// `.geu`
    Geu,
    /// `.num`
    Num,
    /// `.nan`
    Nan,
}

impl FCmp {
    /// Every operator, in the order of [`FCmp::index`].
    pub const ALL: [FCmp; 14] = [
        FCmp::Eq,
        FCmp::Ne,
        FCmp::Lt,
        FCmp::Le,
        FCmp::Gt,
        FCmp::Ge,
        FCmp::Equ,
        FCmp::Neu,
        FCmp::Ltu,
        FCmp::Leu,
        FCmp::Gtu,
        FCmp::Geu,
        FCmp::Num,
        FCmp::Nan,
    ];

    /// The operator named by a PTX modifier (`"lt"`, `"geu"`, ...).
    pub fn parse(s: &str) -> Option<FCmp> {
        const NAMES: [&str; 14] =
            ["eq", "ne", "lt", "le", "gt", "ge", "equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan"];
        NAMES.iter().position(|&n| n == s).map(|i| FCmp::ALL[i])
    }

    /// The position of the operator in [`FCmp::ALL`].
    pub fn index(self) -> usize {
        FCmp::ALL.iter().position(|&c| c == self).unwrap_or(0)
    }

    /// The comparison of `x` with `y`.
    pub fn eval(self, x: f64, y: f64) -> bool {
        let unordered = x.is_nan() || y.is_nan();
        match self {
            FCmp::Eq => x == y,
            FCmp::Ne => x != y && !unordered,
            FCmp::Lt => x < y,
            FCmp::Le => x <= y,
            FCmp::Gt => x > y,
            FCmp::Ge => x >= y,
            FCmp::Equ => x == y || unordered,
            FCmp::Neu => x != y,
            FCmp::Ltu => x < y || unordered,
            FCmp::Leu => x <= y || unordered,
            FCmp::Gtu => x > y || unordered,
            FCmp::Geu => x >= y || unordered,
            FCmp::Num => !unordered,
            FCmp::Nan => unordered,
        }
    }
}

/// Decodes one 16-bit half of a packed operand: IEEE binary16 or, with `bf16`, bfloat16.
pub fn half_value(bits: u16, bf16: bool) -> f64 {
    if bf16 {
        half::bf16::from_bits(bits).to_f64()
    } else {
        half::f16::from_bits(bits).to_f64()
    }
}

/// `set.cmp.dtype.{f16x2,bf16x2} d, a, b`: each 16-bit half of `d` is `one` where the matching
/// halves of `a` and `b` compare true, else 0. `one` is 1.0 in the destination's format (0x3c00
/// for `.f16x2`, 0x3f80 for `.bf16x2`) or 0xffff for the integer destinations `.u32`/`.s32`.
/// With `ftz`, subnormal f16 inputs compare as zero of the same sign.
pub fn set_x2(cmp: FCmp, a: u32, b: u32, bf16: bool, ftz: bool, one: u16) -> u32 {
    let flush = |h: u16| if ftz && !bf16 && h & 0x7c00 == 0 { h & 0x8000 } else { h };
    let half = |sh: u32| {
        let x = half_value(flush((a >> sh) as u16), bf16);
        let y = half_value(flush((b >> sh) as u16), bf16);
        if cmp.eval(x, y) {
            u32::from(one) << sh
        } else {
            0
        }
    };
    half(0) | half(16)
}

/// `setp.cmp.{f16x2,bf16x2} p|q, a, b`: `(p, q)` are the comparisons of the low and the high halves.
pub fn setp_x2(cmp: FCmp, a: u32, b: u32, bf16: bool, ftz: bool) -> (bool, bool) {
    let r = set_x2(cmp, a, b, bf16, ftz, 1);
    (r & 1 != 0, r >> 16 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_F16: u16 = 0x3c00;
    const NAN_F16: u16 = 0x7e00;

    fn pack(lo: u16, hi: u16) -> u32 {
        u32::from(lo) | (u32::from(hi) << 16)
    }

    #[test]
    fn ordered_comparisons_are_false_on_nan_and_unordered_true() {
        for c in FCmp::ALL {
            let expect_unordered =
                matches!(c, FCmp::Equ | FCmp::Neu | FCmp::Ltu | FCmp::Leu | FCmp::Gtu | FCmp::Geu | FCmp::Nan);
            assert_eq!(c.eval(f64::NAN, 1.0), expect_unordered, "{c:?}");
            assert_eq!(c.eval(1.0, f64::NAN), expect_unordered, "{c:?}");
            assert_eq!(FCmp::parse(&format!("{c:?}").to_lowercase()), Some(c));
        }
        assert!(FCmp::Le.eval(-0.0, 0.0) && FCmp::Eq.eval(-0.0, 0.0) && !FCmp::Ne.eval(-0.0, 0.0));
    }

    #[test]
    fn set_f16x2_writes_one_per_true_half() {
        // Low halves 1.0 vs 2.0 (lt true), high halves 3.0 (0x4200) vs 2.0 (0x4000) (lt false).
        let a = pack(ONE_F16, 0x4200);
        let b = pack(0x4000, 0x4000);
        assert_eq!(set_x2(FCmp::Lt, a, b, false, false, ONE_F16), u32::from(ONE_F16));
        assert_eq!(set_x2(FCmp::Gt, a, b, false, false, 0xffff), 0xffff_0000);
        assert_eq!(setp_x2(FCmp::Ne, a, b, false, false), (true, true));
        // NaN in the high half: ordered false, unordered true.
        let n = pack(ONE_F16, NAN_F16);
        assert_eq!(set_x2(FCmp::Eq, n, n, false, false, ONE_F16), u32::from(ONE_F16));
        assert_eq!(set_x2(FCmp::Equ, n, n, false, false, ONE_F16), pack(ONE_F16, ONE_F16));
    }

    #[test]
    fn set_bf16x2_and_ftz() {
        // bf16 1.0 = 0x3f80, 2.0 = 0x4000.
        assert_eq!(set_x2(FCmp::Lt, pack(0x3f80, 0x4000), pack(0x4000, 0x3f80), true, false, 0x3f80), 0x3f80);
        // The smallest f16 subnormal (0x0001) equals zero only with .ftz.
        assert_eq!(set_x2(FCmp::Eq, pack(1, 0), 0, false, false, 1), 0x1_0000);
        assert_eq!(set_x2(FCmp::Eq, pack(1, 0), 0, false, true, 1), 0x1_0001);
    }
}
