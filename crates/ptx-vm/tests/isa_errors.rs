//! An instruction the VM does not implement must fail with an error that names the instruction
//! and its PTX line, at parse time or at launch, never run silently.

mod isa_common;
use isa_common::HEADER;
use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder};

#[test]
fn unsupported_instruction_is_reported_with_name_and_line() {
    // `istypep` is valid PTX (PTX ISA 9.0 §9.7.10 "Texture Instructions": istypep) that the VM
    // has no reason to support.
    let ptx = format!(
        "{HEADER}
.visible .entry uses_istypep(.param .u64 p)
{{
    .reg .pred %p1;
    .reg .b64 %rd1;
    ld.param.u64 %rd1, [p];
    istypep.texref %p1, %rd1;
    ret;
}}
"
    );
    let line = ptx.lines().position(|l| l.contains("istypep.texref")).unwrap() + 1;
    let err = match Module::parse(&ptx) {
        Err(e) => e,
        Ok(module) => {
            let mut m = Machine::new(Arch::Sm80);
            let params = ParamBuilder::new().u64(0).finish();
            let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };
            match m.launch(&module, "uses_istypep", &cfg, &params) {
                Err(e) => e,
                Ok(_) => panic!("istypep ran without an error"),
            }
        }
    };
    let msg = err.to_string();
    assert!(msg.contains("istypep"), "error does not name the instruction: {msg}");
    assert!(msg.contains(&format!("line {line}")), "error does not name PTX line {line}: {msg}");
}
