//! Decode attention over a paged KV cache against the float64 reference, on every backend.
//!
//! Each case builds a cache whose pages sit in random, non-contiguous order (every page, used or
//! not, holds random values), writes the step's new K/V rows with `append_kv`, poisons the outputs,
//! runs the decode (splits forced to 1, to many, or planned) and compares every element with
//! `reference::decode` (which gathers keys through the block table one by one). Error rule as
//! attention forward: max |out - ref| <= 2 x the naive same-precision error + 1e-4; LSE within 1e-4
//! relative; -inf where a row sees nothing. The VM's sanitizer fails any launch with a finding.
//!
//! The matrix covers every listed value at least once (page sizes 1/16/256 and 8/32 too; contexts
//! 1, 15, 16, 17, 1000, 4099; q_len 1, 3 and 8; GQA 1, 4, 8 and 16; d 64, 128, 256 and 80), each
//! option, cascades with n = 1, 4, 16 and suffix lengths including 0, plus the counters.

mod common;

use common::{backends, max_abs_err, rng, POISON};
use half::{bf16, f16};
use rand::seq::SliceRandom;
use rand::Rng;
use scaling_kernels::attention::{
    append_kv, cascade_attention, cascade_prefix_pass, decode_attention, decode_kv_bytes, CascadePlan, DecodeOptions,
    DecodePlan, DecodeShape, PagedLayout,
};
use scaling_kernels::reference::decode::{decode_attention as reference, gather_rows, DecodeSpec};
use scaling_kernels::{Device, Error, Float};

#[derive(Debug, Clone)]
struct Case {
    page_size: usize,
    lens: Vec<usize>,
    q_len: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
    /// `None`: planned for the device's SMs; `Some(n)`: forced to at most n.
    splits: Option<usize>,
    causal: bool,
    window_left: i32,
    softcap: f32,
    alibi: bool,
    sinks: bool,
}

impl Case {
    fn new(page_size: usize, lens: &[usize], q_len: usize, heads: usize, kv_heads: usize, d: usize) -> Case {
        Case {
            page_size,
            lens: lens.to_vec(),
            q_len,
            heads,
            kv_heads,
            d,
            splits: Some(1),
            causal: true,
            window_left: -1,
            softcap: 0.0,
            alibi: false,
            sinks: false,
        }
    }
    fn splits(mut self, s: Option<usize>) -> Self {
        self.splits = s;
        self
    }
}

/// A cache with `need[b]` pages per block-table row, placed at random page ids (plus spares).
struct Pages {
    layout: PagedLayout,
    table: Vec<i32>,
}

fn pages(rng: &mut impl Rng, lens: &[usize], page_size: usize, kv_heads: usize, d: usize) -> Pages {
    let need: Vec<usize> = lens.iter().map(|&l| l.div_ceil(page_size)).collect();
    let total: usize = need.iter().sum();
    let num_pages = total + 3;
    let mut ids: Vec<i32> = (0..num_pages as i32).collect();
    ids.shuffle(rng);
    let pages_per_seq = need.iter().copied().max().unwrap_or(0) + 1;
    // Unused entries hold ids no length reaches; the kernel must never read them.
    let mut table = vec![-1; lens.len() * pages_per_seq];
    let mut next = ids.into_iter();
    for (b, &n) in need.iter().enumerate() {
        for p in 0..n {
            table[b * pages_per_seq + p] = next.next().unwrap();
        }
    }
    Pages { layout: PagedLayout { num_pages, page_size, kv_heads, head_dim: d, pages_per_seq }, table }
}

fn gen<T: Float>(rng: &mut impl Rng, n: usize) -> Vec<T> {
    (0..n).map(|_| T::from_f64(rng.random_range(-1.5..1.5))).collect()
}

fn widen<T: Float>(x: &[T]) -> Vec<f64> {
    x.iter().map(|e| e.to_f64()).collect()
}

fn spec(c: &Case, q_len: usize) -> DecodeSpec {
    DecodeSpec {
        heads: c.heads,
        kv_heads: c.kv_heads,
        head_dim: c.d,
        q_len,
        causal: c.causal,
        window_left: c.window_left as i64,
        softcap: c.softcap as f64,
        scale: 1.0 / (c.d as f64).sqrt(),
        alibi_slopes: c.alibi.then(|| slopes(c.heads).iter().map(|&s| s as f64).collect()),
        sinks: c.sinks.then(|| sinks(c.heads).iter().map(|&s| s as f64).collect()),
    }
}

fn slopes(h: usize) -> Vec<f32> {
    (0..h).map(|i| 0.5f32.powi(i as i32 % 6 + 1)).collect()
}
fn sinks(h: usize) -> Vec<f32> {
    (0..h).map(|i| i as f32 * 0.7 - 0.5).collect()
}

