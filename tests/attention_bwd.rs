//! Attention backward against the float64 reference (itself checked by finite differences in
//! `src/reference/attention_bwd.rs`), on every available backend.
//!
//! Inputs: random q, k, v, dout in the dtype; out and lse are the float64 forward's, rounded to the
//! dtype and to fp32 (what a forward hands the backward). Error rule (FlashAttention's): for each of
//! dq, dk, dv (and dsinks), max |got - ref| <= 2 x the max error of a naive backward in the input
//! precision (`attention_bwd_rounded`) + eps; for dsinks, a sum over every row of a head's rounded
//! `out`, 2 x the larger of that and the error of the same sum in float64 from the rounded inputs. Outputs and the workspace are poisoned before each
//! launch and every element is compared; the VM's sanitizer fails any launch with a finding.

mod common;

use common::{backends, max_abs_err, rng, POISON};
use half::{bf16, f16};
use rand::Rng;
use scaling_kernels::attention::{
    attention_bwd, attention_bwd_varlen, AttnBwdInputs, AttnBwdPlan, AttnGradsMut, AttnOptions, AttnShape, RowStrides,
    VarlenShape,
};
use scaling_kernels::device::VmConfig;
use scaling_kernels::reference::attention::{attention_fwd as reference_fwd, AttnSpec};
use scaling_kernels::reference::attention_bwd::{attention_bwd as reference_bwd, attention_bwd_rounded};
use scaling_kernels::{Device, Float};

#[derive(Debug, Clone)]
struct Case {
    seqs: Vec<(usize, usize)>,
    varlen: bool,
    heads: usize,
    kv_heads: usize,
    d: usize,
    causal: bool,
    window: (i32, i32),
    softcap: f32,
    alibi: bool,
    sinks: bool,
    /// q, k, v as strided views of one fused `[tokens, heads + 2 kv_heads, d]` buffer (the
    /// gradients stay contiguous).
    fused: bool,
}

impl Case {
    fn new(seqs: &[(usize, usize)], heads: usize, kv_heads: usize, d: usize) -> Case {
        Case {
            seqs: seqs.to_vec(),
            varlen: false,
            heads,
            kv_heads,
            d,
            causal: false,
            window: (-1, -1),
            softcap: 0.0,
            alibi: false,
            sinks: false,
            fused: false,
        }
    }
    fn causal(mut self) -> Self {
        self.causal = true;
        self
    }
    fn varlen(mut self) -> Self {
        self.varlen = true;
        self
    }
}

fn cu(lens: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut v = vec![0];
    for l in lens {
        v.push(v.last().unwrap() + l);
    }
    v
}

/// The device's gradients, as raw bits (for the determinism check) and widened.
struct Got<T> {
    dq: Vec<T>,
    dk: Vec<T>,
    dv: Vec<T>,
    dsinks: Vec<f32>,
}

/// Inputs of one case in `T`.
struct Inputs<T> {
    q: Vec<T>,
    k: Vec<T>,
    v: Vec<T>,
    out: Vec<T>,
    dout: Vec<T>,
    lse: Vec<f32>,
    spec: AttnSpec,
    cu_q: Vec<usize>,
    cu_k: Vec<usize>,
}

fn inputs<T: Float>(rng: &mut impl Rng, c: &Case) -> Inputs<T> {
    let (h, kvh, d) = (c.heads, c.kv_heads, c.d);
    let cu_q = cu(c.seqs.iter().map(|s| s.0));
    let cu_k = cu(c.seqs.iter().map(|s| s.1));
    let (total_q, total_k) = (*cu_q.last().unwrap(), *cu_k.last().unwrap());
    let mut gen = |n: usize| -> Vec<T> { (0..n).map(|_| T::from_f64(rng.random_range(-1.5..1.5))).collect() };
    let (q, k, v, dout) = (gen(total_q * h * d), gen(total_k * kvh * d), gen(total_k * kvh * d), gen(total_q * h * d));
    let spec = AttnSpec {
        heads: h,
        kv_heads: kvh,
        head_dim: d,
        causal: c.causal,
        window: (c.window.0 as i64, c.window.1 as i64),
        softcap: c.softcap as f64,
        scale: (1.0 / (d as f32).sqrt()) as f64,
        alibi_slopes: c.alibi.then(|| (0..h).map(|i| 0.5f32.powi(i as i32 + 1) as f64).collect()),
        sinks: c.sinks.then(|| (0..h).map(|i| (i as f32 * 0.7 - 0.5) as f64).collect()),
    };
    let widen = |x: &[T]| x.iter().map(|e| e.to_f64()).collect::<Vec<_>>();
    let (out, lse) = reference_fwd(&widen(&q), &widen(&k), &widen(&v), &cu_q, &cu_k, &spec);
    let out = out.iter().map(|&x| T::from_f64(x)).collect();
    let lse = lse.iter().map(|&x| x as f32).collect();
    Inputs { q, k, v, out, dout, lse, spec, cu_q, cu_k }
}

