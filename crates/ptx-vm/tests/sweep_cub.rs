//! CUB block- and warp-level collectives beyond reduce/scan/radix sort (tests/cuda/sweep_cub.cu)
//! on the VM with the sanitizer on, each checked against a plain CPU computation.

// Lane- and element-indexed loops read as the kernels do.
#![allow(clippy::needless_range_loop)]

mod sweep_common;

use ptx_vm::{LaunchReport, ParamBuilder};
use sweep_common::{module, Dev, Rng};

const PTX: &str = include_str!("ptx/sweep_cub.ptx");
const BLOCK: usize = 128;
const ITEMS: usize = 4;
const TILE: usize = BLOCK * ITEMS;
const BINS: usize = 64;

#[test]
fn block_histogram_atomic_and_sort_count_every_byte() {
    let mut rng = Rng(0x4157);
    let blocks = 3;
    let input: Vec<u8> = (0..blocks * TILE).map(|_| rng.below(256) as u8).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let ip = d.upload(&input);
    let hp = d.poisoned::<u32>(blocks * 2 * BINS);
    d.launch(&md, "sweep_cub_histogram", blocks as u32, BLOCK as u32, ParamBuilder::new().ptr(ip).ptr(hp));
    let hist: Vec<u32> = d.download(hp, blocks * 2 * BINS);
    for b in 0..blocks {
        let mut want = [0u32; BINS];
        for &v in &input[b * TILE..(b + 1) * TILE] {
            want[v as usize % BINS] += 1;
        }
        assert_eq!(&hist[b * 2 * BINS..b * 2 * BINS + BINS], &want, "block {b}, BLOCK_HISTO_ATOMIC");
        assert_eq!(&hist[b * 2 * BINS + BINS..(b + 1) * 2 * BINS], &want, "block {b}, BLOCK_HISTO_SORT");
    }
}

#[test]
fn block_load_warp_transpose_exchange_and_store_round_trip() {
    let mut rng = Rng(0x10ad);
    let blocks = 2;
    let input: Vec<i32> = (0..blocks * TILE).map(|_| rng.below(2001) as i32 - 1000).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let ip = d.upload(&input);
    let op = d.poisoned::<i32>(blocks * TILE);
    d.launch(&md, "sweep_cub_load_exchange_store", blocks as u32, BLOCK as u32, ParamBuilder::new().ptr(ip).ptr(op));
    let out: Vec<i32> = d.download(op, blocks * TILE);
    for i in 0..blocks * TILE {
        assert_eq!(out[i], 2 * input[i] + (i % ITEMS) as i32, "element {i}");
    }
}

#[test]
fn block_discontinuity_flags_heads_and_tails_across_tiles() {
    let mut rng = Rng(0xd15c);
    let blocks = 3;
    let n = blocks * TILE;
    // Runs of random length so that boundaries fall inside threads, between threads and on tiles.
    let mut input = Vec::with_capacity(n);
    let mut v = 0;
    while input.len() < n {
        v += 1 + rng.below(3) as i32;
        for _ in 0..1 + rng.below(6) {
            input.push(v);
        }
    }
    input.truncate(n);
    input[TILE] = input[TILE - 1]; // a run that crosses the first tile boundary
    let mut d = Dev::new();
    let md = module(PTX);
    let ip = d.upload(&input);
    let hp = d.poisoned::<i32>(n);
    let tp = d.poisoned::<i32>(n);
    d.launch(
        &md,
        "sweep_cub_discontinuity",
        blocks as u32,
        BLOCK as u32,
        ParamBuilder::new().ptr(ip).ptr(hp).ptr(tp).i32(n as i32),
    );
    let heads: Vec<i32> = d.download(hp, n);
    let tails: Vec<i32> = d.download(tp, n);
    for i in 0..n {
        let h = i == 0 || input[i] != input[i - 1];
        let t = i == n - 1 || input[i] != input[i + 1];
        assert_eq!(heads[i], h as i32, "head flag {i}");
        assert_eq!(tails[i], t as i32, "tail flag {i}");
    }
}

/// CUB's serial merge reads the key one past the end of a merged run (the padding element of its
/// `keys_shared[ITEMS_PER_TILE + 1]`, never written), compares it, and lets a defined predicate
/// discard the comparison (`p = (j < end) && (i >= end1 || key2 < key1)`). With definedness
/// tracking (the VM's default) the discarded read is no finding at all.
fn clean_despite_discarded_pad_reads(r: &LaunchReport) {
    assert_eq!(r.assert_clean_strict(), Ok(()));
}

