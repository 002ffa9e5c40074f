//! Every predefined identifier and special register of the PTX ISA for sm_80/sm_90 (PTX ISA 10
//! "Special Registers", 5.4.5 "Predefined Identifiers") reads as the value the crate docs give it:
//! hand-written PTX stores each one per thread, and the host checks it against that table.

mod isa_common;
use isa_common::HEADER;
use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder};

/// Where a value comes from, for the host-side expectation.
#[derive(Clone, Copy)]
enum Want {
    Const(u64),
    Tid(usize),
    Ntid(usize),
    Ctaid(usize),
    Nctaid(usize),
    Lane,
    Warp,
    LaneMask(fn(u32) -> u64),
    Smid,
    Nsmid,
    GridId,
    DynSmem,
    TotalSmem,
    /// A time register: checked for monotonicity separately.
    Time,
}

/// The registers read, their PTX type, and what each must read as.
fn table() -> Vec<(String, &'static str, Want)> {
    let mut t: Vec<(String, &'static str, Want)> = Vec::new();
    let mut add = |n: &str, ty: &'static str, w: Want| t.push((n.to_string(), ty, w));
    add("WARP_SZ", "u32", Want::Const(32));
    for (d, x) in ["x", "y", "z"].iter().enumerate() {
        add(&format!("%tid.{x}"), "u32", Want::Tid(d));
        add(&format!("%ntid.{x}"), "u32", Want::Ntid(d));
        add(&format!("%ctaid.{x}"), "u32", Want::Ctaid(d));
        add(&format!("%nctaid.{x}"), "u32", Want::Nctaid(d));
        // Every CTA is a 1x1x1 cluster.
        add(&format!("%clusterid.{x}"), "u32", Want::Ctaid(d));
        add(&format!("%nclusterid.{x}"), "u32", Want::Nctaid(d));
        add(&format!("%cluster_ctaid.{x}"), "u32", Want::Const(0));
        add(&format!("%cluster_nctaid.{x}"), "u32", Want::Const(1));
    }
    add("%laneid", "u32", Want::Lane);
    add("%warpid", "u32", Want::Warp);
    add("%nwarpid", "u32", Want::Const(64));
    add("%lanemask_eq", "u32", Want::LaneMask(|l| 1 << l));
    add("%lanemask_le", "u32", Want::LaneMask(|l| (2u64 << l) - 1));
    add("%lanemask_lt", "u32", Want::LaneMask(|l| (1u64 << l) - 1));
    add("%lanemask_ge", "u32", Want::LaneMask(|l| 0xffff_ffff & !((1u64 << l) - 1)));
    add("%lanemask_gt", "u32", Want::LaneMask(|l| 0xffff_ffff & !((2u64 << l) - 1)));
    add("%smid", "u32", Want::Smid);
    add("%nsmid", "u32", Want::Nsmid);
    add("%gridid", "u64", Want::GridId);
    for i in 0..8 {
        add(&format!("%pm{i}"), "u32", Want::Const(0));
        add(&format!("%pm{i}_64"), "u64", Want::Const(0));
    }
    for i in 0..32 {
        add(&format!("%envreg{i}"), "b32", Want::Const(0));
    }
    for r in ["begin", "end", "cap", "0", "1"] {
        add(&format!("%reserved_smem_offset_{r}"), "b32", Want::Const(0));
    }
    add("%total_smem_size", "u32", Want::TotalSmem);
    add("%aggr_smem_size", "u32", Want::TotalSmem);
    add("%dynamic_smem_size", "u32", Want::DynSmem);
    add("%current_graph_exec", "u64", Want::Const(0));
    add("%cluster_ctarank", "u32", Want::Const(0));
    add("%cluster_nctarank", "u32", Want::Const(1));
    add("%is_explicit_cluster", "pred", Want::Const(0));
    for n in ["%clock", "%clock_hi", "%globaltimer_lo", "%globaltimer_hi"] {
        add(n, "u32", Want::Time);
    }
    for n in ["%clock64", "%globaltimer"] {
        add(n, "u64", Want::Time);
    }
    t
}

/// A kernel storing each register of the table to out[thread * n + i] as a u64, then %clock64 and
/// %globaltimer once more, then `WARP_SZ` used as an arithmetic operand.
fn kernel_ptx(t: &[(String, &'static str, Want)]) -> String {
    let mut body = String::new();
    let slot = |i: usize| format!("    st.global.u64 [%rd3+{}], %rd4;\n", 8 * i);
    for (i, (name, ty, _)) in t.iter().enumerate() {
        match *ty {
            "u64" => body += &format!("    mov.u64 %rd4, {name};\n"),
            "pred" => body += &format!("    mov.pred %p1, {name};\n    selp.u64 %rd4, 1, 0, %p1;\n"),
            _ => body += &format!("    mov.{ty} %r1, {name};\n    cvt.u64.u32 %rd4, %r1;\n"),
        }
        body += &slot(i);
    }
    let n = t.len();
    body += "    mov.u64 %rd4, %clock64;\n";
    body += &slot(n);
    body += "    mov.u64 %rd4, %globaltimer;\n";
    body += &slot(n + 1);
    body += "    mov.u32 %r1, 10;\n    add.s32 %r1, %r1, WARP_SZ;\n    cvt.u64.u32 %rd4, %r1;\n";
    body += &slot(n + 2);
    format!(
        "{HEADER}
.visible .entry sregs(.param .u64 out)
{{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    .shared .align 4 .b8 stat[20];
    ld.param.u64 %rd1, [out];
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %ntid.y;
    mad.lo.s32 %r4, %tid.z, %r3, %tid.y;
    mad.lo.s32 %r4, %r4, %r2, %tid.x;
    mov.u32 %r5, %ctaid.y;
    mov.u32 %r6, %nctaid.x;
    mad.lo.s32 %r5, %r5, %r6, %ctaid.x;
    mul.lo.s32 %r6, %r2, %r3;
    mov.u32 %r7, %ntid.z;
    mul.lo.s32 %r6, %r6, %r7;
    mad.lo.s32 %r4, %r5, %r6, %r4;
    mul.wide.u32 %rd2, %r4, {};
    add.s64 %rd3, %rd1, %rd2;
{body}    ret;
}}
",
        8 * (n + 3)
    )
}

fn run(arch: Arch, grid: [u32; 3], block: [u32; 3], dyn_smem: u32, launches: u32) -> Vec<u64> {
    let t = table();
    let module = Module::parse(&kernel_ptx(&t)).unwrap_or_else(|e| panic!("{e}"));
    let mut m = Machine::new(arch);
    let threads = (grid.iter().product::<u32>() * block.iter().product::<u32>()) as usize;
    let bytes = threads * 8 * (t.len() + 3);
    let out = m.alloc(bytes).unwrap();
    let cfg = LaunchConfig { grid, block, dynamic_smem: dyn_smem };
    for _ in 0..launches {
        let r =
            m.launch(&module, "sregs", &cfg, &ParamBuilder::new().ptr(out).finish()).unwrap_or_else(|e| panic!("{e}"));
        r.assert_clean().unwrap();
    }
    let mut b = vec![0u8; bytes];
    m.read(out, &mut b).unwrap();
    b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn every_special_register_reads_as_documented() {
    let t = table();
    for (arch, nsm) in [(Arch::Sm80, 108u64), (Arch::Sm90, 132)] {
        let (grid, block, dyn_smem) = ([3u32, 2, 1], [20u32, 2, 2], 48u32);
        // The second launch on a machine has %gridid 2.
        let vals = run(arch, grid, block, dyn_smem, 2);
        let per = t.len() + 3;
        let threads_per_block = block.iter().product::<u32>();
        for (th, v) in vals.chunks_exact(per).enumerate() {
            let (b, tl) = (th as u32 / threads_per_block, th as u32 % threads_per_block);
            let ctaid = [b % grid[0], b / grid[0], 0];
            let tid = [tl % block[0], (tl / block[0]) % block[1], tl / (block[0] * block[1])];
            let lane = tl % 32;
            for (i, (name, _, want)) in t.iter().enumerate() {
                let expect = match *want {
                    Want::Const(c) => c,
                    Want::Tid(d) => tid[d] as u64,
                    Want::Ntid(d) => block[d] as u64,
                    Want::Ctaid(d) => ctaid[d] as u64,
                    Want::Nctaid(d) => grid[d] as u64,
                    Want::Lane => lane as u64,
                    Want::Warp => (tl / 32) as u64,
                    Want::LaneMask(f) => f(lane),
                    Want::Smid => b as u64 % nsm,
                    Want::Nsmid => nsm,
                    Want::GridId => 2,
                    Want::DynSmem => dyn_smem as u64,
                    // 20 static bytes, the dynamic part aligned to 16 after them.
                    Want::TotalSmem => 32 + dyn_smem as u64,
                    Want::Time => continue,
                };
                assert_eq!(v[i], expect, "{name} of block {b} thread {tl} on {arch:?}");
            }
            // Time: %clock64 and %globaltimer advance while the warp runs; the 32-bit halves agree.
            let at = |n: &str| v[t.iter().position(|x| x.0 == n).unwrap()];
            let (c0, c1, g0, g1) = (at("%clock64"), v[t.len()], at("%globaltimer"), v[t.len() + 1]);
            assert!(c0 < c1 && g0 < g1, "time must advance: clock {c0} -> {c1}, timer {g0} -> {g1}");
            assert!(at("%clock") < c0 && at("%clock_hi") == c0 >> 32, "%clock / %clock_hi vs %clock64 {c0}");
            assert!(at("%globaltimer_lo") < g0 && at("%globaltimer_hi") == g0 >> 32, "timer halves vs {g0}");
            assert_eq!(v[t.len() + 2], 42, "WARP_SZ as an add operand");
        }
    }
}

#[test]
fn smid_stays_below_nsmid_on_grids_larger_than_the_device() {
    let per = table().len() + 3;
    let smid = table().iter().position(|x| x.0 == "%smid").unwrap();
    let vals = run(Arch::Sm80, [250, 1, 1], [32, 1, 1], 0, 1);
    for (b, block) in vals.chunks_exact(per * 32).enumerate() {
        assert_eq!(block[smid], b as u64 % 108, "block {b}");
    }
}

#[test]
fn an_unknown_percent_name_is_still_an_undefined_name_at_parse_time() {
    for name in ["%envreg32", "%pm8", "%pm01", "%clusterid.w", "WARP_SIZE"] {
        let ptx =
            format!("{HEADER}.visible .entry k()\n{{\n    .reg .b32 %r<2>;\n    mov.u32 %r1, {name};\n    ret;\n}}\n");
        let e = Module::parse(&ptx).unwrap_err();
        assert!(e.to_string().contains(name), "{name}: {e}");
    }
}
