//! VM tests of the `kernels/common` building blocks through `kernels/selftest/blocks.cu`: the
//! mma/ldmatrix fragment layouts, cp.async zero-fill, the swizzled tile (no bank conflicts) and the
//! online softmax with its quad reductions, each against a plain CPU computation.

use bytemuck::{Pod, Zeroable};
use half::{bf16, f16};

use crate::device::{kernels, Device, LaunchDims};
use crate::dtype::Float;

/// `sk::BlocksTestParams` in blocks.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct BlocksTestParams {
    a: u64,
    b: u64,
    s: u64,
    c: u64,
    m: u64,
    l: u64,
    b_rows: i32,
    cols: i32,
    scale_log2: f32,
    pad: u32,
}

/// Small integers (exact in bf16/f16 and in every fp32 partial sum), distinct per position.
fn value(i: usize, salt: usize) -> f64 {
    ((i * 7 + salt * 13) % 9) as f64 - 4.0
}

fn check<T: Float>(b_rows: usize, cols: usize) {
    let dev = Device::vm();
    let a: Vec<T> = (0..16 * 64).map(|i| T::from_f64(value(i, 1))).collect();
    let b: Vec<T> = (0..b_rows * 64).map(|i| T::from_f64(value(i, 2))).collect();
    let (da, db) = (dev.upload(&a).unwrap(), dev.upload(&b).unwrap());
    let mut s = dev.alloc_zeros::<f32>(256).unwrap();
    let mut c = dev.alloc_zeros::<f32>(16 * 64).unwrap();
    let mut m = dev.alloc_zeros::<f32>(16).unwrap();
    let mut l = dev.alloc_zeros::<f32>(16).unwrap();
    let scale_log2 = 0.125 * std::f32::consts::LOG2_E;
    let (pa, pb) = (dev.ptr("a", &da.view()).unwrap().addr, dev.ptr("b", &db.view()).unwrap().addr);
    let params = BlocksTestParams {
        a: pa,
        b: pb,
        s: dev.ptr_mut("s", &mut s.view_mut()).unwrap().addr,
        c: dev.ptr_mut("c", &mut c.view_mut()).unwrap().addr,
        m: dev.ptr_mut("m", &mut m.view_mut()).unwrap().addr,
        l: dev.ptr_mut("l", &mut l.view_mut()).unwrap().addr,
        b_rows: b_rows as i32,
        cols: cols as i32,
        scale_log2,
        pad: 0,
    };
    let dims = LaunchDims { grid: [1, 1, 1], block: [128, 1, 1], dynamic_smem: 0 };
    let kernel = format!("selftest_blocks_{}", T::NAME);
    dev.launch(&kernels::SELFTEST_BLOCKS, &kernel, dims, &params).unwrap();
    let report = dev.vm_last_launch().unwrap();
    let counters = report.counters.unwrap();
    assert_eq!(counters.bank_conflicts(), 0, "swizzled cp.async and ldmatrix are conflict-free");

    // What the zero-fill promises: B's missing rows and every column >= cols read as 0.
    let av = |r: usize, k: usize| if k < cols { a[r * 64 + k].to_f64() } else { 0.0 };
    let bv = |r: usize, k: usize| if r < b_rows && k < cols { b[r * 64 + k].to_f64() } else { 0.0 };
    let (s, c, m, l) =
        (dev.download(&s).unwrap(), dev.download(&c).unwrap(), dev.download(&m).unwrap(), dev.download(&l).unwrap());
    for i in 0..16 {
        for j in 0..16 {
            let want: f64 = (0..64).map(|k| av(i, k) * bv(j, k)).sum();
            assert_eq!(s[i * 16 + j] as f64, want, "{} S[{i}][{j}] (b_rows {b_rows}, cols {cols})", T::NAME);
        }
        for n in 0..64 {
            let want: f64 = (0..16).map(|k| av(i, k) * bv(k, n)).sum();
            assert_eq!(c[i * 64 + n] as f64, want, "{} C[{i}][{n}] (ldmatrix.trans)", T::NAME);
        }
        let row: Vec<f64> = (0..16).map(|j| s[i * 16 + j] as f64).collect();
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|x| ((x - mx) * scale_log2 as f64).exp2()).sum();
        assert_eq!(m[i] as f64, mx, "{} row max {i}", T::NAME);
        assert!((l[i] as f64 - sum).abs() <= 1e-5 * sum, "{} row sum {i}: {} vs {sum}", T::NAME, l[i]);
    }
}

#[test]
fn mma_ldmatrix_and_cp_async_blocks_compute_exact_products() {
    check::<bf16>(16, 64);
    check::<f16>(16, 64);
}

#[test]
fn cp_async_zero_fills_missing_rows_and_columns_without_reading_them() {
    // b holds only 5 rows (the sanitizer fails the launch on any read past them); 40 of 64 columns.
    check::<bf16>(5, 40);
    check::<f16>(11, 8);
}
