//! `ldmatrix.sync.aligned.m8n8{.x1,.x2,.x4}{.trans}.shared.b16` on the VM against the PTX ISA
//! (PTX ISA 9.0 §9.7.14.5.15 "ldmatrix"): threads 0-7 give the row addresses of matrix 0,
//! 8-15 of matrix 1, 16-23 of matrix 2, 24-31 of matrix 3 (only those of the matrices loaded are
//! used); register m of lane l holds, from matrix m, row l / 4, columns 2 (l % 4) and
//! 2 (l % 4) + 1 (low half first); `.trans` delivers the transposed matrix instead.

mod isa_common;
use isa_common::{run_u32, HEADER};

fn ptx(num: usize, trans: bool) -> String {
    let regs: Vec<String> = (0..num).map(|i| format!("%x{i}")).collect();
    let stores: String = (0..num).map(|i| format!("    st.global.b32 [%rd9+{}], %x{i};\n", 4 * i)).collect();
    format!(
        "{HEADER}
.visible .entry ldmatrix_test(.param .u64 p_img, .param .u64 p_off, .param .u64 p_out)
{{
    .shared .align 16 .b8 smem[512];
    .reg .b32 %r<10>;
    .reg .b32 %x<4>;
    .reg .b64 %rd<12>;
    ld.param.u64 %rd1, [p_img];
    ld.param.u64 %rd2, [p_off];
    ld.param.u64 %rd3, [p_out];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    cvta.to.global.u64 %rd3, %rd3;
    mov.u32 %r1, %tid.x;
    // Each lane copies 16 bytes of the image into shared memory.
    mul.wide.u32 %rd4, %r1, 16;
    add.s64 %rd5, %rd1, %rd4;
    ld.global.v4.b32 {{%r2, %r3, %r4, %r5}}, [%rd5];
    mov.u32 %r6, smem;
    shl.b32 %r7, %r1, 4;
    add.s32 %r7, %r6, %r7;
    st.shared.v4.b32 [%r7], {{%r2, %r3, %r4, %r5}};
    bar.sync 0;
    mul.wide.u32 %rd6, %r1, 4;
    add.s64 %rd7, %rd2, %rd6;
    ld.global.u32 %r8, [%rd7];
    add.s32 %r9, %r6, %r8;
    ldmatrix.sync.aligned.m8n8.x{num}{tr}.shared.b16 {{{regs}}}, [%r9];
    add.s64 %rd9, %rd3, %rd4;
{stores}    ret;
}}
",
        tr = if trans { ".trans" } else { "" },
        regs = regs.join(", "),
    )
}

#[test]
fn ldmatrix_x1_x2_x4_with_and_without_trans_match_isa_layout() {
    // Logical row lr = 8 * matrix + row is stored at slot perm(lr) of 16 bytes, so that the lane
    // -> address -> row mapping is exercised, not just the identity.
    let perm = |lr: usize| (lr * 11 + 5) % 32;
    let val = |m: usize, r: usize, c: usize| (0x1000 * (m + 1) + 0x10 * r + c) as u16;
    let mut img = vec![0u32; 128];
    for lr in 0..32 {
        let (m, r) = (lr / 8, lr % 8);
        for c in (0..8).step_by(2) {
            img[perm(lr) * 4 + c / 2] = val(m, r, c) as u32 | (val(m, r, c + 1) as u32) << 16;
        }
    }
    for num in [1usize, 2, 4] {
        for trans in [false, true] {
            // Lanes whose addresses the instruction does not use point at slot 0 (valid, wrong).
            let off: Vec<u32> = (0..32).map(|l| if l < 8 * num { (perm(l) * 16) as u32 } else { 0 }).collect();
            let out = run_u32(&ptx(num, trans), "ldmatrix_test", 1, 32, &[&img, &off], &[128], &[], 0xee);
            let out = &out[0];
            for l in 0..32 {
                for m in 0..4 {
                    let got = out[l * 4 + m];
                    if m >= num {
                        assert_eq!(got, 0xeeee_eeee, "x{num} lane {l} wrote register {m}");
                        continue;
                    }
                    let (i, j) = (l / 4, 2 * (l % 4));
                    let want = if trans {
                        val(m, j, i) as u32 | (val(m, j + 1, i) as u32) << 16
                    } else {
                        val(m, i, j) as u32 | (val(m, i, j + 1) as u32) << 16
                    };
                    assert_eq!(got, want, "x{num} trans={trans}: lane {l} reg {m} = {got:#010x}, want {want:#010x}");
                }
            }
        }
    }
}

