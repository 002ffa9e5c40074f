//! Many CUDA intrinsics compiled by nvcc (tests/ptx/core_zoo.cu), checked against Rust.

// Lane loops mirror the kernels' thread indexing.
#![allow(clippy::needless_range_loop)]

use ptx_vm::*;

const PTX: &str = include_str!("ptx/core_zoo.ptx");

fn words(m: &Machine, p: u64, n: usize) -> Vec<u32> {
    let mut b = vec![0u8; n * 4];
    m.read(p, &mut b).unwrap();
    b.chunks(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn upload_words(m: &mut Machine, w: &[u32]) -> u64 {
    let p = m.alloc(w.len() * 4).unwrap();
    let b: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
    m.write(p, &b).unwrap();
    p
}

fn one_warp() -> LaunchConfig {
    LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 }
}

fn zoo_int_reference(x: u32, y: u32) -> u32 {
    let sx = x as i32;
    let yi = y as i32;
    let ffs = |v: u32| if v == 0 { 0 } else { v.trailing_zeros() + 1 };
    let yx = ((y as u64) << 32) | x as u64;
    let mut r = 0u32;
    let t = x.reverse_bits()
        ^ x.leading_zeros()
        ^ ffs(y)
        ^ x.count_ones()
        ^ ((x & 0xffff) | (y << 16))
        ^ ((yx << 7) >> 32) as u32
        ^ (yx >> 32) as u32;
    r = r.wrapping_add(t);
    let d = y | 1;
    let t = (x / d)
        .wrapping_add(x % d)
        .wrapping_add(sx.wrapping_div(d as i32) as u32)
        .wrapping_add(((x as u64 * y as u64) >> 32) as u32)
        .wrapping_add(((sx as i64 * yi as i64) >> 32) as u32)
        .wrapping_add(x.abs_diff(y).wrapping_add(3));
    r = r.wrapping_add(t);
    let t = (((x as u64) * (y as u64)) >> 7) as u32;
    let t = t.wrapping_add(((sx as i64 * y as i64) % 1_000_003) as u32);
    r = r.wrapping_add(t);
    let ffsll = |v: u64| if v == 0 { 0 } else { v.trailing_zeros() + 1 };
    let t = (sx.abs_diff(yi).wrapping_add(1))
        .wrapping_add(x.min(y))
        .wrapping_add(sx.max(yi) as u32)
        .wrapping_add(sx.wrapping_abs() as u32)
        .wrapping_add(ffsll((x as u64) << 20));
    r = r.wrapping_add(t);
    let w = ((x as u64) << 32) | y as u64;
    let t = ((w / (x | 1) as u64) as u32)
        .wrapping_add((w % 97) as u32)
        .wrapping_add(w.count_ones())
        .wrapping_add(w.leading_zeros())
        .wrapping_add((w.reverse_bits() >> 13) as u32);
    r = r.wrapping_add(t);
    let hadd = ((sx as i64 + yi as i64) >> 1) as i32;
    let rhadd = ((sx as i64 + 3 + 1) >> 1) as i32;
    r.wrapping_add(hadd.wrapping_add(rhadd) as u32)
}

#[test]
fn integer_intrinsics_match_their_definitions() {
    let md = Module::parse(PTX).unwrap();
    let mut m = Machine::new(Arch::Sm80);
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut input: Vec<u32> = (0..64)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 32) as u32
        })
        .collect();
    input[0] = 0;
    input[1] = u32::MAX;
    input[33] = 0x8000_0000;
    let pi = upload_words(&mut m, &input);
    let po = m.alloc(32 * 4).unwrap();
    m.launch(&md, "zoo_int", &one_warp(), &ParamBuilder::new().ptr(pi).ptr(po).i32(0).finish()).unwrap();
    let out = words(&m, po, 32);
    for t in 0..32 {
        assert_eq!(
            out[t],
            zoo_int_reference(input[t], input[t + 32]),
            "thread {t}: x {:#x} y {:#x}",
            input[t],
            input[t + 32]
        );
    }
}

