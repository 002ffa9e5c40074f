//! Atomics under contention on the VM: 64 blocks of 256 threads update the same addresses, and
//! the results must be exact (PTX ISA 9.0 §9.7.13.5 "atom", §9.7.13.6 "red").

mod isa_common;
use isa_common::{parse, HEADER};
use ptx_vm::{Arch, LaunchConfig, Machine, ParamBuilder};

const BLOCKS: u32 = 64;
const THREADS: u32 = 256;

fn kernel() -> String {
    format!(
        "{HEADER}
// out[0]: atom.add.u32 counter; out[1]: atom.add.f32 sum of 1.0; out[2]: atom.max.s32;
// out[3]: counter incremented by an atom.cas loop; out[4..6]: red.add.u64 of the global thread
// ids; out[6]: sum over blocks of a shared-memory atom.add count. tickets[g]: the old value
// atom.add.u32 returned to global thread g.
.visible .entry atomics_test(.param .u64 pout, .param .u64 ptickets)
{{
    .shared .align 4 .u32 scount;
    .reg .b32 %r<20>;
    .reg .f32 %f<4>;
    .reg .pred %p<4>;
    .reg .b64 %rd<12>;
    ld.param.u64 %rd1, [pout];
    ld.param.u64 %rd2, [ptickets];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.u32 %r4, %r1, %r2, %r3;
    setp.eq.u32 %p1, %r3, 0;
    @%p1 st.shared.u32 [scount], 0;
    bar.sync 0;

    atom.global.add.u32 %r5, [%rd1], 1;
    mul.wide.u32 %rd3, %r4, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r5;

    atom.global.add.f32 %f1, [%rd1+4], 0f3F800000;

    // A value per thread with a unique maximum: (g * 7919) mod 16411 - 8000.
    mul.lo.u32 %r6, %r4, 7919;
    rem.u32 %r6, %r6, 16411;
    sub.s32 %r6, %r6, 8000;
    atom.global.max.s32 %r7, [%rd1+8], %r6;

CAS_LOOP:
    ld.volatile.global.u32 %r8, [%rd1+12];
    add.u32 %r9, %r8, 1;
    atom.global.cas.b32 %r10, [%rd1+12], %r8, %r9;
    setp.ne.u32 %p2, %r10, %r8;
    @%p2 bra CAS_LOOP;

    cvt.u64.u32 %rd5, %r4;
    red.global.add.u64 [%rd1+16], %rd5;

    atom.shared.add.u32 %r11, [scount], 1;
    bar.sync 0;
    @!%p1 bra DONE;
    ld.shared.u32 %r12, [scount];
    red.global.add.u32 [%rd1+24], %r12;
DONE:
    ret;
}}
"
    )
}

#[test]
fn atomics_under_contention_are_exact() {
    let total = (BLOCKS * THREADS) as u64;
    let module = parse(&kernel());
    let mut m = Machine::new(Arch::Sm80);
    // out[2] starts at i32::MIN for the max; everything else at 0.
    let init: Vec<u8> = [0u32, 0, i32::MIN as u32, 0, 0, 0, 0, 0].iter().flat_map(|w| w.to_le_bytes()).collect();
    let out = m.alloc(init.len()).unwrap();
    m.write(out, &init).unwrap();
    let tickets = m.alloc(4 * total as usize).unwrap();
    m.memset(tickets, 0xff, 4 * total as usize).unwrap();
    let params = ParamBuilder::new().ptr(out).ptr(tickets).finish();
    let cfg = LaunchConfig { grid: [BLOCKS, 1, 1], block: [THREADS, 1, 1], dynamic_smem: 0 };
    m.launch(&module, "atomics_test", &cfg, &params).unwrap_or_else(|e| panic!("{e}"));
    let mut b = vec![0u8; init.len()];
    m.read(out, &mut b).unwrap();
    let w = |i: usize| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
    assert_eq!(w(0) as u64, total, "atom.add.u32 count");
    assert_eq!(f32::from_bits(w(1)) as u64, total, "atom.add.f32 of 1.0 (exact below 2^24)");
    let want_max = (0..total as u32).map(|g| (g.wrapping_mul(7919) % 16411) as i32 - 8000).max().unwrap();
    assert_eq!(w(2) as i32, want_max, "atom.max.s32");
    assert_eq!(w(3) as u64, total, "atom.cas increment loop");
    let sum64 = w(4) as u64 | (w(5) as u64) << 32;
    assert_eq!(sum64, total * (total - 1) / 2, "red.add.u64 of thread ids");
    assert_eq!(w(6) as u64, total, "shared atom.add per block, summed");
    // The old values atom.add returned are a permutation of 0..total: no two threads saw the
    // same value.
    let mut t = vec![0u8; 4 * total as usize];
    m.read(tickets, &mut t).unwrap();
    let mut seen = vec![false; total as usize];
    for (g, c) in t.chunks_exact(4).enumerate() {
        let v = u32::from_le_bytes(c.try_into().unwrap()) as usize;
        assert!(v < total as usize, "thread {g} got ticket {v}");
        assert!(!seen[v], "ticket {v} handed out twice");
        seen[v] = true;
    }
}