/// Interleaves per-token rows of the given widths into one `[tokens, sum of widths]` buffer.
fn fuse<T: Copy>(parts: &[(&[T], usize)], tokens: usize) -> Vec<T> {
    let mut out = Vec::new();
    for t in 0..tokens {
        for &(x, w) in parts {
            out.extend_from_slice(&x[t * w..][..w]);
        }
    }
    out
}

fn launch<T: Float>(dev: &Device, c: &Case, x: &Inputs<T>) -> Got<T> {
    let (h, kvh, d) = (c.heads, c.kv_heads, c.d);
    let (total_q, total_k) = (*x.cu_q.last().unwrap(), *x.cu_k.last().unwrap());
    let (qw, kw) = (h * d, kvh * d);
    let fw = qw + 2 * kw;
    let plan = if c.varlen {
        let to_i32 = |v: &[usize]| v.iter().map(|&x| x as i32).collect::<Vec<_>>();
        AttnBwdPlan::varlen(&to_i32(&x.cu_q), &to_i32(&x.cu_k), VarlenShape { heads: h, kv_heads: kvh, head_dim: d })
    } else {
        let (sq, sk) = c.seqs[0];
        assert!(c.seqs.iter().all(|&s| s == (sq, sk)), "fixed length: every sequence alike");
        AttnBwdPlan::new(AttnShape {
            batch: c.seqs.len(),
            seqlen_q: sq,
            seqlen_k: sk,
            heads: h,
            kv_heads: kvh,
            head_dim: d,
        })
    }
    .unwrap();
    let pad = [T::from_f64(0.0); 8];
    let up = |v: &[T]| dev.upload(if v.is_empty() { &pad[..] } else { v }).unwrap();
    let (qkv, kb, vb) = if c.fused {
        assert_eq!(total_q, total_k);
        (up(&fuse(&[(&x.q, qw), (&x.k, kw), (&x.v, kw)], total_q)), None, None)
    } else {
        (up(&x.q), Some(up(&x.k)), Some(up(&x.v)))
    };
    let (ob, dob) = (up(&x.out), up(&x.dout));
    let lse = dev.upload(if x.lse.is_empty() { &[0.0f32][..] } else { &x.lse }).unwrap();
    let slopes: Vec<f32> = x.spec.alibi_slopes.as_ref().map_or(vec![0.0], |s| s.iter().map(|&v| v as f32).collect());
    let sinks: Vec<f32> = x.spec.sinks.as_ref().map_or(vec![0.0], |s| s.iter().map(|&v| v as f32).collect());
    let (slopes_b, sinks_b) = (dev.upload(&slopes).unwrap(), dev.upload(&sinks).unwrap());
    let alloc = |n: usize| {
        let mut b = dev.alloc_zeros::<T>(n.max(1)).unwrap();
        dev.fill_bytes(&mut b.view_mut(), POISON).unwrap();
        b
    };
    let (mut dqb, mut dkb, mut dvb) = (alloc(total_q * qw), alloc(total_k * kw), alloc(total_k * kw));
    let mut ws = dev.alloc_zeros::<f32>(plan.workspace_len().max(1)).unwrap();
    dev.fill_bytes(&mut ws.view_mut(), POISON).unwrap();
    let mut dsinks = dev.alloc_zeros::<f32>(h).unwrap();
    dev.fill_bytes(&mut dsinks.view_mut(), POISON).unwrap();

    let span = |off: usize, w: usize, rows: usize, stride: usize| {
        if rows == 0 {
            off..off
        } else {
            off..off + (rows - 1) * stride + w
        }
    };
    let (qv, kv, vv) = match (&kb, &vb) {
        (Some(k), Some(v)) => {
            (qkv.slice(..total_q * qw).unwrap(), k.slice(..total_k * kw).unwrap(), v.slice(..total_k * kw).unwrap())
        }
        _ => (
            qkv.slice(span(0, qw, total_q, fw)).unwrap(),
            qkv.slice(span(qw, kw, total_q, fw)).unwrap(),
            qkv.slice(span(qw + kw, kw, total_q, fw)).unwrap(),
        ),
    };
    let (ov, dov) = (ob.slice(..total_q * qw).unwrap(), dob.slice(..total_q * qw).unwrap());
    let lv = lse.slice(..h * total_q).unwrap();
    let mut opts = AttnOptions::default().causal(c.causal).window(c.window.0, c.window.1).softcap(c.softcap);
    if c.alibi {
        opts = opts.alibi_slopes(slopes_b.view());
    }
    if c.sinks {
        opts = opts.sinks(sinks_b.view());
    }
    if c.fused {
        opts = opts.row_strides(RowStrides { q: fw, k: fw, v: fw, out: qw });
    }
    {
        let mut dsv = dsinks.view_mut();
        let inputs = AttnBwdInputs { q: &qv, k: &kv, v: &vv, out: &ov, dout: &dov, lse: &lv };
        let mut wsv = ws.slice_mut(..plan.workspace_len()).unwrap();
        let mut gq = dqb.slice_mut(..total_q * qw).unwrap();
        let mut gk = dkb.slice_mut(..total_k * kw).unwrap();
        let mut gv = dvb.slice_mut(..total_k * kw).unwrap();
        let grads = AttnGradsMut { dq: &mut gq, dk: &mut gk, dv: &mut gv, dsinks: c.sinks.then_some(&mut dsv) };
        if c.varlen {
            let to_i32 = |v: &[usize]| v.iter().map(|&x| x as i32).collect::<Vec<_>>();
            let (cq, ck) = (dev.upload(&to_i32(&x.cu_q)).unwrap(), dev.upload(&to_i32(&x.cu_k)).unwrap());
            attention_bwd_varlen(dev, &plan, inputs, grads, &mut wsv, &cq.view(), &ck.view(), opts).unwrap();
        } else {
            attention_bwd(dev, &plan, inputs, grads, &mut wsv, opts).unwrap();
        }
    }
    let dq = dev.download(&dqb).unwrap()[..total_q * qw].to_vec();
    let dk = dev.download(&dkb).unwrap()[..total_k * kw].to_vec();
    let dv = dev.download(&dvb).unwrap()[..total_k * kw].to_vec();
    let ds = dev.download(&dsinks).unwrap();
    Got { dq, dk, dv, dsinks: ds }
}

