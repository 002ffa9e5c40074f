//! nvcc-compiled kernels (tests/ptx/core_bench.cu) against plain Rust references.

// Index loops mirror the kernels' thread indexing.
#![allow(clippy::needless_range_loop)]

use ptx_vm::*;

const PTX: &str = include_str!("ptx/core_bench.ptx");

fn module() -> Module {
    Module::parse(PTX).expect("core_bench.ptx parses")
}

fn cfg(grid: [u32; 3], block: [u32; 3]) -> LaunchConfig {
    LaunchConfig { grid, block, dynamic_smem: 0 }
}

fn upload<T: Copy>(m: &mut Machine, data: &[T]) -> u64 {
    let bytes = std::mem::size_of_val(data);
    let p = m.alloc(bytes).unwrap();
    // SAFETY: plain-old-data slices of numbers viewed as bytes.
    let raw = unsafe { std::slice::from_raw_parts(data.as_ptr() as *const u8, bytes) };
    m.write(p, raw).unwrap();
    p
}

fn download<T: Copy + Default>(m: &Machine, p: u64, n: usize) -> Vec<T> {
    let mut out = vec![T::default(); n];
    let bytes = n * std::mem::size_of::<T>();
    // SAFETY: as in `upload`.
    let raw = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, bytes) };
    m.read(p, raw).unwrap();
    out
}

fn lcg(seed: &mut u64) -> u32 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*seed >> 33) as u32
}

#[test]
fn saxpy_matches_reference_with_a_partial_last_block() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let n = 1000;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let y: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
    let (px, py) = (upload(&mut m, &x), upload(&mut m, &y));
    let p = ParamBuilder::new().ptr(px).ptr(py).i32(n as i32).f32(2.0).finish();
    m.launch(&md, "saxpy", &cfg([4, 1, 1], [256, 1, 1]), &p).unwrap();
    let out: Vec<f32> = download(&m, py, n);
    for i in 0..n {
        assert_eq!(out[i], 2.0f32.mul_add(x[i], y[i]), "element {i}");
    }
}

#[test]
fn reduce_sum_with_grid_constant_struct_param() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let n: usize = 5000;
    let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let px = upload(&mut m, &x);
    let py = upload(&mut m, &[0f32]);
    assert_eq!(md.param_size("reduce_sum"), Some(24));
    let p = ParamBuilder::new().ptr(px).ptr(py).i32(n as i32).u32(0).finish();
    m.launch(&md, "reduce_sum", &cfg([3, 1, 1], [256, 1, 1]), &p).unwrap();
    let out: Vec<f32> = download(&m, py, 1);
    assert_eq!(out[0], x.iter().sum::<f32>());
}

#[test]
fn cub_block_radix_sort_sorts() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let mut seed = 7;
    let keys: Vec<u32> = (0..2048).map(|_| lcg(&mut seed)).collect();
    let (pi, po) = (upload(&mut m, &keys), upload(&mut m, &vec![0u32; 2048]));
    m.launch(&md, "cub_sort", &cfg([2, 1, 1], [256, 1, 1]), &ParamBuilder::new().ptr(pi).ptr(po).finish()).unwrap();
    let out: Vec<u32> = download(&m, po, 2048);
    for b in 0..2 {
        let mut want = keys[b * 1024..(b + 1) * 1024].to_vec();
        want.sort();
        assert_eq!(&out[b * 1024..(b + 1) * 1024], &want[..], "block {b}");
    }
}

