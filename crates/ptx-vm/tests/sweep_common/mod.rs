//! Helpers shared by the tests/sweep_*.rs files: buffers of plain values in and out of one
//! machine, outputs poisoned with 0xff so an element a kernel forgot to write cannot pass.

#![allow(dead_code)]

use ptx_vm::{Arch, LaunchConfig, LaunchReport, Machine, Module, ParamBuilder, VmError};

/// xorshift64*: small and seedable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Plain values that travel as little-endian bytes.
pub trait Pod: Copy {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

macro_rules! pod {
    ($($t:ty),*) => {$(
        impl Pod for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().unwrap())
            }
        }
    )*};
}
pod!(u8, u16, i32, u32, i64, u64, f32, f64);

pub fn module(ptx: &str) -> Module {
    Module::parse(ptx).unwrap_or_else(|e| panic!("parse: {e}"))
}

/// One machine with the sanitizer on.
pub struct Dev {
    pub m: Machine,
}

impl Dev {
    pub fn new() -> Dev {
        Dev { m: Machine::new(Arch::Sm80) }
    }
    pub fn upload<T: Pod>(&mut self, v: &[T]) -> u64 {
        let mut b = Vec::with_capacity(v.len() * T::SIZE);
        for &x in v {
            x.put(&mut b);
        }
        let p = self.m.alloc(b.len().max(8)).unwrap();
        self.m.write(p, &b).unwrap();
        p
    }
    /// `n` elements of poison (all bytes 0xff).
    pub fn poisoned<T: Pod>(&mut self, n: usize) -> u64 {
        let p = self.m.alloc((n * T::SIZE).max(8)).unwrap();
        self.m.memset(p, 0xff, n * T::SIZE).unwrap();
        p
    }
    pub fn download<T: Pod>(&self, p: u64, n: usize) -> Vec<T> {
        let mut b = vec![0u8; n * T::SIZE];
        self.m.read(p, &mut b).unwrap();
        b.chunks_exact(T::SIZE).map(T::get).collect()
    }
    pub fn try_launch(
        &mut self,
        md: &Module,
        kernel: &str,
        grid: u32,
        block: u32,
        params: ParamBuilder,
    ) -> Result<LaunchReport, VmError> {
        let cfg = LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_smem: 0 };
        let params = params.finish();
        assert_eq!(md.param_size(kernel), Some(params.len()), "parameter block of {kernel}");
        self.m.launch(md, kernel, &cfg, &params)
    }
    /// Launches and requires a clean sanitizer report.
    pub fn launch(&mut self, md: &Module, kernel: &str, grid: u32, block: u32, params: ParamBuilder) -> LaunchReport {
        let r = self.try_launch(md, kernel, grid, block, params).unwrap_or_else(|e| panic!("launch of {kernel}: {e}"));
        r.assert_clean().unwrap_or_else(|e| panic!("{kernel}: {e}"));
        r
    }
}