fn run<T: Float>(dev: &Device, rng: &mut impl Rng, c: &Case) {
    let x = inputs::<T>(rng, c);
    let widen = |v: &[T]| v.iter().map(|e| e.to_f64()).collect::<Vec<_>>();
    let (q, k, v, dout) = (widen(&x.q), widen(&x.k), widen(&x.v), widen(&x.dout));
    let want = reference_bwd(&q, &k, &v, &dout, &x.cu_q, &x.cu_k, &x.spec);
    let naive = attention_bwd_rounded(&q, &k, &v, &dout, &x.cu_q, &x.cu_k, &x.spec, &|y| T::from_f64(y).to_f64());
    let got = launch::<T>(dev, c, &x);
    let what = format!("{} {c:?} on {}", T::NAME, dev.describe());
    let eps = 1e-4;
    let mut report = String::new();
    for (name, g, w, n) in [
        ("dq", widen(&got.dq), &want.dq, &naive.dq),
        ("dk", widen(&got.dk), &want.dk, &naive.dk),
        ("dv", widen(&got.dv), &want.dv, &naive.dv),
    ] {
        let (err, naive_err) = (max_abs_err(&g, w), max_abs_err(n, w));
        report += &format!(" {name} {err:.1e}/{naive_err:.1e}");
        assert!(err <= 2.0 * naive_err + eps, "{what}: {name}: max err {err:e} > 2 x naive {naive_err:e} + {eps:e}");
    }
    if let Some(ws) = &want.dsinks {
        let g: Vec<f64> = got.dsinks.iter().map(|&x| x as f64).collect();
        let (err, naive_err) = (max_abs_err(&g, ws), max_abs_err(naive.dsinks.as_ref().unwrap(), ws));
        // dsinks_h = -sum_i exp(sink_h - lse_i) * rowsum(dout_i * out_i) is a sum over all of a
        // head's rows of `out`, which reaches the backward rounded to T: the same sum in float64
        // from those rounded inputs has an error of its own that no kernel can avoid, and with only
        // `heads` values the naive backward's error alone is a noisy yardstick (a seed once gave
        // 2.2e-3 naive against 8.2e-3 from the rounded inputs). The bound is 2 x the larger of the two.
        let from_inputs = dsinks_from_rounded_inputs(&x, &dout);
        let input_err = max_abs_err(&from_inputs, ws);
        report += &format!(" dsinks {err:.1e}/{naive_err:.1e} (rounded inputs {input_err:.1e})");
        let bound = 2.0 * naive_err.max(input_err) + eps;
        assert!(
            err <= bound,
            "{what}: dsinks: max err {err:e} > 2 x max(naive {naive_err:e}, inputs {input_err:e}) + {eps:e}"
        );
    }
    eprintln!("{} d{} {:?}: err/naive{report}", T::NAME, c.d, c.seqs);
}