#[test]
fn cub_block_scan_and_reduce() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let x: Vec<i32> = (0..512).map(|i| (i * 37 % 11) - 5).collect();
    let (pi, po) = (upload(&mut m, &x), upload(&mut m, &vec![0i32; 512]));
    m.launch(&md, "cub_scan", &cfg([2, 1, 1], [256, 1, 1]), &ParamBuilder::new().ptr(pi).ptr(po).finish()).unwrap();
    let out: Vec<i32> = download(&m, po, 512);
    for b in 0..2 {
        let mut acc = 0;
        for i in 0..256 {
            assert_eq!(out[b * 256 + i], acc, "block {b} element {i}");
            acc += x[b * 256 + i];
        }
    }
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let (pf, ps) = (upload(&mut m, &xf), upload(&mut m, &[0f32; 2]));
    m.launch(&md, "block_sum", &cfg([2, 1, 1], [256, 1, 1]), &ParamBuilder::new().ptr(pf).ptr(ps).finish()).unwrap();
    let sums: Vec<f32> = download(&m, ps, 2);
    for b in 0..2 {
        assert_eq!(sums[b], xf[b * 256..(b + 1) * 256].iter().sum::<f32>());
    }
}

#[test]
fn tiled_matmul_matches_reference() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let (mm, nn, kk) = (32usize, 48usize, 64usize);
    let a: Vec<f32> = (0..mm * kk).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
    let b: Vec<f32> = (0..kk * nn).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
    let (pa, pb, pc) = (upload(&mut m, &a), upload(&mut m, &b), upload(&mut m, &vec![0f32; mm * nn]));
    let p = ParamBuilder::new().ptr(pa).ptr(pb).ptr(pc).i32(mm as i32).i32(nn as i32).i32(kk as i32).finish();
    m.launch(&md, "matmul_tiled", &cfg([(nn / 16) as u32, (mm / 16) as u32, 1], [16, 16, 1]), &p).unwrap();
    let c: Vec<f32> = download(&m, pc, mm * nn);
    for r in 0..mm {
        for col in 0..nn {
            let want: f32 = (0..kk).map(|k| a[r * kk + k] * b[k * nn + col]).sum();
            assert_eq!(c[r * nn + col], want, "C[{r},{col}]");
        }
    }
}

#[test]
fn softmax_rows_sum_to_one() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let (rows, n) = (6usize, 100usize);
    let x: Vec<f32> = (0..rows * n).map(|i| ((i * 31) % 17) as f32 * 0.25 - 2.0).collect();
    let (px, py) = (upload(&mut m, &x), upload(&mut m, &vec![0f32; rows * n]));
    let p = ParamBuilder::new().ptr(px).ptr(py).i32(rows as i32).i32(n as i32).finish();
    m.launch(&md, "softmax_rows", &cfg([2, 1, 1], [128, 1, 1]), &p).unwrap();
    let y: Vec<f32> = download(&m, py, rows * n);
    for r in 0..rows {
        let xr = &x[r * n..(r + 1) * n];
        let mx = xr.iter().cloned().fold(f32::MIN, f32::max);
        let s: f64 = xr.iter().map(|&v| ((v - mx) as f64).exp()).sum();
        for i in 0..n {
            let want = ((xr[i] - mx) as f64).exp() / s;
            assert!((y[r * n + i] as f64 - want).abs() < 1e-5, "row {r} col {i}: {} vs {want}", y[r * n + i]);
        }
    }
}

#[test]
fn local_array_and_noinline_call() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let input: Vec<i32> = (0..128 * 16).map(|i| i * 3 - 100).collect();
    let (pi, po) = (upload(&mut m, &input), upload(&mut m, &vec![0f32; 128]));
    let k = 5;
    m.launch(&md, "local_and_call", &cfg([1, 1, 1], [128, 1, 1]), &ParamBuilder::new().ptr(pi).ptr(po).i32(k).finish())
        .unwrap();
    let out: Vec<f32> = download(&m, po, 128);
    for t in 0..128 {
        let v = input[t * 16 + ((k as usize + t) & 15)] as f32;
        assert_eq!(out[t], v * k as f32 + 1.0, "thread {t}");
    }
}

