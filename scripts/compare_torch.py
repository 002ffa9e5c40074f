#!/usr/bin/env python3
"""scaling-kernels beside PyTorch, for scripts/gpu-check (or by hand).

usage: compare_torch.py DUMP_DIR RESULTS_DIR

1. Outputs: the small problems the bench binaries dumped (SK_BENCH_DUMP=DUMP_DIR: causal GQA
   attention, the Mixtral and DeepSeek-V3 routers, top-p sampling) are recomputed with PyTorch
   (scaled_dot_product_attention, topk + softmax routing, softmax + sort + torch.multinomial) and
   the errors printed side by side (ours vs an fp32 reference, PyTorch bf16 vs the same reference).
2. Timings (CUDA only): the same operations in PyTorch at the benchmarks' real shapes, timed with
   CUDA events, beside the measured times in RESULTS_DIR/*.csv (the benches' results).

Without PyTorch it says so and exits 0; without CUDA it does part 1 on the CPU and skips part 2.
"""
import csv
import glob
import math
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("compare_torch: PyTorch is not installed here: no comparison (pip install torch to get one)")
    sys.exit(0)

DTYPES = {"bf16": torch.bfloat16, "f32": torch.float32, "i32": torch.int32}
dev = "cuda" if torch.cuda.is_available() else "cpu"


def load(folder):
    out = {}
    with open(os.path.join(folder, "manifest.txt")) as f:
        for line in f:
            name, dtype, dims = line.split()
            shape = [int(d) for d in dims.split(",")]
            with open(os.path.join(folder, name + ".bin"), "rb") as b:
                raw = bytearray(b.read())
            out[name] = torch.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape).clone()
    return out


def err(a, b):
    return (a.float() - b.float()).abs().max().item()


def check_attention(d):
    q, k, v = (d[n].to(dev) for n in ("attn_q", "attn_k", "attn_v"))
    s, h, hd = q.shape
    kvh = k.shape[1]
    # [s, heads, d] -> [1, heads, s, d]; K/V repeated per group for the fp32 reference.
    qt, kt, vt = (x.permute(1, 0, 2).unsqueeze(0) for x in (q, k, v))
    rep = h // kvh
    kr, vr = kt.repeat_interleave(rep, dim=1), vt.repeat_interleave(rep, dim=1)
    scale = 1.0 / math.sqrt(hd)
    scores = (qt.float() @ kr.float().transpose(-1, -2)) * scale
    mask = torch.ones(s, s, dtype=torch.bool, device=dev).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    ref = torch.softmax(scores, -1) @ vr.float()
    ref_lse = torch.logsumexp(scores, -1)[0]  # [heads, s]
    torch_bf16 = F.scaled_dot_product_attention(qt, kr, vr, is_causal=True)
    ours = d["attn_out"].to(dev).permute(1, 0, 2).unsqueeze(0)
    print(
        f"attention causal s{s} h{h}/kv{kvh} d{hd} bf16: max |out - fp32 ref| ours {err(ours, ref):.2e}, "
        f"torch SDPA bf16 {err(torch_bf16, ref):.2e}; max |lse - fp32 ref| ours {err(d['attn_lse'].to(dev), ref_lse):.2e}"
    )