/// Compares out and lse with the reference; `want`/`naive` are the reference at f64 and rounded.
fn check<T: Float>(what: &str, got: &[T], got_lse: &[f32], want: &(Vec<f64>, Vec<f64>), naive: &[f64]) {
    let got = widen(got);
    let err = max_abs_err(&got, &want.0);
    let naive_err = max_abs_err(naive, &want.0);
    eprintln!("{what}: max err {err:.2e}, naive {naive_err:.2e}");
    assert!(err <= 2.0 * naive_err + 1e-4, "{what}: max |out - ref| = {err:e} > 2 x naive {naive_err:e} + 1e-4");
    for (i, (&g, &w)) in got_lse.iter().zip(&want.1).enumerate() {
        let g = g as f64;
        let ok = if w == f64::NEG_INFINITY { g == f64::NEG_INFINITY } else { (g - w).abs() / w.abs().max(1.0) <= 1e-4 };
        assert!(ok, "{what}: lse[{i}] = {g}, want {w}");
    }
}

/// Options with the case's flags, the device views they need, and the lse output.
fn run<T: Float>(dev: &Device, rng: &mut impl Rng, c: &Case) {
    let (batch, ql, h, kvh, d) = (c.lens.len(), c.q_len, c.heads, c.kv_heads, c.d);
    let pg = pages(rng, &c.lens, c.page_size, kvh, d);
    let layout = pg.layout;
    let lens: Vec<i32> = c.lens.iter().map(|&l| l as i32).collect();
    let mut k_host: Vec<T> = gen(rng, layout.cache_len());
    let mut v_host: Vec<T> = gen(rng, layout.cache_len());
    let mut k_cache = dev.upload(&k_host).unwrap();
    let mut v_cache = dev.upload(&v_host).unwrap();
    let table = dev.upload(&pg.table).unwrap();
    let lens_dev = dev.upload(&lens).unwrap();
    // The new tokens (those of the last q_len positions that exist) go in with append_kv.
    let n_new = c.lens.iter().copied().min().unwrap_or(0).min(ql);
    if n_new > 0 {
        let k_new: Vec<T> = gen(rng, batch * n_new * kvh * d);
        let v_new: Vec<T> = gen(rng, batch * n_new * kvh * d);
        let (kn, vn) = (dev.upload(&k_new).unwrap(), dev.upload(&v_new).unwrap());
        append_kv(
            dev,
            layout,
            &mut k_cache.view_mut(),
            &mut v_cache.view_mut(),
            (&table.view(), &pg.table),
            (&lens_dev.view(), &lens),
            &kn.view(),
            &vn.view(),
            n_new,
        )
        .unwrap();
        let row = kvh * d;
        for b in 0..batch {
            let rows = gather_rows(&pg.table[b * layout.pages_per_seq..], c.lens[b], c.page_size);
            for t in 0..n_new {
                let r = rows[c.lens[b] - n_new + t];
                k_host[r * row..][..row].copy_from_slice(&k_new[(b * n_new + t) * row..][..row]);
                v_host[r * row..][..row].copy_from_slice(&v_new[(b * n_new + t) * row..][..row]);
            }
        }
        assert_eq!(dev.download(&k_cache).unwrap(), k_host, "append_kv: K cache");
        assert_eq!(dev.download(&v_cache).unwrap(), v_host, "append_kv: V cache");
    }
    let q: Vec<T> = gen(rng, batch * ql * h * d);
    let rows: Vec<Vec<usize>> =
        (0..batch).map(|b| gather_rows(&pg.table[b * layout.pages_per_seq..], c.lens[b], c.page_size)).collect();
    let sp = spec(c, ql);
    let (qf, kf, vf) = (widen(&q), widen(&k_host), widen(&v_host));
    let want = reference(&qf, &kf, &vf, &rows, &sp, &|x| x);
    let (naive, _) = reference(&qf, &kf, &vf, &rows, &sp, &|x| T::from_f64(x).to_f64());

    let shape = DecodeShape { batch, q_len: ql, heads: h };
    let plan = match c.splits {
        Some(s) => DecodePlan::with_splits(shape, layout, &lens, s).unwrap(),
        None => DecodePlan::new(dev.sm_count(), shape, layout, &lens).unwrap(),
    };
    let q_dev = dev.upload(&q).unwrap();
    let mut out = dev.alloc_zeros::<T>(q.len()).unwrap();
    dev.fill_poison(&mut out.view_mut()).unwrap();
    let mut lse = dev.alloc_zeros::<f32>(batch * ql * h).unwrap();
    dev.fill_bytes(&mut lse.view_mut(), POISON).unwrap();
    let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len().max(1)).unwrap();
    dev.fill_poison(&mut ws.view_mut()).unwrap();
    let (sl, sk) = (dev.upload(&slopes(h)).unwrap(), dev.upload(&sinks(h)).unwrap());
    let mut opts =
        DecodeOptions::default().causal(c.causal).window_left(c.window_left).softcap(c.softcap).lse(lse.view_mut());
    if c.alibi {
        opts = opts.alibi_slopes(sl.view());
    }
    if c.sinks {
        opts = opts.sinks(sk.view());
    }
    decode_attention(
        dev,
        &plan,
        &q_dev.view(),
        &k_cache.view(),
        &v_cache.view(),
        &table.view(),
        &lens_dev.view(),
        Some(&pg.table),
        &mut out.view_mut(),
        Some(&mut ws.view_mut()),
        opts,
    )
    .unwrap();
    let what = format!("{} {c:?} splits {}", T::NAME, plan.splits());
    check::<T>(&what, &dev.download(&out).unwrap(), &dev.download(&lse).unwrap(), &want, &naive);
}

