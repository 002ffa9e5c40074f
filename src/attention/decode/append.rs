//! Appending new K/V rows into their pages ([`append_kv`]).

use super::*;

/// Writes `n_new` new K/V rows per sequence into their pages: `k_new` / `v_new` are `[batch, n_new,
/// kv_heads, head_dim]`, and token `t` of sequence `b` goes to position `seq_lens[b] - n_new + t`
/// (`seq_lens` count the new tokens, as [`decode_attention`] takes them). The host copies are
/// validated: every length in `n_new..=pages_per_seq x page_size` and every page id the new rows
/// land in within `[0, num_pages)`; `seq_lens` / `block_table` must hold the same values (checked
/// in debug builds; on the device a row outside the table or the cache is skipped, never written).
/// The element is the cache's: `bf16` / `f16`, or `u8` for an fp8 (e4m3) cache (rows of
/// `kv_heads x head_dim` bytes, a multiple of 16).
#[allow(clippy::too_many_arguments)]
pub fn append_kv<T: crate::device::Element>(
    dev: &Device,
    layout: PagedLayout,
    k_cache: &mut ViewMut<'_, T>,
    v_cache: &mut ViewMut<'_, T>,
    (block_table, host_block_table): (&View<'_, i32>, &[i32]),
    (seq_lens, host_seq_lens): (&View<'_, i32>, &[i32]),
    k_new: &View<'_, T>,
    v_new: &View<'_, T>,
    n_new: usize,
) -> Result<()> {
    let elem = std::mem::size_of::<T>();
    if !matches!(elem, 1 | 2) || !(layout.kv_heads * layout.head_dim * elem).is_multiple_of(16) {
        return Err(Error::invalid(
            "k_cache",
            "2-byte elements (bf16, f16) or bytes (u8: fp8) with kv_heads x head_dim x size a multiple of 16 bytes",
            format!("{elem}-byte elements, {} per row", layout.kv_heads * layout.head_dim),
        ));
    }
    layout.validate()?;
    let batch = host_seq_lens.len();
    if batch > i32::MAX as usize / MAX_Q_LEN.max(1) {
        return Err(Error::invalid("host_seq_lens", "fewer sequences", batch));
    }
    check_lens("host_seq_lens", host_seq_lens, batch, &layout)?;
    if n_new == 0 || n_new > (layout.pages_per_seq * layout.page_size) {
        return Err(Error::invalid("n_new", "at least 1 and at most the table's keys per row", n_new));
    }
    if let Some((b, &l)) = host_seq_lens.iter().enumerate().find(|(_, &l)| (l as usize) < n_new) {
        return Err(Error::invalid(
            "host_seq_lens",
            format!("lengths >= n_new ({n_new}), the new tokens included"),
            format!("[{b}] = {l}"),
        ));
    }
    check_table("host_block_table", host_block_table, host_seq_lens, &layout)?;
    let row = layout.kv_heads * layout.head_dim;
    check_len("k_new", k_new.len(), batch * n_new * row, "batch x n_new x kv_heads x head_dim")?;
    check_len("v_new", v_new.len(), batch * n_new * row, "batch x n_new x kv_heads x head_dim")?;
    check_len("k_cache", k_cache.len(), layout.cache_len(), "num_pages x page_size x kv_heads x head_dim")?;
    check_len("v_cache", v_cache.len(), layout.cache_len(), "num_pages x page_size x kv_heads x head_dim")?;
    check_len("block_table", block_table.len(), batch * layout.pages_per_seq, "batch x pages_per_seq")?;
    check_len("seq_lens", seq_lens.len(), batch, "one per sequence")?;
    debug_same(dev, "block_table", block_table, host_block_table)?;
    debug_same(dev, "seq_lens", seq_lens, host_seq_lens)?;
    if batch == 0 {
        return Ok(());
    }
    let row_chunks = row * elem / 16;
    let chunks = batch * n_new * row_chunks;
    let pkn = dev.ptr("k_new", k_new)?;
    let pvn = dev.ptr("v_new", v_new)?;
    let pt = dev.ptr("block_table", block_table)?;
    let pl = dev.ptr("seq_lens", seq_lens)?;
    let pk = dev.ptr_mut("k_cache", k_cache)?;
    let pv = dev.ptr_mut("v_cache", v_cache)?;
    for (name, addr) in [("k_new", pkn.addr), ("v_new", pvn.addr), ("k_cache", pk.addr), ("v_cache", pv.addr)] {
        aligned(name, addr)?;
    }
    let params = DecodeAppendParams {
        k_new: pkn.addr,
        v_new: pvn.addr,
        k_cache: pk.addr,
        v_cache: pv.addr,
        block_table: pt.addr,
        seq_lens: pl.addr,
        pages_per_seq: layout.pages_per_seq as i64,
        chunks: chunks as i64,
        row_chunks: row_chunks as i32,
        num_pages: layout.num_pages as i32,
        page_shift: layout.page_size.trailing_zeros() as i32,
        n_new: n_new as i32,
    };
    let blocks = chunks.div_ceil(256);
    if blocks > i32::MAX as usize {
        return Err(Error::invalid("k_new", "fewer rows", chunks));
    }
    let dims = LaunchDims { grid: [blocks as u32, 1, 1], block: [256, 1, 1], dynamic_smem: 0 };
    dev.launch(&kernels::ATTENTION_DECODE, "decode_append", dims, &params)
}