#[test]
fn warp_and_block_collectives_match_their_definitions() {
    let md = Module::parse(PTX).unwrap();
    let mut m = Machine::new(Arch::Sm80);
    let mut x: Vec<u32> = (0..32).map(|t| (t * 7 + 3) % 13).collect();
    x[31] = 0xc000_0000;
    let pi = upload_words(&mut m, &x);
    let po = m.alloc(32 * 4).unwrap();
    m.launch(&md, "zoo_warp", &one_warp(), &ParamBuilder::new().ptr(pi).ptr(po).finish()).unwrap();
    let out = words(&m, po, 32);
    let ballot = (0..32).filter(|&l| x[l] & 1 == 1).fold(0u32, |a, l| a | 1 << l);
    let any = x.iter().any(|&v| v > 5) as u32;
    let all = x.iter().all(|&v| v < 1000) as u32;
    let sum = x.iter().fold(0u32, |a, &v| a.wrapping_add(v));
    let max = *x.iter().max().unwrap();
    let or = x.iter().fold(0, |a, &v| a | v);
    let hi_all_equal = x.iter().all(|&v| v >> 30 == x[0] >> 30);
    let count2 = x.iter().filter(|&&v| v & 2 != 0).count() as u32;
    for l in 0..32 {
        let mut r = ballot ^ any ^ all ^ u32::MAX;
        let match_any = (0..32).filter(|&k| x[k] & 3 == x[l] & 3).fold(0u32, |a, k| a | 1 << k);
        r = r.wrapping_add(match_any).wrapping_add(sum).wrapping_add(max).wrapping_add(or);
        r = r.wrapping_add(if hi_all_equal { u32::MAX } else { 0 }).wrapping_add(hi_all_equal as u32);
        let up = if l >= 3 { x[l - 3] } else { x[l] };
        let down = if l % 16 + 2 < 16 { x[l + 2] } else { x[l] };
        r = r.wrapping_add(up).wrapping_add(down).wrapping_add(x[7]);
        r = r.wrapping_add(x[l ^ 2]).wrapping_add((l % 8) as u32);
        r = r.wrapping_add(count2).wrapping_add(x.iter().all(|&v| v < 100) as u32).wrapping_add(x.contains(&5) as u32);
        assert_eq!(out[l], r, "lane {l}");
    }
}

#[test]
fn memory_intrinsics_cp_async_vector_loads_and_atomics() {
    let md = Module::parse(PTX).unwrap();
    let mut m = Machine::new(Arch::Sm80).with_threads(2);
    let input: Vec<f32> = (0..256).map(|i| i as f32 * 0.5 - 7.0).collect();
    let pi = m.alloc(1024).unwrap();
    m.write(pi, &input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let po = m.alloc(64 * 4).unwrap();
    let pc = upload_words(&mut m, &[0, 0, 1000, 0, 0, 0, 0, 0]);
    let pf = m.alloc(4).unwrap();
    let pd = m.alloc(8).unwrap();
    let c = LaunchConfig { grid: [1, 1, 1], block: [64, 1, 1], dynamic_smem: 0 };
    m.launch(&md, "zoo_mem", &c, &ParamBuilder::new().ptr(pi).ptr(po).ptr(pc).ptr(pf).ptr(pd).finish()).unwrap();
    let out: Vec<f32> = words(&m, po, 64).into_iter().map(f32::from_bits).collect();
    for t in 0..64 {
        let v: f32 = (0..4).map(|i| input[(t ^ 1) * 4 + i]).sum();
        assert_eq!(out[t], v + input[t * 4] * 2.0, "thread {t}");
    }
    let cnt = words(&m, pc, 8);
    assert_eq!(&cnt[..4], &[64, 63, 3, 9]);
    assert!((1..=64).contains(&cnt[4]), "cas winner {}", cnt[4]);
    assert_eq!(&cnt[5..], &[0, 0, u32::MAX]);
    assert_eq!(f32::from_bits(words(&m, pf, 1)[0]), 32.0);
    let mut d = [0u8; 8];
    m.read(pd, &mut d).unwrap();
    assert_eq!(f64::from_le_bytes(d), 16.0);
}

#[test]
fn float_and_half_kernels_run_and_stay_finite() {
    let md = Module::parse(PTX).unwrap();
    let mut m = Machine::new(Arch::Sm80);
    let xs: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) * 0.13).collect();
    let pi = m.alloc(256).unwrap();
    m.write(pi, &xs.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let (po, pd) = (m.alloc(128).unwrap(), m.alloc(256).unwrap());
    m.launch(&md, "zoo_float", &one_warp(), &ParamBuilder::new().ptr(pi).ptr(po).ptr(pd).finish()).unwrap();
    let out = words(&m, po, 32);
    assert!(out.iter().all(|&b| f32::from_bits(b).is_finite()), "{out:x?}");
    let halves: Vec<u32> = (0..64).map(|i| 0x3c00_3f80 + (i as u32 % 7) * 0x0010_0010).collect();
    let (pa, pb) = (upload_words(&mut m, &halves), upload_words(&mut m, &halves));
    let ph = m.alloc(128).unwrap();
    m.launch(&md, "zoo_half", &one_warp(), &ParamBuilder::new().ptr(pa).ptr(pb).ptr(ph).finish()).unwrap();
    let out = words(&m, ph, 32);
    assert!(out.iter().all(|&b| f32::from_bits(b).is_finite()), "{out:x?}");
}