/// The sinks' gradient in float64 from the backward's rounded inputs (out in T, lse in fp32):
/// `-sum_i exp(sink_h - lse_i) * sum_c dout_ic * out_ic` per head, written from the math.
fn dsinks_from_rounded_inputs<T: Float>(x: &Inputs<T>, dout: &[f64]) -> Vec<f64> {
    let (h, d) = (x.spec.heads, x.spec.head_dim);
    let total_q = *x.cu_q.last().unwrap();
    let sinks = x.spec.sinks.as_ref().expect("a case with sinks");
    (0..h)
        .map(|hh| {
            -(0..total_q)
                .map(|i| {
                    let row = (i * h + hh) * d;
                    let big_d: f64 = (0..d).map(|c| dout[row + c] * x.out[row + c].to_f64()).sum();
                    (sinks[hh] - x.lse[hh * total_q + i] as f64).exp() * big_d
                })
                .sum::<f64>()
        })
        .collect()
}

fn run_all(test: &str, cases: &[(Case, Option<&str>)]) {
    let mut rng = rng(test);
    for dev in backends() {
        for (c, only) in cases {
            if only.is_none_or(|t| t == "bf16") {
                run::<bf16>(&dev, &mut rng, c);
            }
            if only.is_none_or(|t| t == "f16") {
                run::<f16>(&dev, &mut rng, c);
            }
        }
    }
}

#[test]
fn each_head_dim_instantiation_matches_reference() {
    run_all(
        "each_head_dim_instantiation_matches_reference",
        &[
            (Case::new(&[(130, 130)], 1, 1, 64), Some("bf16")),
            (Case::new(&[(64, 64)], 1, 1, 128), Some("f16")),
            (Case::new(&[(17, 64)], 1, 1, 256), None),
            // d = 256 over several key CTAs (the dK/dV kernel's 8 warps split the head dim).
            (Case::new(&[(70, 130)], 2, 1, 256).causal(), Some("bf16")),
            (Case::new(&[(37, 37)], 1, 1, 80).causal(), Some("bf16")),
            (Case::new(&[(20, 20)], 1, 1, 96), Some("f16")),
        ],
    );
}