fn each_backend(name: &str, cases: &[Case]) {
    let mut r = rng(name);
    for dev in backends() {
        for (i, c) in cases.iter().enumerate() {
            if i % 2 == 0 {
                run::<bf16>(&dev, &mut r, c);
            } else {
                run::<f16>(&dev, &mut r, c);
            }
        }
    }
}

#[test]
fn contexts_page_sizes_and_gqa_with_one_split() {
    each_backend(
        "contexts_page_sizes_and_gqa_with_one_split",
        &[
            Case::new(16, &[1, 15, 16, 17], 1, 4, 4, 64),
            Case::new(1, &[17, 1000], 3, 8, 2, 128),
            Case::new(256, &[15, 16, 4099], 1, 8, 1, 64),
            Case::new(256, &[3, 16], 3, 16, 2, 64),
        ],
    );
}

#[test]
fn split_kv_forced_many_and_planned() {
    each_backend(
        "split_kv_forced_many_and_planned",
        &[
            Case::new(16, &[4099, 17], 1, 8, 1, 128).splits(Some(40)),
            Case::new(1, &[1000, 1], 3, 4, 1, 64).splits(Some(7)),
            Case::new(256, &[1000], 1, 8, 2, 128).splits(None),
        ],
    );
}

#[test]
fn other_head_dims_page_sizes_and_many_rows() {
    each_backend(
        "other_head_dims_page_sizes_and_many_rows",
        &[
            Case::new(8, &[33, 70], 2, 4, 2, 256),
            Case::new(32, &[50], 2, 2, 1, 80).splits(Some(2)),
            // 8 tokens x 16 heads per kv head: 128 rows, two row tiles.
            Case::new(64, &[100], 8, 32, 2, 64).splits(Some(2)),
        ],
    );
}

#[test]
fn options_softcap_window_alibi_sinks_and_masked_rows() {
    let base = Case::new(16, &[1000, 2], 3, 8, 2, 64);
    each_backend(
        "options_softcap_window_alibi_sinks_and_masked_rows",
        &[
            Case { softcap: 30.0, ..base.clone() },
            Case { window_left: 40, splits: Some(6), ..base.clone() },
            Case { alibi: true, ..base.clone() },
            Case { sinks: true, splits: Some(5), ..base.clone() },
            Case { causal: false, ..base.clone() },
            Case { softcap: 20.0, window_left: 100, alibi: true, sinks: true, splits: Some(3), ..base.clone() },
        ],
    );
}