#[test]
fn block_merge_sort_is_stable_per_tile() {
    let mut rng = Rng(0x5027);
    let blocks = 2;
    let n = blocks * TILE;
    // Few distinct keys, so stability matters; one NaN-free negative zero among them.
    let keys: Vec<f32> = (0..n).map(|i| if i == 7 { -0.0 } else { (rng.below(40) as f32 - 20.0) * 0.5 }).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let kp = d.upload(&keys);
    let ko = d.poisoned::<f32>(n);
    let vo = d.poisoned::<i32>(n);
    let r = d
        .try_launch(
            &md,
            "sweep_cub_merge_sort",
            blocks as u32,
            BLOCK as u32,
            ParamBuilder::new().ptr(kp).ptr(ko).ptr(vo),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    clean_despite_discarded_pad_reads(&r);
    let kout: Vec<f32> = d.download(ko, n);
    let vout: Vec<i32> = d.download(vo, n);
    for b in 0..blocks {
        let mut idx: Vec<usize> = (b * TILE..(b + 1) * TILE).collect();
        idx.sort_by(|&x, &y| keys[x].partial_cmp(&keys[y]).unwrap()); // stable
        for (j, &i) in idx.iter().enumerate() {
            assert_eq!(vout[b * TILE + j], i as i32, "block {b} position {j}");
            assert_eq!(kout[b * TILE + j].to_bits(), keys[i].to_bits(), "block {b} position {j}");
        }
    }
}

#[test]
fn warp_reduce_and_scan_per_warp() {
    let mut rng = Rng(0x3a4b);
    let blocks = 2;
    let n = blocks * BLOCK;
    let warps = n / 32;
    let input: Vec<i32> = (0..n).map(|_| rng.below(2001) as i32 - 1000).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let ip = d.upload(&input);
    let (sp, mp) = (d.poisoned::<i32>(warps), d.poisoned::<i32>(warps));
    let (ip2, ep) = (d.poisoned::<i32>(n), d.poisoned::<i32>(n));
    d.launch(
        &md,
        "sweep_cub_warp",
        blocks as u32,
        BLOCK as u32,
        ParamBuilder::new().ptr(ip).ptr(sp).ptr(mp).ptr(ip2).ptr(ep),
    );
    let (sums, maxes): (Vec<i32>, Vec<i32>) = (d.download(sp, warps), d.download(mp, warps));
    let (incl, excl): (Vec<i32>, Vec<i32>) = (d.download(ip2, n), d.download(ep, n));
    for w in 0..warps {
        let x = &input[w * 32..(w + 1) * 32];
        assert_eq!(sums[w], x.iter().sum::<i32>(), "warp {w} sum");
        assert_eq!(maxes[w], *x[..20].iter().max().unwrap(), "warp {w} max of the first 20 lanes");
        let mut acc = 0;
        for l in 0..32 {
            assert_eq!(excl[w * 32 + l], acc, "warp {w} lane {l} exclusive");
            acc += x[l];
            assert_eq!(incl[w * 32 + l], acc, "warp {w} lane {l} inclusive");
        }
    }
}

#[test]
fn warp_merge_sort_sorts_each_warps_items() {
    let mut rng = Rng(0x50f7);
    let blocks = 1;
    let n = blocks * TILE;
    let input: Vec<i32> = (0..n).map(|_| rng.below(1000) as i32 - 500).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let ip = d.upload(&input);
    let op = d.poisoned::<i32>(n);
    let r = d
        .try_launch(&md, "sweep_cub_warp_merge_sort", blocks as u32, BLOCK as u32, ParamBuilder::new().ptr(ip).ptr(op))
        .unwrap_or_else(|e| panic!("{e}"));
    clean_despite_discarded_pad_reads(&r);
    let out: Vec<i32> = d.download(op, n);
    for (w, chunk) in input.chunks(32 * ITEMS).enumerate() {
        let mut want = chunk.to_vec();
        want.sort();
        assert_eq!(&out[w * 32 * ITEMS..(w + 1) * 32 * ITEMS], &want[..], "warp {w}");
    }
}

#[test]
fn block_run_length_decode_expands_runs() {
    let mut rng = Rng(0x41d);
    let vals: Vec<i32> = (0..BLOCK).map(|_| rng.below(100_000) as i32).collect();
    // CUB's decoder steps to the next run without skipping empty ones: lengths are 1..=3.
    let lens: Vec<i32> = (0..BLOCK).map(|_| 1 + rng.below(3) as i32).collect();
    let want: Vec<i32> = vals.iter().zip(&lens).flat_map(|(&v, &l)| std::iter::repeat_n(v, l as usize)).collect();
    let mut d = Dev::new();
    let md = module(PTX);
    let (vp, lp) = (d.upload(&vals), d.upload(&lens));
    let op = d.poisoned::<i32>(BLOCK * 3);
    let tp = d.poisoned::<i32>(1);
    d.launch(&md, "sweep_cub_run_length_decode", 1, BLOCK as u32, ParamBuilder::new().ptr(vp).ptr(lp).ptr(op).ptr(tp));
    let total: Vec<i32> = d.download(tp, 1);
    assert_eq!(total[0] as usize, want.len());
    let out: Vec<i32> = d.download(op, want.len());
    assert_eq!(out, want);
}