#[test]
fn causal_is_bottom_right_aligned_both_ways() {
    run_all(
        "causal_is_bottom_right_aligned_both_ways",
        &[
            (Case::new(&[(130, 130)], 1, 1, 64).causal(), Some("f16")),
            (Case::new(&[(17, 130)], 1, 1, 128).causal(), Some("bf16")),
            // seqlen_q > seqlen_k: the first rows see nothing and get zero gradients.
            (Case::new(&[(130, 17)], 1, 1, 64).causal(), Some("bf16")),
            (Case::new(&[(1, 1)], 1, 1, 64).causal(), None),
            (Case::new(&[(64, 17)], 1, 1, 256).causal(), Some("f16")),
            // Lengths past two 128-row tiles, not a multiple of any tile.
            (Case::new(&[(257, 257)], 1, 1, 128).causal(), Some("bf16")),
        ],
    );
}

#[test]
fn gqa_and_mqa_sum_over_the_group() {
    run_all(
        "gqa_and_mqa_sum_over_the_group",
        &[
            (Case::new(&[(17, 17), (17, 17)], 4, 1, 64).causal(), Some("bf16")),
            (Case::new(&[(17, 64)], 8, 1, 128), Some("f16")),
            (Case::new(&[(64, 17)], 8, 2, 64), Some("bf16")),
        ],
    );
}

#[test]
fn window_softcap_alibi_and_sinks_each_and_combined_match_reference() {
    let base = Case::new(&[(64, 64)], 2, 1, 64);
    let mut window = base.clone();
    window.window = (20, 5);
    let mut softcap = base.clone();
    softcap.softcap = 2.0;
    let mut alibi = base.clone().causal();
    alibi.alibi = true;
    let mut sinks = base.clone();
    sinks.sinks = true;
    let mut all = Case::new(&[(17, 130)], 4, 2, 128).causal();
    all.window = (40, 0);
    all.softcap = 3.0;
    all.alibi = true;
    all.sinks = true;
    // Rows that see only the sink (seqlen_q > seqlen_k with a window).
    let mut sink_only = Case::new(&[(64, 17)], 1, 1, 64).causal();
    sink_only.sinks = true;
    sink_only.window = (3, 0);
    run_all(
        "window_softcap_alibi_and_sinks_each_and_combined_match_reference",
        &[
            (window, Some("bf16")),
            (softcap, Some("f16")),
            (alibi, Some("bf16")),
            (sinks, Some("f16")),
            (all, None),
            (sink_only, Some("bf16")),
        ],
    );
}

#[test]
fn varlen_with_empty_and_unequal_sequences_matches_reference() {
    let mut mixed = Case::new(&[(1, 1), (37, 37), (0, 0), (20, 45), (0, 4), (6, 0)], 2, 1, 64).varlen().causal();
    mixed.sinks = true;
    // q, k, v as strided views of one fused QKV buffer.
    let mut fused = Case::new(&[(5, 5), (33, 33), (0, 0)], 2, 1, 64).varlen();
    fused.fused = true;
    run_all(
        "varlen_with_empty_and_unequal_sequences_matches_reference",
        &[
            (mixed, Some("bf16")),
            (Case::new(&[(1, 5), (37, 37), (0, 0)], 2, 2, 128).varlen(), Some("f16")),
            (fused, Some("f16")),
            (Case::new(&[(200, 200), (37, 37), (0, 0), (1, 1)], 2, 1, 64).varlen().causal(), Some("bf16")),
        ],
    );
}

