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

/// The hand-written sm_90a kernels that the ISA tests share with the differential check
/// (tests/cuda/vm_diff.txt runs them on a Hopper GPU too).
pub const SM90_PTX: &str = include_str!("../ptx/isa_sm90.ptx");

/// The text of kernel `name` in `ptx`: from its `.visible .entry name(` line to the `}` that
/// closes it at the start of a line.
pub fn entry<'a>(ptx: &'a str, name: &str) -> &'a str {
    let start = ptx.find(&format!(".visible .entry {name}(")).unwrap_or_else(|| panic!("no kernel {name}"));
    let end = ptx[start..].find("\n}\n").unwrap_or_else(|| panic!("kernel {name} is not closed")) + start + 3;
    &ptx[start..end]
}

/// A module of one kernel `k`: kernel `name` of tests/ptx/isa_sm90.ptx with, for each (`region`,
/// `text`), the lines between its `// region {` line and the next `// }` line replaced by `text`.
/// The file's kernels are the templates of the tests' variants, so that each is written once.
pub fn sm90_kernel(name: &str, regions: &[(&str, &str)]) -> String {
    let header_end = SM90_PTX.find(".address_size 64\n").expect("the file's header") + ".address_size 64\n".len();
    let header: String =
        SM90_PTX[..header_end].lines().filter(|l| !l.starts_with("//")).map(|l| format!("{l}\n")).collect();
    let mut text = entry(SM90_PTX, name).replacen(&format!(".entry {name}("), ".entry k(", 1);
    for (region, with) in regions {
        let open = format!("    // {region} {{\n");
        let start = text.find(&open).unwrap_or_else(|| panic!("kernel {name} has no `// {region} {{` region"));
        let close = text[start..].find("    // }\n").expect("the region is closed") + start;
        text.replace_range(start + open.len()..close, with);
    }
    header + &text
}