#[test]
fn histogram_with_shared_and_global_atomics() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let n: usize = 10_000;
    let mut seed = 3;
    let data: Vec<u8> = (0..n).map(|_| lcg(&mut seed) as u8).collect();
    let (pd, pb) = (upload(&mut m, &data), upload(&mut m, &[0u32; 256]));
    m.launch(
        &md,
        "histogram",
        &cfg([4, 1, 1], [256, 1, 1]),
        &ParamBuilder::new().ptr(pd).ptr(pb).i32(n as i32).finish(),
    )
    .unwrap();
    let bins: Vec<u32> = download(&m, pb, 256);
    let mut want = [0u32; 256];
    for &d in &data {
        want[d as usize] += 1;
    }
    assert_eq!(bins, want.to_vec());
}

#[test]
fn mixed_precision_with_dynamic_shared_memory() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let a: Vec<u16> = (0..128).map(|i| half::bf16::from_f32(i as f32 * 0.5).to_bits()).collect();
    let b: Vec<u16> = (0..128).map(|i| half::f16::from_f32(1.0 - i as f32 * 0.25).to_bits()).collect();
    let (pa, pb, po) = (upload(&mut m, &a), upload(&mut m, &b), upload(&mut m, &[0f32; 128]));
    let c = LaunchConfig { grid: [1, 1, 1], block: [128, 1, 1], dynamic_smem: 512 };
    m.launch(&md, "mixed_precision", &c, &ParamBuilder::new().ptr(pa).ptr(pb).ptr(po).finish()).unwrap();
    let out: Vec<f32> = download(&m, po, 128);
    for i in 0..128 {
        let j = (i + 1) % 128;
        let v = j as f32 * 0.5 + (1.0 - j as f32 * 0.25);
        let want = half::bf16::from_f32(v).to_f32() + half::bf16::from_f32(v * 2.0).to_f32();
        assert_eq!(out[i], want, "element {i}");
    }
}

#[test]
fn race_free_kernels_are_bit_identical_for_any_thread_count() {
    let md = module();
    let (mm, nn, kk) = (64usize, 64usize, 48usize);
    let a: Vec<f32> = (0..mm * kk).map(|i| ((i * 7919) % 1000) as f32 / 333.0 - 1.5).collect();
    let b: Vec<f32> = (0..kk * nn).map(|i| ((i * 104_729) % 1000) as f32 / 777.0 - 0.6).collect();
    let x: Vec<f32> = (0..64 * 256).map(|i| ((i * 31) % 97) as f32 * 0.37 - 9.0).collect();
    let mut results = Vec::new();
    for threads in [1, 2, 3, 8] {
        let mut m = Machine::new(Arch::Sm80).with_threads(threads);
        let (pa, pb, pc) = (upload(&mut m, &a), upload(&mut m, &b), upload(&mut m, &vec![0f32; mm * nn]));
        let p = ParamBuilder::new().ptr(pa).ptr(pb).ptr(pc).i32(mm as i32).i32(nn as i32).i32(kk as i32).finish();
        m.launch(&md, "matmul_tiled", &cfg([4, 4, 1], [16, 16, 1]), &p).unwrap();
        let c: Vec<u32> = download(&m, pc, mm * nn);
        let (px, ps) = (upload(&mut m, &x), upload(&mut m, &[0f32; 64]));
        m.launch(&md, "block_sum", &cfg([64, 1, 1], [256, 1, 1]), &ParamBuilder::new().ptr(px).ptr(ps).finish())
            .unwrap();
        let s: Vec<u32> = download(&m, ps, 64);
        results.push((c, s));
    }
    for r in &results[1..] {
        assert!(r == &results[0]);
    }
}

#[test]
fn a_full_mask_shuffle_in_a_partial_warp_names_the_inlined_source_line() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let (px, py) = (upload(&mut m, &[1f32; 4 * 64]), upload(&mut m, &[0f32; 4 * 64]));
    let p = ParamBuilder::new().ptr(px).ptr(py).i32(4).i32(64).finish();
    let e = m.launch(&md, "softmax_rows", &cfg([1, 1, 1], [100, 1, 1]), &p).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("shfl.sync.bfly.b32") && msg.contains("do not exist"), "{msg}");
    assert!(msg.contains("sm_30_intrinsics.hpp:") && msg.contains("inlined at core_bench.cu:"), "{msg}");
}