/// `stmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16` (sm_90, PTX ISA 9.0 §9.7.14.5.16
/// "stmatrix"): the inverse of ldmatrix. Lane l's register m is written to matrix m, row l / 4,
/// columns 2 (l % 4) and 2 (l % 4) + 1 (transposed with `.trans`); lanes 8m..8m+7 give the
/// row addresses of matrix m.
#[test]
fn stmatrix_x1_x2_x4_with_and_without_trans_match_isa_layout() {
    use ptx_vm::{Arch, LaunchConfig, Machine, ParamBuilder};
    let perm = |lr: usize| (lr * 13 + 7) % 32;
    for num in [1usize, 2, 4] {
        for trans in [false, true] {
            let regs: Vec<String> = (0..num).map(|i| format!("%x{i}")).collect();
            let loads: String = (0..num).map(|i| format!("    ld.global.b32 %x{i}, [%rd5+{}];\n", 4 * i)).collect();
            let ptx = format!(
                ".version 8.0\n.target sm_90\n.address_size 64\n
.visible .entry stmatrix_test(.param .u64 p_regs, .param .u64 p_off, .param .u64 p_out)
{{
    .shared .align 16 .b8 smem[512];
    .reg .b32 %r<10>;
    .reg .b32 %x<4>;
    .reg .b64 %rd<12>;
    ld.param.u64 %rd1, [p_regs];
    ld.param.u64 %rd2, [p_off];
    ld.param.u64 %rd3, [p_out];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    cvta.to.global.u64 %rd3, %rd3;
    mov.u32 %r1, %tid.x;
    mov.u32 %r6, smem;
    // Clear this lane's 16 bytes of shared memory first.
    shl.b32 %r7, %r1, 4;
    add.s32 %r7, %r6, %r7;
    mov.b32 %r2, 0;
    st.shared.v4.b32 [%r7], {{%r2, %r2, %r2, %r2}};
    bar.sync 0;
    mul.wide.u32 %rd4, %r1, 16;
    add.s64 %rd5, %rd1, %rd4;
{loads}    mul.wide.u32 %rd6, %r1, 4;
    add.s64 %rd7, %rd2, %rd6;
    ld.global.u32 %r8, [%rd7];
    add.s32 %r9, %r6, %r8;
    stmatrix.sync.aligned.m8n8.x{num}{tr}.shared.b16 [%r9], {{{regs}}};
    bar.sync 0;
    ld.shared.v4.b32 {{%r2, %r3, %r4, %r5}}, [%r7];
    add.s64 %rd9, %rd3, %rd4;
    st.global.v4.b32 [%rd9], {{%r2, %r3, %r4, %r5}};
    ret;
}}
",
                tr = if trans { ".trans" } else { "" },
                regs = regs.join(", "),
            );
            // Register m of lane l holds two distinct tags.
            let tag = |l: usize, m: usize, h: usize| (0x100 * (m + 1) + 2 * l + h) as u16;
            let reg_words: Vec<u8> = (0..32)
                .flat_map(|l| {
                    (0..4).flat_map(move |m| (tag(l, m, 0) as u32 | (tag(l, m, 1) as u32) << 16).to_le_bytes())
                })
                .collect();
            let off: Vec<u8> = (0..32)
                .flat_map(|l| {
                    let o = if l < 8 * num { perm(l) * 16 } else { 0 };
                    (o as u32).to_le_bytes()
                })
                .collect();
            let module = isa_common::parse(&ptx);
            let mut m = Machine::new(Arch::Sm90);
            let rp = m.alloc(reg_words.len()).unwrap();
            m.write(rp, &reg_words).unwrap();
            let op = m.alloc(off.len()).unwrap();
            m.write(op, &off).unwrap();
            let out = m.alloc(512).unwrap();
            m.memset(out, 0xee, 512).unwrap();
            let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
            let params = ParamBuilder::new().ptr(rp).ptr(op).ptr(out).finish();
            m.launch(&module, "stmatrix_test", &cfg, &params).unwrap_or_else(|e| panic!("x{num} trans={trans}: {e}"));
            let mut smem = vec![0u8; 512];
            m.read(out, &mut smem).unwrap();
            let elem =
                |slot: usize, c: usize| u16::from_le_bytes([smem[slot * 16 + 2 * c], smem[slot * 16 + 2 * c + 1]]);
            // Expected image: element (r, c) of matrix m comes from the lane and half that
            // holds it in the ISA's fragment layout.
            let mut written = [false; 32];
            for mat in 0..num {
                for r in 0..8 {
                    let slot = perm(8 * mat + r);
                    written[slot] = true;
                    for c in 0..8 {
                        let (fr, fc) = if trans { (c, r) } else { (r, c) };
                        let want = tag(4 * fr + fc / 2, mat, fc % 2);
                        assert_eq!(elem(slot, c), want, "x{num} trans={trans}: matrix {mat} row {r} col {c}");
                    }
                }
            }
            for (slot, w) in written.iter().enumerate() {
                if !w {
                    assert!(
                        smem[slot * 16..slot * 16 + 16].iter().all(|&b| b == 0),
                        "x{num} trans={trans}: slot {slot} written but no row maps there"
                    );
                }
            }
        }
    }
}
