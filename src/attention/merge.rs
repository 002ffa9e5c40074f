//! Merging partial attention states by their log-sum-exp (`kernels/attention/merge.cu`).

use crate::device::{kernels, Device, LaunchDims, View, ViewMut};
use crate::dtype::Float;
use crate::error::{Error, Result};

use super::params::MergeStatesParams;

/// Threads per block of the merge kernels (`kMergeThreads` in merge.cu).
const THREADS: u32 = 256;
/// Most blocks launched; the kernel loops grid-stride over the rest.
const MAX_BLOCKS: u64 = 1 << 16;

/// The shape of a merge: `tokens x heads` rows of `head_dim` elements, contiguous
/// (`[tokens, heads, head_dim]` for O, `[tokens, heads]` for the LSE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeShape {
    /// Query tokens.
    pub tokens: usize,
    /// Query heads.
    pub heads: usize,
    /// Elements per head (any value >= 1; multiples of 8 for 16-bit types and of 4 for f32 get
    /// 16-byte accesses).
    pub head_dim: usize,
}

impl MergeShape {
    /// Rows (`tokens * heads`), or the argument that overflows.
    fn rows(&self) -> Result<usize> {
        self.tokens
            .checked_mul(self.heads)
            .filter(|r| r.checked_mul(self.head_dim).is_some())
            .ok_or_else(|| Error::invalid("shape", "tokens * heads * head_dim to fit in usize", format!("{self:?}")))
    }

    /// FLOPs of one merge: a product for each part and their sum per element, plus the per-row
    /// weights (counted as 8: two exponentials, a log, a reciprocal and four arithmetic ops).
    pub fn flops(&self) -> u64 {
        let rows = (self.tokens * self.heads) as u64;
        rows * (3 * self.head_dim as u64 + 8)
    }

    /// The fewest bytes a merge must move: read both O and both LSE, write O and LSE.
    pub fn min_bytes(&self, elem_bytes: usize) -> u64 {
        let rows = (self.tokens * self.heads) as u64;
        rows * (3 * (self.head_dim * elem_bytes) as u64 + 3 * 4)
    }
}

/// Checks every length against the shape; returns the number of rows.
fn validate(shape: MergeShape, o_lens: [usize; 3], lse_lens: [usize; 2], lse_out_len: Option<usize>) -> Result<usize> {
    let rows = shape.rows()?;
    if shape.head_dim == 0 {
        return Err(Error::invalid("shape.head_dim", "at least 1", 0));
    }
    let elems = rows * shape.head_dim;
    let o_what = "tokens * heads * head_dim";
    check_len("o_a", o_lens[0], elems, o_what)?;
    check_len("o_b", o_lens[1], elems, o_what)?;
    check_len("o", o_lens[2], elems, o_what)?;
    check_len("lse_a", lse_lens[0], rows, "tokens * heads")?;
    check_len("lse_b", lse_lens[1], rows, "tokens * heads")?;
    if let Some(len) = lse_out_len {
        check_len("lse_out", len, rows, "tokens * heads")?;
    }
    Ok(rows)
}

fn check_len(name: &'static str, len: usize, want: usize, what: &str) -> Result<()> {
    if len == want {
        Ok(())
    } else {
        Err(Error::invalid(name, format!("{want} elements ({what})"), format!("{len} elements")))
    }
}