/// Cascade: `groups` prompts of `prefix` keys shared by `n` samples with their own suffixes.
#[allow(clippy::too_many_arguments)]
fn run_cascade<T: Float>(
    dev: &Device,
    rng: &mut impl Rng,
    c: &Case,
    prefix: &[usize],
    n: usize,
    suffix: &[usize],
    splits: (usize, usize),
    counters: bool,
) {
    let (groups, ql, h, kvh, d) = (prefix.len(), c.q_len, c.heads, c.kv_heads, c.d);
    let batch = groups * n;
    assert_eq!(suffix.len(), batch);
    // One cache for both: the prefix rows first, then the suffix rows.
    let mut all = prefix.to_vec();
    all.extend_from_slice(suffix);
    let pg = pages(rng, &all, c.page_size, kvh, d);
    let pps = pg.layout.pages_per_seq;
    let p_table: Vec<i32> = pg.table[..groups * pps].to_vec();
    let s_table: Vec<i32> = pg.table[groups * pps..].to_vec();
    let layout = pg.layout;
    let k_host: Vec<T> = gen(rng, layout.cache_len());
    let v_host: Vec<T> = gen(rng, layout.cache_len());
    let q: Vec<T> = gen(rng, batch * ql * h * d);
    let rows: Vec<Vec<usize>> = (0..batch)
        .map(|b| {
            let mut r = gather_rows(&p_table[(b / n) * pps..], prefix[b / n], c.page_size);
            r.extend(gather_rows(&s_table[b * pps..], suffix[b], c.page_size));
            r
        })
        .collect();
    let sp = spec(c, ql);
    let (qf, kf, vf) = (widen(&q), widen(&k_host), widen(&v_host));
    let want = reference(&qf, &kf, &vf, &rows, &sp, &|x| x);
    let (naive, _) = reference(&qf, &kf, &vf, &rows, &sp, &|x| T::from_f64(x).to_f64());

    let plens: Vec<i32> = prefix.iter().map(|&l| l as i32).collect();
    let slens: Vec<i32> = suffix.iter().map(|&l| l as i32).collect();
    let shape = DecodeShape { batch, q_len: ql, heads: h };
    let plan = CascadePlan::new(dev.sm_count(), shape, n, layout, &plens, layout, &slens, Some(splits)).unwrap();
    let (k_cache, v_cache) = (dev.upload(&k_host).unwrap(), dev.upload(&v_host).unwrap());
    let (pt, pl) = (dev.upload(&p_table).unwrap(), dev.upload(&plens).unwrap());
    let (st, sl) = (dev.upload(&s_table).unwrap(), dev.upload(&slens).unwrap());
    let q_dev = dev.upload(&q).unwrap();
    let mut out = dev.alloc_zeros::<T>(q.len()).unwrap();
    dev.fill_poison(&mut out.view_mut()).unwrap();
    let mut lse = dev.alloc_zeros::<f32>(batch * ql * h).unwrap();
    dev.fill_bytes(&mut lse.view_mut(), POISON).unwrap();
    let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len()).unwrap();
    dev.fill_poison(&mut ws.view_mut()).unwrap();
    let sinks_dev = dev.upload(&sinks(h)).unwrap();
    let slopes_dev = dev.upload(&slopes(h)).unwrap();
    let opts = || {
        let mut o = DecodeOptions::default().causal(c.causal).window_left(c.window_left).softcap(c.softcap);
        if c.sinks {
            o = o.sinks(sinks_dev.view());
        }
        if c.alibi {
            o = o.alibi_slopes(slopes_dev.view());
        }
        o
    };
    if counters {
        // The prefix pass alone: its K/V requests against the prefix's bytes once per group.
        cascade_prefix_pass(
            dev,
            &plan,
            &q_dev.view(),
            &k_cache.view(),
            &v_cache.view(),
            (&pt.view(), &pl.view(), Some(&p_table)),
            (&st.view(), &sl.view(), Some(&s_table)),
            &mut ws.view_mut(),
            opts(),
        )
        .unwrap();
        let r = dev.vm_last_launch().unwrap().counters.unwrap();
        let once = decode_kv_bytes(&layout, &plens, 2);
        let per_sample = once * n as u64;
        let q_bytes = (q.len() * 2) as u64;
        let kv = r.global_load_bytes.saturating_sub(q_bytes);
        eprintln!(
            "cascade n={n}: prefix pass requested {kv} K/V bytes (+{q_bytes} q), unique read {}; prefix once per group = {once}, once per sample = {per_sample}",
            r.unique_bytes_read
        );
        assert!((kv as f64) <= 1.05 * (once as f64), "prefix read {kv} > 1.05 x {once}");
    }
    let what = format!("cascade {} n={n} prefix {prefix:?} suffix {suffix:?} splits {:?}", T::NAME, plan.splits());
    cascade_attention(
        dev,
        &plan,
        &q_dev.view(),
        &k_cache.view(),
        &v_cache.view(),
        (&pt.view(), &pl.view(), Some(&p_table)),
        (&st.view(), &sl.view(), Some(&s_table)),
        &mut out.view_mut(),
        &mut ws.view_mut(),
        opts().lse(lse.view_mut()),
    )
    .unwrap();
    check::<T>(&what, &dev.download(&out).unwrap(), &dev.download(&lse).unwrap(), &want, &naive);
}

#[test]
fn cascade_equals_attention_over_prefix_and_suffix() {
    let mut r = rng("cascade_equals_attention_over_prefix_and_suffix");
    for dev in backends() {
        let c = Case::new(16, &[], 1, 4, 1, 64);
        run_cascade::<bf16>(&dev, &mut r, &c, &[300, 17], 1, &[0, 5], (1, 1), false);
        let c3 = Case { q_len: 3, sinks: true, ..Case::new(1, &[], 3, 4, 2, 128) };
        run_cascade::<f16>(&dev, &mut r, &c3, &[100], 4, &[0, 3, 40, 2], (3, 2), false);
        let cw = Case { window_left: 50, alibi: true, softcap: 25.0, ..Case::new(256, &[], 2, 2, 1, 64) };
        run_cascade::<bf16>(&dev, &mut r, &cw, &[200, 64], 4, &[2, 9, 0, 70, 3, 2, 100, 5], (4, 1), false);
        let c16 = Case::new(16, &[], 1, 4, 1, 64);
        let suffix: Vec<usize> = (0..16).map(|i| [0, 1, 7, 33][i % 4]).collect();
        run_cascade::<f16>(&dev, &mut r, &c16, &[1000], 16, &suffix, (1, 1), dev.is_vm());
    }
}