def route_ref(logits, bias, name):
    x = logits.float()
    if name.startswith("deepseek"):
        scores = torch.sigmoid(x)
        sel = scores + bias
        t, e = sel.shape
        groups, keep, k = 8, 4, 8
        g = sel.view(t, groups, e // groups).topk(2, dim=-1).values.sum(-1)
        kept = g.topk(keep, dim=-1).indices
        gmask = torch.zeros(t, groups, dtype=torch.bool, device=x.device).scatter_(1, kept, True)
        sel = sel.masked_fill(~gmask.repeat_interleave(e // groups, dim=1), float("-inf"))
        ids = sel.topk(k, dim=-1).indices
        w = scores.gather(1, ids)
        return ids, w / w.sum(-1, keepdim=True) * 2.5
    k = 2 if name.startswith("mixtral") else 8
    p = torch.softmax(x, -1)
    w, ids = p.topk(k, dim=-1)
    return ids, w / w.sum(-1, keepdim=True)


def check_route(d, name):
    logits, bias = d[f"route_{name}_logits"].to(dev), d[f"route_{name}_bias"].to(dev)
    ids, w = route_ref(logits, bias, name)
    ours_ids, ours_w = d[f"route_{name}_ids"].to(dev).long(), d[f"route_{name}_weights"].to(dev)
    # Compare as sets per token (the order of equal scores is each library's own).
    o_ids, o_perm = ours_ids.sort(-1)
    t_ids, t_perm = ids.sort(-1)
    same = (o_ids == t_ids).all(-1).float().mean().item()
    werr = err(ours_w.gather(1, o_perm), w.gather(1, t_perm))
    print(f"route {name} {tuple(logits.shape)}: same expert set {100 * same:.2f}% of tokens, max |weight diff| {werr:.2e}")


def check_sampling(d):
    x = d["sample_logits"].to(dev).float()
    tok = d["sample_token"].to(dev).long()
    lp = d["sample_logprob_raw"].to(dev)
    ref_lp = torch.log_softmax(x, -1).gather(1, tok[:, None])[:, 0]
    probs = torch.softmax(x / 0.7, -1)
    sp, si = probs.sort(-1, descending=True)
    before = sp.cumsum(-1) - sp  # mass strictly before each sorted token
    keep = before < 0.9 + 1e-6
    rank = (si == tok[:, None]).float().argmax(-1)
    inside = keep.gather(1, rank[:, None])[:, 0].float().mean().item()
    # PyTorch's own top-p draw on the same logits, for the same checks.
    sp2 = sp.masked_fill(~keep, 0)
    ttok = si.gather(1, torch.multinomial(sp2, 1))[:, 0]
    tinside = keep.gather(1, (si == ttok[:, None]).float().argmax(-1)[:, None])[:, 0].float().mean().item()
    print(
        f"sampling {tuple(x.shape)} T 0.7 top-p 0.9: tokens inside the top-p set ours {100 * inside:.1f}%, "
        f"torch.multinomial {100 * tinside:.1f}%; max |logprob_raw - fp32 log_softmax| ours {err(lp, ref_lp):.2e}"
    )


def timeit(fn, iters=10):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / iters / 1e3


def torch_timings():
    t = {}
    g = torch.Generator(device=dev).manual_seed(0)

    def randn(*shape, dtype=torch.bfloat16):
        return torch.randn(*shape, generator=g, device=dev, dtype=torch.float32).to(dtype)

    for name, h, kvh in (("llama3_8b", 32, 8), ("llama3_70b", 64, 8)):
        for s in (4096, 8192, 16384):
            b = 32768 // s
            q, k, v = randn(b, h, s, 128), randn(b, kvh, s, 128), randn(b, kvh, s, 128)
            try:
                F.scaled_dot_product_attention(q[:, :, :128], k[:, :, :128], v[:, :, :128], is_causal=True, enable_gqa=True)
                fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)  # noqa: E731
            except (TypeError, RuntimeError):
                kr, vr = k.repeat_interleave(h // kvh, 1), v.repeat_interleave(h // kvh, 1)
                fn = lambda: F.scaled_dot_product_attention(q, kr, vr, is_causal=True)  # noqa: E731
            t[f"attention_fwd/{name}/packed_{s // 1024}k_causal"] = timeit(fn)
            del q, k, v
    for name, e in (("deepseek_v3", 256), ("qwen3_235b", 128), ("mixtral_8x7b", 8)):
        for tokens in (16384, 65536):
            logits, bias = randn(tokens, e), randn(e, dtype=torch.float32) * 0.01
            t[f"moe_route/{name}/{tokens // 1024}k_tokens"] = timeit(lambda: route_ref(logits, bias, name))
    for vname, vocab in (("llama3", 128256), ("qwen3", 151936), ("deepseek_v3", 129280)):
        for batch in (256, 1024):
            logits = randn(batch, vocab) * 3

            def top_p():
                x = logits.float()
                probs = torch.softmax(x / 0.7, -1)
                sp, si = probs.sort(-1, descending=True)
                sp = sp.masked_fill(sp.cumsum(-1) - sp > 0.9, 0)
                tok = si.gather(1, torch.multinomial(sp, 1))
                return tok, torch.log_softmax(x, -1).gather(1, tok)

            t[f"sampling_top_p/{vname}_v{vocab}/b{batch}_t0.7_p0.9"] = timeit(top_p)
        logits = randn(8192, vocab) * 3
        target = torch.randint(0, vocab, (8192, 1), device=dev, generator=g)

        def lsg():
            lp = torch.log_softmax(logits.float(), -1)
            return lp.gather(1, target), -(lp.exp() * lp).sum(-1)

        t[f"log_softmax_gather/{vname}_v{vocab}/8k_tokens_entropy"] = timeit(lsg)
        del logits
    return t


def ours(results):
    rows = {}
    for path in glob.glob(os.path.join(results, "*.csv")):
        with open(path) as f:
            for r in csv.DictReader(f):
                rows[r["benchmark"]] = (r["kind"], float(r["time_us"]) / 1e6)
    return rows


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    dump, results = sys.argv[1], sys.argv[2]
    print(f"compare_torch: torch {torch.__version__} on {dev}" + (f" ({torch.cuda.get_device_name()})" if dev == "cuda" else ""))
    print("\n## Outputs (small problems; ours from the bench binaries' dump)\n")
    pre, post = os.path.join(dump, "pretraining"), os.path.join(dump, "post_training")
    if os.path.isdir(pre):
        d = load(pre)
        check_attention(d)
        check_route(d, "mixtral_8x7b")
        check_route(d, "deepseek_v3")
    if os.path.isdir(post):
        check_sampling(load(post))
    if dev != "cuda":
        print("\ncompare_torch: no CUDA in PyTorch: timings skipped")
        return
    print("\n## Timings at the benchmarks' shapes (CUDA events, mean of 10 after 3 warm-up calls)\n")
    t = torch_timings()
    mine = ours(results)
    print("| benchmark | scaling-kernels | PyTorch | PyTorch / ours |\n|---|---:|---:|---:|")
    for name, secs in t.items():
        kind, o = mine.get(name, ("", float("nan")))
        note = "" if kind in ("measured", "") else f" ({kind})"
        print(f"| {name} | {o * 1e3:.3f} ms{note} | {secs * 1e3:.3f} ms | {secs / o:.2f}x |")
    print("\n(PyTorch routing: softmax/sigmoid + topk eager ops; sampling: softmax, sort, cumsum, torch.multinomial,"
          " log_softmax gather; attention: scaled_dot_product_attention, whichever backend PyTorch picks.)")


if __name__ == "__main__":
    main()
