//! Shared-memory addresses are 32 bits wide (PTX ISA 6.4.1, state spaces; ptxas computes them in
//! 32-bit registers), so `[reg+imm]` with a 32-bit base wraps modulo 2^32. nvcc relies on it: in a
//! non-inlined function that gets a shared pointer, it may keep `address - imm` in a register,
//! "negative" as u32 when the array starts at shared offset 0, and let the immediate bring it back.
//! Found by the sampler's bitonic sort when its helper was `__noinline__`.

use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder, VmError};

const HEADER: &str = ".version 8.0\n.target sm_80\n.address_size 64\n";

/// Each of 32 threads stores `3 * tid + 1` through `[buf + 4 * tid - bias + bias]` (the base kept
/// as a 32-bit register that underflows for small tid), adds `tid` with `atom.shared` through the
/// same form, reads back its neighbour's word through it after a barrier and stores that to out.
fn wrap_ptx(bias: u32, off: i64) -> String {
    format!(
        "{HEADER}
.visible .entry wrap(.param .u64 pout)
{{
    .reg .b32 %r<12>;
    .reg .b64 %rd<4>;
    .shared .align 4 .b8 buf[128];
    ld.param.u64 %rd1, [pout];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, buf;
    shl.b32 %r3, %r1, 2;
    add.s32 %r4, %r2, %r3;
    sub.s32 %r5, %r4, {bias};
    mad.lo.s32 %r6, %r1, 3, 1;
    st.shared.u32 [%r5+{off}], %r6;
    atom.shared.add.u32 %r7, [%r5+{off}], %r1;
    bar.sync 0;
    add.s32 %r8, %r1, 1;
    and.b32 %r8, %r8, 31;
    shl.b32 %r8, %r8, 2;
    add.s32 %r9, %r2, %r8;
    sub.s32 %r9, %r9, {bias};
    ld.shared.u32 %r10, [%r9+{off}];
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r10;
    ret;
}}"
    )
}

fn run(ptx: &str) -> Result<Vec<u32>, VmError> {
    let module = Module::parse(ptx).unwrap_or_else(|e| panic!("parse failed: {e}\n{ptx}"));
    let mut m = Machine::new(Arch::Sm80);
    let out = m.alloc(128).unwrap();
    m.memset(out, 0xdd, 128).unwrap();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
    m.launch(&module, "wrap", &cfg, &ParamBuilder::new().ptr(out).finish())?;
    let mut b = vec![0u8; 128];
    m.read(out, &mut b).unwrap();
    Ok(b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect())
}

fn expected() -> Vec<u32> {
    (0..32u32).map(|t| (t + 1) % 32).map(|n| 3 * n + 1 + n).collect()
}

#[test]
fn a_32_bit_base_plus_its_offset_wraps_modulo_2_pow_32() {
    // buf is at shared offset 0, so every base is below zero until the offset is added.
    for bias in [2048u32, 4, 1 << 20] {
        let got = run(&wrap_ptx(bias, bias as i64)).unwrap_or_else(|e| panic!("bias {bias}: {e}"));
        assert_eq!(got, expected(), "bias {bias}");
    }
    // No wrap at all: the plain form still works.
    assert_eq!(run(&wrap_ptx(0, 0)).unwrap(), expected());
}

#[test]
fn a_wrapped_address_outside_shared_memory_is_still_an_error() {
    // The base underflows by 2048 and the offset adds back only 1024: the 32-bit address is
    // 2^32 - 1024 + 4 * tid, far outside the block's 128 bytes.
    let e = run(&wrap_ptx(2048, 1024)).expect_err("an out-of-range shared address must fail");
    let msg = e.to_string();
    assert!(msg.contains("shared"), "{msg}");
}

#[test]
fn a_64_bit_global_address_used_as_shared_is_not_masked_into_range() {
    // A global pointer (64-bit, above 2^32) in an explicit .shared access is a bug the VM reports,
    // not an address it truncates into the window.
    let ptx = format!(
        "{HEADER}
.visible .entry wrap(.param .u64 pout)
{{
    .reg .b32 %r<4>;
    .reg .b64 %rd<4>;
    .shared .align 4 .b8 buf[128];
    ld.param.u64 %rd1, [pout];
    cvta.to.global.u64 %rd1, %rd1;
    ld.shared.u32 %r1, [%rd1+4];
    st.global.u32 [%rd1], %r1;
    ret;
}}"
    );
    let e = run(&ptx).expect_err("a global address in ld.shared must fail");
    assert!(e.to_string().contains("shared"), "{e}");
}