#[test]
fn kv_bytes_are_read_once_per_kv_head() {
    // GQA 8, q_len 1: the 8 heads of a kv head are rows of one tile, so each K/V byte is requested
    // once per kv head, not once per query head.
    let dev = Device::vm();
    let mut r = rng("kv_bytes_are_read_once_per_kv_head");
    let c = Case::new(16, &[4099], 1, 16, 2, 128);
    let pg = pages(&mut r, &c.lens, c.page_size, c.kv_heads, c.d);
    let layout = pg.layout;
    let lens = [4099i32];
    let (k, v): (Vec<bf16>, Vec<bf16>) = (gen(&mut r, layout.cache_len()), gen(&mut r, layout.cache_len()));
    let q: Vec<bf16> = gen(&mut r, c.heads * c.d);
    let (kc, vc) = (dev.upload(&k).unwrap(), dev.upload(&v).unwrap());
    let (table, lens_dev, q_dev) =
        (dev.upload(&pg.table).unwrap(), dev.upload(&lens).unwrap(), dev.upload(&q).unwrap());
    let shape = DecodeShape { batch: 1, q_len: 1, heads: c.heads };
    for plan in [
        DecodePlan::with_splits(shape, layout, &lens, 1).unwrap(),
        DecodePlan::new(dev.sm_count(), shape, layout, &lens).unwrap(),
    ] {
        let mut out = dev.alloc_zeros::<bf16>(q.len()).unwrap();
        let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len().max(1)).unwrap();
        decode_attention(
            &dev,
            &plan,
            &q_dev.view(),
            &kc.view(),
            &vc.view(),
            &table.view(),
            &lens_dev.view(),
            None,
            &mut out.view_mut(),
            Some(&mut ws.view_mut()),
            DecodeOptions::default(),
        )
        .unwrap();
        if plan.splits() > 1 {
            // The last launch is the merge: the counters are the single-split run's; the planned
            // run must still fill the VM's 108 SMs (2 kv heads: >= 54 splits, or every tile).
            assert!(plan.splits() >= 54.min(4099usize.div_ceil(64)), "{plan:?}");
            continue;
        }
        let r = dev.vm_last_launch().unwrap().counters.unwrap();
        let floor = decode_kv_bytes(&layout, &lens, 2);
        let q_bytes = (q.len() * 2) as u64;
        let kv_req = r.global_load_bytes - q_bytes;
        eprintln!(
            "decode b1 h16 kvh2 d128 ctx4099: requested K/V {kv_req} B, unique read {} B, floor (once per kv head) {floor} B, per q head {} B; {} warp instructions, {} mma FLOPs",
            r.unique_bytes_read,
            floor * 8,
            r.warp_instructions(),
            r.mma_flops
        );
        assert!(kv_req as f64 <= 1.05 * floor as f64, "{kv_req} > 1.05 x {floor}");
        assert!(r.unique_bytes_read as f64 <= 1.05 * (floor + q_bytes) as f64);
    }
    // The same step over an fp8 cache reads half the bytes.
    let bytes: Vec<u8> = (0..2 * layout.cache_len()).map(|i| (i * 37 % 120) as u8).collect();
    let (kc8, vc8) =
        (dev.upload(&bytes[..layout.cache_len()]).unwrap(), dev.upload(&bytes[layout.cache_len()..]).unwrap());
    let scales = dev.upload(&[0.01f32; 2]).unwrap();
    let plan = DecodePlan::with_splits(shape, layout, &lens, 1).unwrap();
    let mut out = dev.alloc_zeros::<bf16>(q.len()).unwrap();
    scaling_kernels::attention::decode_attention_fp8(
        &dev,
        &plan,
        &q_dev.view(),
        &kc8.view(),
        &vc8.view(),
        (&scales.view(), &scales.view()),
        &table.view(),
        &lens_dev.view(),
        None,
        &mut out.view_mut(),
        None,
        DecodeOptions::default(),
    )
    .unwrap();
    let r = dev.vm_last_launch().unwrap().counters.unwrap();
    let floor8 = decode_kv_bytes(&layout, &lens, 1);
    let kv_req = r.global_load_bytes - (q.len() * 2) as u64 - 8;
    eprintln!(
        "fp8: requested K/V {kv_req} B (16-bit floor {}), unique read {} B; {} warp instructions",
        2 * floor8,
        r.unique_bytes_read,
        r.warp_instructions()
    );
    assert!(kv_req as f64 <= 1.05 * floor8 as f64, "fp8: {kv_req} > 1.05 x {floor8}");
}