/// Merges two partial attention results over disjoint key sets into the result over their union:
/// `O = (e^lse_a O_a + e^lse_b O_b) / (e^lse_a + e^lse_b)`, `lse = ln(e^lse_a + e^lse_b)`, per row.
///
/// This is how split-KV decode and shared-prefix (cascade) attention combine their pieces. LSEs are
/// natural-log and fp32. A part with `lse = -inf` is empty: its O is never read and the other part
/// is returned bit for bit; both empty gives `O = 0`, `lse = -inf`; a NaN LSE gives NaN. `lse_out`
/// may be `None` when only O is needed. Runs in fp32 whatever `T` is.
///
/// ```
/// # fn main() -> scaling_kernels::Result<()> {
/// use half::bf16;
/// use scaling_kernels::{attention::{merge_states, MergeShape}, Device};
/// let dev = Device::default();
/// let shape = MergeShape { tokens: 4, heads: 8, head_dim: 128 };
/// let n = 4 * 8 * 128;
/// let (o_a, o_b) = (dev.upload(&vec![bf16::ONE; n])?, dev.upload(&vec![bf16::ZERO; n])?);
/// let (lse_a, lse_b) = (dev.upload(&vec![0.0f32; 32])?, dev.upload(&vec![0.0f32; 32])?);
/// let (mut o, mut lse) = (dev.alloc_zeros::<bf16>(n)?, dev.alloc_zeros::<f32>(32)?);
/// merge_states(&dev, shape, &o_a.view(), &lse_a.view(), &o_b.view(), &lse_b.view(),
///              &mut o.view_mut(), Some(&mut lse.view_mut()))?;
/// assert_eq!(dev.download(&o)?[0], bf16::from_f32(0.5));
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn merge_states<T: Float>(
    dev: &Device,
    shape: MergeShape,
    o_a: &View<'_, T>,
    lse_a: &View<'_, f32>,
    o_b: &View<'_, T>,
    lse_b: &View<'_, f32>,
    o: &mut ViewMut<'_, T>,
    lse_out: Option<&mut ViewMut<'_, f32>>,
) -> Result<()> {
    let rows = validate(
        shape,
        [o_a.len(), o_b.len(), o.len()],
        [lse_a.len(), lse_b.len()],
        lse_out.as_ref().map(|l| l.len()),
    )?;
    let elems = rows * shape.head_dim;
    let head_dim = u32::try_from(shape.head_dim)
        .map_err(|_| Error::invalid("shape.head_dim", "at most u32::MAX", shape.head_dim))?;
    if rows == 0 {
        return Ok(());
    }

    let pa = dev.ptr("o_a", o_a)?;
    let pla = dev.ptr("lse_a", lse_a)?;
    let pb = dev.ptr("o_b", o_b)?;
    let plb = dev.ptr("lse_b", lse_b)?;
    let po = dev.ptr_mut("o", o)?;
    let mut lse_out = lse_out;
    let pl = match lse_out.as_mut() {
        Some(l) => Some(dev.ptr_mut("lse_out", l)?),
        None => None,
    };

    // 16-byte accesses when every row starts 16-byte aligned in all three O tensors.
    let wide = (16 / size_of::<T>()) as u32;
    let row_bytes = shape.head_dim * size_of::<T>();
    let aligned = [pa.addr, pb.addr, po.addr].iter().all(|a| a.is_multiple_of(16)) && row_bytes.is_multiple_of(16);
    let vec = if aligned { wide } else { 1 };

    let params = MergeStatesParams {
        o_a: pa.addr,
        lse_a: pla.addr,
        o_b: pb.addr,
        lse_b: plb.addr,
        o: po.addr,
        lse: pl.as_ref().map_or(0, |p| p.addr),
        rows: rows as u64,
        head_dim,
        vec,
    };
    let chunks = (elems / vec as usize) as u64;
    let blocks = chunks.div_ceil(THREADS as u64).min(MAX_BLOCKS) as u32;
    let dims = LaunchDims { grid: [blocks, 1, 1], block: [THREADS, 1, 1], dynamic_smem: 0 };
    let kernel = format!("attention_merge_states_{}", T::NAME);
    dev.launch(&kernels::ATTENTION_MERGE, &kernel, dims, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: MergeShape = MergeShape { tokens: 3, heads: 2, head_dim: 5 };

    fn err_name(e: Error) -> &'static str {
        match e {
            Error::InvalidArgument { name, .. } => name,
            other => panic!("expected InvalidArgument, got {other}"),
        }
    }

    #[test]
    fn consistent_lengths_pass_and_give_rows() {
        assert_eq!(validate(SHAPE, [30, 30, 30], [6, 6], Some(6)), Ok(6));
        assert_eq!(validate(SHAPE, [30, 30, 30], [6, 6], None), Ok(6));
        let empty = MergeShape { tokens: 0, ..SHAPE };
        assert_eq!(validate(empty, [0, 0, 0], [0, 0], Some(0)), Ok(0));
    }

    #[test]
    fn each_wrong_length_names_its_argument() {
        assert_eq!(err_name(validate(SHAPE, [29, 30, 30], [6, 6], None).unwrap_err()), "o_a");
        assert_eq!(err_name(validate(SHAPE, [30, 31, 30], [6, 6], None).unwrap_err()), "o_b");
        assert_eq!(err_name(validate(SHAPE, [30, 30, 0], [6, 6], None).unwrap_err()), "o");
        assert_eq!(err_name(validate(SHAPE, [30, 30, 30], [5, 6], None).unwrap_err()), "lse_a");
        assert_eq!(err_name(validate(SHAPE, [30, 30, 30], [6, 7], None).unwrap_err()), "lse_b");
        assert_eq!(err_name(validate(SHAPE, [30, 30, 30], [6, 6], Some(1)).unwrap_err()), "lse_out");
    }

    #[test]
    fn zero_head_dim_and_overflow_are_rejected() {
        let e = validate(MergeShape { head_dim: 0, ..SHAPE }, [0, 0, 0], [6, 6], None).unwrap_err();
        assert_eq!(err_name(e.clone()), "shape.head_dim");
        assert_eq!(e.to_string(), "shape.head_dim: expected at least 1, got 0");
        let huge = MergeShape { tokens: usize::MAX / 2, heads: 3, head_dim: 1 };
        assert_eq!(err_name(validate(huge, [0, 0, 0], [0, 0], None).unwrap_err()), "shape");
    }

    #[test]
    fn length_error_message_says_what_was_expected() {
        let e = validate(SHAPE, [30, 30, 30], [5, 6], None).unwrap_err();
        assert_eq!(e.to_string(), "lse_a: expected 6 elements (tokens * heads), got 5 elements");
    }
}
