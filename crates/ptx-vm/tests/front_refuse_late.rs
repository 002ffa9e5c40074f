//! An instruction the VM does not implement refuses only the kernels that can reach it, when they
//! are launched (tests/cuda/front_refuse_late.cu: `tex1Dfetch` becomes `tex.1d` inside a
//! non-inlined device function that one kernel calls): the module parses, the other kernel runs,
//! and the launch of the texture kernel fails naming the instruction, its PTX line and its source.

mod isa_common;
use isa_common::HEADER;
use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder, VmError};

const PTX: &str = include_str!("ptx/front_refuse_late.ptx");

fn cfg(n: usize) -> LaunchConfig {
    LaunchConfig { grid: [n.div_ceil(64) as u32, 1, 1], block: [64, 1, 1], dynamic_smem: 0 }
}

#[test]
fn only_the_kernel_that_reaches_the_texture_fetch_is_refused_at_launch() {
    let md = Module::parse(PTX).unwrap_or_else(|e| panic!("the module must parse: {e}"));
    assert_eq!(md.unsupported("scale_clean"), Some(vec![]));
    let n = 100;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
    let mut m = Machine::new(Arch::Sm80);
    let xd = m.alloc(4 * n).unwrap();
    m.write(xd, &x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let yd = m.alloc(4 * n).unwrap();
    let params = ParamBuilder::new().i32(n as i32).ptr(xd).ptr(yd).finish();
    let r = m.launch(&md, "scale_clean", &cfg(n), &params).unwrap_or_else(|e| panic!("{e}"));
    r.assert_clean().unwrap();
    let mut b = vec![0u8; 4 * n];
    m.read(yd, &mut b).unwrap();
    let y: Vec<f32> = b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(y, x.iter().map(|v| 3.0 * v).collect::<Vec<_>>());

    let tex_line = PTX.lines().position(|l| l.trim_start().starts_with("tex.1d")).unwrap() as u32 + 1;
    let params = ParamBuilder::new().i32(n as i32).u64(1).ptr(yd).finish();
    let e = m.launch(&md, "scale_from_texture", &cfg(n), &params).unwrap_err();
    let VmError::Unsupported { what, line, source } = &e else { panic!("expected Unsupported, got {e}") };
    assert!(what.contains("tex.1d.v4.f32.s32") && what.contains("scale_from_texture"), "{e}");
    assert_eq!(*line, tex_line, "{e}");
    // The fetch is inlined from CUDA's texture header into fetch() at front_refuse_late.cu:16.
    let source = source.as_deref().unwrap_or("");
    assert!(source.starts_with("texture_indirect_functions.h:"), "{e}");
    assert!(source.ends_with("inlined at front_refuse_late.cu:16"), "{e}");
    assert_eq!(md.unsupported("scale_from_texture"), Some(vec![e.clone()]));
    let msg = e.to_string();
    assert!(msg.contains(&format!("line {tex_line}")) && msg.contains("front_refuse_late.cu:16"), "{msg}");
    // The refusal changed nothing: the clean kernel still runs.
    m.launch(&md, "scale_clean", &cfg(n), &ParamBuilder::new().i32(n as i32).ptr(xd).ptr(yd).finish()).unwrap();
}

#[test]
fn external_calls_and_recursion_refuse_only_their_kernels() {
    let ptx = format!(
        "{HEADER}
.extern .func (.param .b32 r) ext(.param .b32 a);
.func (.param .b32 r) rec(.param .b32 a)
{{
    .reg .b32 %r<3>;
    ld.param.b32 %r1, [a];
    {{
    .param .b32 p;
    st.param.b32 [p], %r1;
    .param .b32 q;
    call.uni (q), rec, (p);
    ld.param.b32 %r2, [q];
    }}
    st.param.b32 [r], %r2;
    ret;
}}
.visible .entry calls_ext()
{{
    .reg .b32 %r<3>;
    mov.u32 %r1, 1;
    {{
    .param .b32 p;
    st.param.b32 [p], %r1;
    .param .b32 q;
    call.uni (q), ext, (p);
    ld.param.b32 %r2, [q];
    }}
    ret;
}}
.visible .entry calls_rec()
{{
    .reg .b32 %r<3>;
    mov.u32 %r1, 1;
    {{
    .param .b32 p;
    st.param.b32 [p], %r1;
    .param .b32 q;
    call.uni (q), rec, (p);
    ld.param.b32 %r2, [q];
    }}
    ret;
}}
.visible .entry fine()
{{
    ret;
}}
"
    );
    let md = Module::parse(&ptx).unwrap_or_else(|e| panic!("{e}"));
    let c = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
    let mut m = Machine::new(Arch::Sm80);
    m.launch(&md, "fine", &c, &[]).unwrap();
    let e = m.launch(&md, "calls_ext", &c, &[]).unwrap_err();
    assert!(matches!(&e, VmError::Unsupported { what, .. } if what.contains("`ext`")), "{e}");
    let e = m.launch(&md, "calls_rec", &c, &[]).unwrap_err();
    assert!(matches!(&e, VmError::Unsupported { what, .. } if what.contains("recursive")), "{e}");
    assert_eq!(md.unsupported("fine"), Some(vec![]));
    assert_eq!(md.unsupported("no_such_kernel"), None);
}

#[test]
fn an_unsupported_instruction_with_a_misspelt_name_is_still_a_parse_error() {
    let ptx = format!(
        "{HEADER}.visible .entry k()\n{{\n    .reg .b32 %r<2>;\n    vadd.s32.s32.s32 %r1, %r1, %r9;\n    ret;\n}}\n"
    );
    let e = Module::parse(&ptx).unwrap_err();
    assert!(matches!(&e, VmError::Undefined { name, line: 7 } if name == "%r9"), "{e}");
}