#[test]
fn bad_arguments_are_typed_errors() {
    let dev = Device::vm();
    let layout = PagedLayout { num_pages: 4, page_size: 16, kv_heads: 1, head_dim: 64, pages_per_seq: 2 };
    let shape = DecodeShape { batch: 2, q_len: 1, heads: 2 };
    let name = |r: Result<DecodePlan, Error>| match r {
        Err(Error::InvalidArgument { name, .. }) => name,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    assert_eq!(name(DecodePlan::new(108, shape, PagedLayout { page_size: 12, ..layout }, &[1, 1])), "layout.page_size");
    assert_eq!(name(DecodePlan::new(108, shape, layout, &[1, 33])), "host_seq_lens");
    assert_eq!(name(DecodePlan::new(108, shape, layout, &[1, -1])), "host_seq_lens");
    assert_eq!(name(DecodePlan::new(108, shape, layout, &[1])), "host_seq_lens");
    assert_eq!(name(DecodePlan::new(108, DecodeShape { q_len: 9, ..shape }, layout, &[1, 1])), "shape.q_len");
    assert_eq!(name(DecodePlan::new(108, DecodeShape { q_len: 0, ..shape }, layout, &[1, 1])), "shape.q_len");
    assert_eq!(
        name(DecodePlan::new(108, DecodeShape { heads: 3, ..shape }, PagedLayout { kv_heads: 2, ..layout }, &[1, 1])),
        "shape.heads"
    );
    assert_eq!(name(DecodePlan::new(108, shape, PagedLayout { head_dim: 60, ..layout }, &[1, 1])), "layout.head_dim");

    let layout = PagedLayout { num_pages: 10, pages_per_seq: 8, ..layout };
    let lens = [100i32, 3];
    let plan = DecodePlan::with_splits(shape, layout, &lens, 1).unwrap();
    let kv = dev.alloc_zeros::<bf16>(layout.cache_len()).unwrap();
    let short = dev.alloc_zeros::<bf16>(layout.cache_len() - 8).unwrap();
    let q = dev.alloc_zeros::<bf16>(2 * 2 * 64).unwrap();
    let good_table = [0i32, 1, 2, 3, 4, 5, 6, -1, 7, -1, -1, -1, -1, -1, -1, -1];
    let with = |i: usize, v: i32| {
        let mut t = good_table.to_vec();
        t[i] = v;
        t
    };
    let table = dev.upload(&good_table).unwrap();
    let lens_dev = dev.upload(&lens).unwrap();
    let mut out = dev.alloc_zeros::<bf16>(2 * 2 * 64).unwrap();
    let call = |host: Option<&[i32]>,
                k: &scaling_kernels::device::View<'_, bf16>,
                out: &mut scaling_kernels::device::ViewMut<'_, bf16>,
                ws: Option<&mut scaling_kernels::device::ViewMut<'_, f32>>,
                plan: &DecodePlan| {
        decode_attention(
            &dev,
            plan,
            &q.view(),
            k,
            &kv.view(),
            &table.view(),
            &lens_dev.view(),
            host,
            out,
            ws,
            DecodeOptions::default(),
        )
    };
    let err = |r: Result<(), Error>| match r {
        Err(Error::InvalidArgument { name, .. }) => name,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    assert_eq!(err(call(Some(&with(6, 10)), &kv.view(), &mut out.view_mut(), None, &plan)), "host_block_table");
    assert_eq!(err(call(Some(&with(8, -2)), &kv.view(), &mut out.view_mut(), None, &plan)), "host_block_table");
    assert_eq!(err(call(Some(&good_table[..15]), &kv.view(), &mut out.view_mut(), None, &plan)), "host_block_table");
    assert_eq!(err(call(Some(&good_table), &short.view(), &mut out.view_mut(), None, &plan)), "k_cache");
    let mut short_out = dev.alloc_zeros::<bf16>(100).unwrap();
    assert_eq!(err(call(None, &kv.view(), &mut short_out.view_mut(), None, &plan)), "out");
    let split = DecodePlan::with_splits(shape, layout, &lens, 4).unwrap();
    assert!(split.splits() > 1);
    let mut small_ws = dev.alloc_zeros::<f32>(split.workspace_len() - 1).unwrap();
    assert_eq!(err(call(None, &kv.view(), &mut out.view_mut(), Some(&mut small_ws.view_mut()), &split)), "workspace");
    assert_eq!(err(call(None, &kv.view(), &mut out.view_mut(), None, &split)), "workspace");
    // dtype: f32 has no decode kernel.
    let qf = dev.alloc_zeros::<f32>(4).unwrap();
    let mut of = dev.alloc_zeros::<f32>(4).unwrap();
    let tf = dev.upload(&good_table).unwrap();
    let r = decode_attention(
        &dev,
        &plan,
        &qf.view(),
        &qf.view(),
        &qf.view(),
        &tf.view(),
        &lens_dev.view(),
        None,
        &mut of.view_mut(),
        None,
        DecodeOptions::default(),
    );
    assert_eq!(err(r), "q");
    // append: a length past the table's pages, a page id out of range, n_new too large.
    let (mut kc, mut vc) =
        (dev.alloc_zeros::<bf16>(layout.cache_len()).unwrap(), dev.alloc_zeros::<bf16>(layout.cache_len()).unwrap());
    let new = dev.alloc_zeros::<bf16>(2 * 64).unwrap();
    let mut append = |host_table: &[i32], host_lens: &[i32], n_new: usize| {
        let t = dev.upload(host_table).unwrap();
        let l = dev.upload(host_lens).unwrap();
        append_kv(
            &dev,
            layout,
            &mut kc.view_mut(),
            &mut vc.view_mut(),
            (&t.view(), host_table),
            (&l.view(), host_lens),
            &new.view(),
            &new.view(),
            n_new,
        )
    };
    assert_eq!(err(append(&good_table, &[129, 3], 1)), "host_seq_lens");
    assert_eq!(err(append(&with(3, 10), &[100, 3], 1)), "host_block_table");
    assert_eq!(err(append(&good_table, &[100, 3], 4)), "host_seq_lens");
    assert!(append(&good_table, &[100, 3], 1).is_ok());
}

#[test]
fn fp8_cache_dequantised_with_per_head_scales() {
    use scaling_kernels::attention::decode_attention_fp8;
    use scaling_kernels::reference::decode::e4m3_to_f64;
    let mut r = rng("fp8_cache_dequantised_with_per_head_scales");
    for dev in backends() {
        // d 64 (on the 128 instantiation) and 256; GQA 4 and 1; one split and several; softcap + ALiBi.
        for (i, (ps, lens, ql, h, kvh, d, splits, extras)) in [
            (16usize, vec![1000usize, 17], 3usize, 8usize, 2usize, 64usize, 1usize, false),
            (1, vec![70], 1, 2, 2, 256, 3, true),
            (256, vec![4099], 1, 4, 1, 128, 8, false),
        ]
        .into_iter()
        .enumerate()
        {
            let pg = pages(&mut r, &lens, ps, kvh, d);
            let layout = pg.layout;
            let lens_i: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
            let byte = |r: &mut rand::rngs::StdRng| loop {
                let b: u8 = r.random();
                if b & 0x7f != 0x7f {
                    break b;
                }
            };
            let mut k_host: Vec<u8> = (0..layout.cache_len()).map(|_| byte(&mut r)).collect();
            let mut v_host: Vec<u8> = (0..layout.cache_len()).map(|_| byte(&mut r)).collect();
            let k_scale: Vec<f32> = (0..kvh).map(|i| 0.004 * (i + 1) as f32).collect();
            let v_scale: Vec<f32> = (0..kvh).map(|i| 0.003 / (i + 1) as f32).collect();
            let (mut kc, mut vc) = (dev.upload(&k_host).unwrap(), dev.upload(&v_host).unwrap());
            let table = dev.upload(&pg.table).unwrap();
            let lens_dev = dev.upload(&lens_i).unwrap();
            // The step's new rows go in through append_kv on the byte cache.
            let batch = lens.len();
            let row = kvh * d;
            let k_new: Vec<u8> = (0..batch * ql * row).map(|_| byte(&mut r)).collect();
            let v_new: Vec<u8> = (0..batch * ql * row).map(|_| byte(&mut r)).collect();
            let (kn, vn) = (dev.upload(&k_new).unwrap(), dev.upload(&v_new).unwrap());
            append_kv(
                &dev,
                layout,
                &mut kc.view_mut(),
                &mut vc.view_mut(),
                (&table.view(), &pg.table),
                (&lens_dev.view(), &lens_i),
                &kn.view(),
                &vn.view(),
                ql,
            )
            .unwrap();
            let rows: Vec<Vec<usize>> =
                (0..batch).map(|b| gather_rows(&pg.table[b * layout.pages_per_seq..], lens[b], ps)).collect();
            for b in 0..batch {
                for t in 0..ql {
                    let cr = rows[b][lens[b] - ql + t];
                    k_host[cr * row..][..row].copy_from_slice(&k_new[(b * ql + t) * row..][..row]);
                    v_host[cr * row..][..row].copy_from_slice(&v_new[(b * ql + t) * row..][..row]);
                }
            }
            assert_eq!(dev.download(&kc).unwrap(), k_host, "append_kv (fp8): K cache");
            // The reference dequantises the same way: scale[kv head] x e4m3 value.
            let deq = |x: &[u8], sc: &[f32]| -> Vec<f64> {
                x.iter().enumerate().map(|(i, &b)| sc[(i / d) % kvh] as f64 * e4m3_to_f64(b)).collect()
            };
            let (kf, vf) = (deq(&k_host, &k_scale), deq(&v_host, &v_scale));
            let c =
                Case { softcap: if extras { 15.0 } else { 0.0 }, alibi: extras, ..Case::new(ps, &lens, ql, h, kvh, d) };
            let sp = spec(&c, ql);
            let run_t = |dev: &Device, r: &mut rand::rngs::StdRng, bf: bool| {
                let qv: Vec<f64> = (0..batch * ql * h * d).map(|_| r.random_range(-1.5..1.5)).collect();
                let shape = DecodeShape { batch, q_len: ql, heads: h };
                let plan = DecodePlan::with_splits(shape, layout, &lens_i, splits).unwrap();
                let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len().max(1)).unwrap();
                dev.fill_poison(&mut ws.view_mut()).unwrap();
                let mut lse = dev.alloc_zeros::<f32>(batch * ql * h).unwrap();
                dev.fill_bytes(&mut lse.view_mut(), POISON).unwrap();
                let (ks, vs) = (dev.upload(&k_scale).unwrap(), dev.upload(&v_scale).unwrap());
                let sl = dev.upload(&slopes(h)).unwrap();
                macro_rules! go {
                    ($t:ty) => {{
                        let q: Vec<$t> = qv.iter().map(|&x| <$t as Float>::from_f64(x)).collect();
                        let qf = widen(&q);
                        let want = reference(&qf, &kf, &vf, &rows, &sp, &|x| x);
                        let round = |x: f64| <$t as Float>::from_f64(x).to_f64();
                        let (kr, vr): (Vec<f64>, Vec<f64>) =
                            (kf.iter().map(|&x| round(x)).collect(), vf.iter().map(|&x| round(x)).collect());
                        let (naive, _) = reference(&qf, &kr, &vr, &rows, &sp, &round);
                        let q_dev = dev.upload(&q).unwrap();
                        let mut out = dev.alloc_zeros::<$t>(q.len()).unwrap();
                        dev.fill_poison(&mut out.view_mut()).unwrap();
                        let mut opts = DecodeOptions::default().softcap(c.softcap).lse(lse.view_mut());
                        if c.alibi {
                            opts = opts.alibi_slopes(sl.view());
                        }
                        decode_attention_fp8(
                            dev,
                            &plan,
                            &q_dev.view(),
                            &kc.view(),
                            &vc.view(),
                            (&ks.view(), &vs.view()),
                            &table.view(),
                            &lens_dev.view(),
                            Some(&pg.table),
                            &mut out.view_mut(),
                            Some(&mut ws.view_mut()),
                            opts,
                        )
                        .unwrap();
                        let what = format!("fp8 {} case {i} splits {}", <$t as Float>::NAME, plan.splits());
                        check::<$t>(&what, &dev.download(&out).unwrap(), &dev.download(&lse).unwrap(), &want, &naive);
                    }};
                }
                if bf {
                    go!(bf16)
                } else {
                    go!(f16)
                }
            };
            run_t(&dev, &mut r, i % 2 == 0);
        }
    }
}

#[test]
fn device_only_tables_with_bad_page_ids_never_read_out_of_bounds() {
    // The caller passes no host copy of the table (its contract), and the table holds page ids
    // outside the cache: the kernel reads those pages as zeros, and the sanitizer (on) sees no
    // out-of-bounds access. Keys in pages 1 and 2 are zero, so their scores are 0.
    let dev = Device::vm();
    let layout = PagedLayout { num_pages: 2, page_size: 16, kv_heads: 1, head_dim: 64, pages_per_seq: 3 };
    let kv: Vec<bf16> = (0..layout.cache_len()).map(|i| bf16::from_f32((i % 7) as f32 * 0.1)).collect();
    let (k, v) = (dev.upload(&kv).unwrap(), dev.upload(&kv).unwrap());
    let table = dev.upload(&[1i32, 999, -5]).unwrap();
    let lens = [40i32];
    let lens_dev = dev.upload(&lens).unwrap();
    let q = dev.upload(&vec![bf16::from_f32(0.25); 2 * 64]).unwrap();
    let shape = DecodeShape { batch: 1, q_len: 1, heads: 2 };
    for splits in [1, 3] {
        let plan = DecodePlan::with_splits(shape, layout, &lens, splits).unwrap();
        let mut out = dev.alloc_zeros::<bf16>(2 * 64).unwrap();
        dev.fill_poison(&mut out.view_mut()).unwrap();
        let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len().max(1)).unwrap();
        decode_attention(
            &dev,
            &plan,
            &q.view(),
            &k.view(),
            &v.view(),
            &table.view(),
            &lens_dev.view(),
            None,
            &mut out.view_mut(),
            Some(&mut ws.view_mut()),
            DecodeOptions::default(),
        )
        .unwrap();
        let got = dev.download(&out).unwrap();
        // Reference: keys 0..16 from page 1, keys 16..40 zero vectors.
        let mut keys: Vec<Vec<f64>> =
            (0..16).map(|j| (0..64).map(|c| kv[(16 + j) * 64 + c].to_f64()).collect()).collect();
        keys.extend((16..40).map(|_| vec![0.0; 64]));
        let qrow = vec![0.25; 64];
        let (want, _) = scaling_kernels::reference::attention::attention_row(&qrow, &keys, &keys, 0.125);
        for h in 0..2 {
            for c in 0..64 {
                let g = got[h * 64 + c].to_f64();
                assert!((g - want[c]).abs() <= 1e-2, "splits {splits} head {h} col {c}: {g} vs {}", want[c]);
            }
        }
    }
}
