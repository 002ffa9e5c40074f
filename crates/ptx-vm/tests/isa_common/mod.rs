//! Helpers shared by the tests/isa_*.rs files: one-warp launches of hand-written PTX with
//! u32 arrays in and out.

#![allow(dead_code)]

use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder};

/// The PTX header every hand-written test module starts with.
pub const HEADER: &str = ".version 8.0\n.target sm_80\n.address_size 64\n";

/// xorshift64*: small and seedable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    /// Uniform in [-1, 1).
    pub fn signed_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

pub fn parse(ptx: &str) -> Module {
    Module::parse(ptx).unwrap_or_else(|e| panic!("parse failed: {e}\n{ptx}"))
}

/// Runs `kernel` with one u64 pointer parameter per entry of `inputs` (each uploaded as u32
/// words) followed by one per output (each `out_words` u32 words, poisoned with `poison`), then
/// `extra` u32 parameters. Returns the outputs.
// Every argument is one plain fact of the launch; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn run_u32(
    ptx: &str,
    kernel: &str,
    grid: u32,
    block: u32,
    inputs: &[&[u32]],
    outputs: &[usize],
    extra: &[u32],
    poison: u8,
) -> Vec<Vec<u32>> {
    let module = parse(ptx);
    let mut m = Machine::new(Arch::Sm80);
    let mut pb = ParamBuilder::new();
    for inp in inputs {
        let bytes: Vec<u8> = inp.iter().flat_map(|w| w.to_le_bytes()).collect();
        let p = m.alloc(bytes.len().max(4)).unwrap();
        m.write(p, &bytes).unwrap();
        pb = pb.ptr(p);
    }
    let mut outs = Vec::new();
    for &n in outputs {
        let p = m.alloc(4 * n.max(1)).unwrap();
        m.memset(p, poison, 4 * n).unwrap();
        pb = pb.ptr(p);
        outs.push((p, n));
    }
    for &e in extra {
        pb = pb.u32(e);
    }
    let params = pb.finish();
    let cfg = LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_smem: 0 };
    m.launch(&module, kernel, &cfg, &params).unwrap_or_else(|e| panic!("launch of {kernel} failed: {e}"));
    outs.iter()
        .map(|&(p, n)| {
            let mut b = vec![0u8; 4 * n];
            m.read(p, &mut b).unwrap();
            b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
        })
        .collect()
}