#[test]
fn gradients_are_bit_identical_across_runs_and_vm_thread_counts() {
    let mut c = Case::new(&[(70, 70), (70, 70)], 4, 2, 64).causal();
    c.sinks = true;
    c.alibi = true;
    let x = inputs::<bf16>(&mut rng("gradients_are_bit_identical_across_runs_and_vm_thread_counts"), &c);
    let bits = |g: &Got<bf16>| {
        let b16 = |v: &[bf16]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (b16(&g.dq), b16(&g.dk), b16(&g.dv), g.dsinks.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
    };
    let runs: Vec<_> = [1, 2, 3]
        .iter()
        .map(|&threads| bits(&launch::<bf16>(&Device::vm_with(VmConfig { threads, ..VmConfig::default() }), &c, &x)))
        .collect();
    assert!(runs[0] == runs[1] && runs[1] == runs[2], "gradients differ between VM thread counts 1, 2, 3");
}

#[test]
fn bad_arguments_are_rejected_before_launch() {
    let dev = Device::vm();
    let shape = AttnShape { batch: 1, seqlen_q: 4, seqlen_k: 4, heads: 1, kv_heads: 1, head_dim: 64 };
    let plan = AttnBwdPlan::new(shape).unwrap();
    let name = |r: scaling_kernels::Result<()>| match r {
        Err(scaling_kernels::Error::InvalidArgument { name, .. }) => name,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    let x = dev.upload(&vec![bf16::ONE; 4 * 64 + 8]).unwrap();
    let lse = dev.upload(&[0.0f32; 5]).unwrap();
    let (mut dq, mut dk, mut dv) = (
        dev.alloc_zeros::<bf16>(4 * 64).unwrap(),
        dev.alloc_zeros::<bf16>(4 * 64).unwrap(),
        dev.alloc_zeros::<bf16>(4 * 64).unwrap(),
    );
    let mut ws = dev.alloc_zeros::<f32>(4).unwrap();
    let full = x.slice(..4 * 64).unwrap();
    let short = x.slice(..4 * 64 - 1).unwrap();
    let shifted = x.slice(1..4 * 64 + 1).unwrap();
    let (l4, l5) = (lse.slice(..4).unwrap(), lse.slice(..5).unwrap());
    let mut call = |dout: &scaling_kernels::device::View<'_, bf16>,
                    q: &scaling_kernels::device::View<'_, bf16>,
                    lse: &scaling_kernels::device::View<'_, f32>,
                    ws_len: usize,
                    opts: AttnOptions<'_>| {
        let inputs = AttnBwdInputs { q, k: &full, v: &full, out: &full, dout, lse };
        let grads =
            AttnGradsMut { dq: &mut dq.view_mut(), dk: &mut dk.view_mut(), dv: &mut dv.view_mut(), dsinks: None };
        attention_bwd(&dev, &plan, inputs, grads, &mut ws.slice_mut(..ws_len).unwrap(), opts)
    };
    assert!(call(&full, &full, &l4, 4, AttnOptions::default()).is_ok());
    assert_eq!(name(call(&short, &full, &l4, 4, AttnOptions::default())), "dout");
    assert_eq!(name(call(&full, &shifted, &l4, 4, AttnOptions::default())), "q");
    assert_eq!(name(call(&full, &full, &l5, 4, AttnOptions::default())), "lse");
    assert_eq!(name(call(&full, &full, &l4, 3, AttnOptions::default())), "workspace");
    assert_eq!(name(call(&full, &full, &l4, 4, AttnOptions::default().softcap(-1.0))), "softcap");
    assert_eq!(name(call(&full, &full, &l4, 4, AttnOptions::default().causal(true).window(-1, 3))), "window");
    let sinks = dev.upload(&[0.5f32]).unwrap();
    assert_eq!(name(call(&full, &full, &l4, 4, AttnOptions::default().sinks(sinks.view()))), "dsinks");
    // A varlen plan is not a fixed-length call, and the device offsets must match the plan's.
    let vplan = AttnBwdPlan::varlen(&[0, 4], &[0, 4], VarlenShape { heads: 1, kv_heads: 1, head_dim: 64 }).unwrap();
    let inputs = AttnBwdInputs { q: &full, k: &full, v: &full, out: &full, dout: &full, lse: &l4 };
    let grads = AttnGradsMut { dq: &mut dq.view_mut(), dk: &mut dk.view_mut(), dv: &mut dv.view_mut(), dsinks: None };
    assert_eq!(name(attention_bwd(&dev, &vplan, inputs, grads, &mut ws.view_mut(), AttnOptions::default())), "plan");
    let cu = dev.upload(&[0i32, 2, 4]).unwrap();
    let inputs = AttnBwdInputs { q: &full, k: &full, v: &full, out: &full, dout: &full, lse: &l4 };
    let grads = AttnGradsMut { dq: &mut dq.view_mut(), dk: &mut dk.view_mut(), dv: &mut dv.view_mut(), dsinks: None };
    let r = attention_bwd_varlen(
        &dev,
        &vplan,
        inputs,
        grads,
        &mut ws.view_mut(),
        &cu.view(),
        &cu.view(),
        AttnOptions::default(),
    );
    assert_eq!(name(r), "cu_seqlens_q");
}
