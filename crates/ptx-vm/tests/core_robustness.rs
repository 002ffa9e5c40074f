//! Bad PTX is an error, never a panic: thousands of seeded mutations of real nvcc output (tokens
//! deleted or duplicated, lines swapped or dropped, numbers replaced by extreme values, the file cut
//! short) go through `Module::parse`, and every launch of a mutated module that does parse either
//! runs or returns an error.

mod isa_common;

use isa_common::Rng;
use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder};

const SOURCES: [&str; 5] = [
    include_str!("ptx/saxpy.ptx"),
    include_str!("ptx/warp_softmax.ptx"),
    include_str!("ptx/block_reduce_scan.ptx"),
    include_str!("ptx/gemm_bf16.ptx"),
    include_str!("ptx/sanitizer_cases.ptx"),
];

const EXTREMES: [&str; 8] = ["0", "-1", "4294967296", "18446744073709551616", "0f7FC00000", "%r999999", "[", "}"];

/// One random edit of `ptx`.
fn mutate(rng: &mut Rng, ptx: &str) -> String {
    let mut lines: Vec<String> = ptx.lines().map(str::to_string).collect();
    let n = lines.len();
    if n == 0 {
        // A second edit of a file an earlier one cut to nothing: nothing left to pick from.
        return ptx.to_string();
    }
    let pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    match rng.next_u32() % 6 {
        0 => {
            let i = pick(rng, n);
            lines.remove(i);
        }
        1 => {
            let (i, j) = (pick(rng, n), pick(rng, n));
            lines.swap(i, j);
        }
        2 => {
            let i = pick(rng, n);
            let dup = lines[i].clone();
            lines.insert(pick(rng, n), dup);
        }
        3 => {
            // Replace one whitespace-separated token of a line.
            let i = pick(rng, n);
            let mut toks: Vec<String> = lines[i].split_whitespace().map(str::to_string).collect();
            if !toks.is_empty() {
                let t = pick(rng, toks.len());
                toks[t] = EXTREMES[pick(rng, EXTREMES.len())].to_string();
                lines[i] = toks.join(" ");
            }
        }
        4 => {
            // Delete one token.
            let i = pick(rng, n);
            let mut toks: Vec<&str> = lines[i].split_whitespace().collect();
            if !toks.is_empty() {
                toks.remove(pick(rng, toks.len()));
                lines[i] = toks.join(" ");
            }
        }
        _ => {
            let cut = pick(rng, ptx.len().max(1));
            let cut = (0..=cut).rev().find(|&c| ptx.is_char_boundary(c)).unwrap_or(0);
            return ptx[..cut].to_string();
        }
    }
    lines.join("\n")
}

#[test]
fn mutated_ptx_is_an_error_or_runs_never_a_panic() {
    let seed = std::env::var("PTX_VM_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("seed {seed} (PTX_VM_TEST_SEED replays it)");
    let mut rng = Rng(seed | 1);
    let (mut parsed, mut rejected, mut launched) = (0, 0, 0);
    for round in 0..3000 {
        let src = SOURCES[round % SOURCES.len()];
        let mut ptx = mutate(&mut rng, src);
        if round % 3 == 0 {
            ptx = mutate(&mut rng, &ptx);
        }
        let outcome = std::panic::catch_unwind(|| Module::parse(&ptx));
        let module = match outcome {
            Err(_) => panic!("seed {seed}, round {round}: Module::parse panicked on:\n{ptx}"),
            Ok(Err(e)) => {
                assert!(!e.to_string().is_empty());
                rejected += 1;
                continue;
            }
            Ok(Ok(m)) => m,
        };
        parsed += 1;
        // Launch a few parsed mutants with small, well-formed arguments: they may fault, deadlock
        // or loop, but they must report it, not panic. A low instruction limit keeps loops short.
        if parsed % 10 != 0 {
            continue;
        }
        let names: Vec<String> = module.kernel_names().iter().map(|s| s.to_string()).collect();
        for name in names {
            let size = module.param_size(&name).unwrap_or(0);
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut m = Machine::new(Arch::Sm80).with_block_instruction_limit(200_000).with_threads(1);
                let buf = m.alloc(1 << 16).ok()?;
                m.memset(buf, 0, 1 << 16).ok()?;
                // Every 8-byte slot a pointer to the buffer (as a u32 it reads as a small count).
                let mut params = ParamBuilder::new();
                for _ in 0..size.div_ceil(8) {
                    params = params.ptr(buf);
                }
                let mut bytes = params.finish();
                bytes.truncate(size);
                let cfg = LaunchConfig { grid: [2, 1, 1], block: [64, 1, 1], dynamic_smem: 0 };
                Some(m.launch(&module, &name, &cfg, &bytes).map(|_| ()))
            }));
            assert!(run.is_ok(), "seed {seed}, round {round}: launching {name} panicked on:\n{ptx}");
            launched += 1;
        }
    }
    eprintln!("{parsed} mutants parsed, {rejected} rejected with an error, {launched} launches");
    assert!(rejected > 0 && parsed > 0, "the mutations must exercise both outcomes");
}
