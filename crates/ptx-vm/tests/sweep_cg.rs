//! Cooperative groups' tiled partitions, coalesced groups under divergence and labeled partitions
//! (tests/cuda/sweep_cg.cu) on the VM, each result column checked against a CPU model of the groups.

// Lane- and element-indexed loops read as the kernels do.
#![allow(clippy::needless_range_loop)]

mod sweep_common;

use ptx_vm::ParamBuilder;
use sweep_common::{module, Dev, Rng};

const BLOCK: usize = 128;

/// The kernel's columns, in order (see the O(...) lines of sweep_cg.cu).
const COLUMNS: [&str; 23] = [
    "reduce16.plus",
    "reduce8.greater",
    "reduce4.less",
    "inclusive_scan16",
    "exclusive_scan8",
    "shfl16(3)",
    "shfl_down8(1)",
    "shfl_up8(2)",
    "shfl_xor4(1)",
    "any16(v>90)",
    "all16(v>5)",
    "ballot16(even)",
    "match_any16(v%4)",
    "t16.thread_rank",
    "t16.meta_group_rank",
    "t8.num_threads",
    "tiled_partition(8).thread_rank",
    "coalesced.rank",
    "coalesced.size",
    "coalesced.sum",
    "labeled.rank",
    "labeled.size",
    "labeled.sum",
];

fn expected(v: &[i32]) -> Vec<Vec<i32>> {
    let tile = |t: usize, n: usize| -> &[i32] { &v[t / n * n..t / n * n + n] };
    let col = |f: &dyn Fn(usize) -> i32| (0..BLOCK).map(f).collect::<Vec<i32>>();
    let warp = |t: usize| t / 32 * 32..t / 32 * 32 + 32;
    vec![
        col(&|t| tile(t, 16).iter().sum()),
        col(&|t| *tile(t, 8).iter().max().unwrap()),
        col(&|t| *tile(t, 4).iter().min().unwrap()),
        col(&|t| tile(t, 16)[..=t % 16].iter().sum()),
        col(&|t| tile(t, 8)[..t % 8].iter().sum()),
        col(&|t| tile(t, 16)[3]),
        // Out-of-range sources keep the caller's own value.
        col(&|t| if t % 8 + 1 < 8 { v[t + 1] } else { v[t] }),
        col(&|t| if t % 8 >= 2 { v[t - 2] } else { v[t] }),
        col(&|t| v[t ^ 1]),
        col(&|t| tile(t, 16).iter().any(|&x| x > 90) as i32),
        col(&|t| tile(t, 16).iter().all(|&x| x > 5) as i32),
        col(&|t| tile(t, 16).iter().enumerate().map(|(i, &x)| ((x % 2 == 0) as i32) << i).sum()),
        col(&|t| tile(t, 16).iter().enumerate().map(|(i, &x)| ((x % 4 == v[t] % 4) as i32) << i).sum()),
        col(&|t| (t % 16) as i32),
        col(&|t| (t / 16) as i32),
        col(&|_| 8),
        col(&|t| (t % 8) as i32),
        // Coalesced group: the lanes of the warp with v % 3 == 0, ranked by lane; -1 elsewhere.
        col(&|t| if v[t] % 3 == 0 { warp(t).filter(|&u| u < t && v[u] % 3 == 0).count() as i32 } else { -1 }),
        col(&|t| if v[t] % 3 == 0 { warp(t).filter(|&u| v[u] % 3 == 0).count() as i32 } else { -1 }),
        col(&|t| if v[t] % 3 == 0 { warp(t).filter(|&u| v[u] % 3 == 0).map(|u| v[u]).sum() } else { -1 }),
        // Labeled partition of the warp by v % 5.
        col(&|t| warp(t).filter(|&u| u < t && v[u] % 5 == v[t] % 5).count() as i32),
        col(&|t| warp(t).filter(|&u| v[u] % 5 == v[t] % 5).count() as i32),
        col(&|t| warp(t).filter(|&u| v[u] % 5 == v[t] % 5).map(|u| v[u]).sum()),
    ]
}

#[test]
fn tiled_partitions_collectives_and_coalesced_groups_match_cpu_model() {
    let mut rng = Rng(0xc6);
    let v: Vec<i32> = (0..BLOCK).map(|_| rng.below(100) as i32).collect();
    let mut d = Dev::new();
    let md = module(include_str!("ptx/sweep_cg.ptx"));
    let ip = d.upload(&v);
    let op = d.poisoned::<i32>(COLUMNS.len() * BLOCK);
    d.launch(&md, "sweep_cg_tiles", 1, BLOCK as u32, ParamBuilder::new().ptr(ip).ptr(op));
    let out: Vec<i32> = d.download(op, COLUMNS.len() * BLOCK);
    let want = expected(&v);
    for (k, name) in COLUMNS.iter().enumerate() {
        for t in 0..BLOCK {
            assert_eq!(out[k * BLOCK + t], want[k][t], "{name}, thread {t} (v = {})", v[t]);
        }
    }
}
