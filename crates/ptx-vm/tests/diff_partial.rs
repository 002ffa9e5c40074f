//! What a failed launch keeps of its `printf` output (tests/cuda/diff_partial.cu): every block
//! prints, then block 2 prints once more and traps. [`Machine::last_report`] must hold the output
//! of the blocks before the fault and of the faulting block up to the trap, and nothing of the
//! blocks after it, whatever the host thread count.

use ptx_vm::*;

const PTX: &str = include_str!("ptx/diff_partial.ptx");

#[test]
fn a_trap_after_printf_keeps_the_output_up_to_the_fault() {
    let md = Module::parse(PTX).unwrap_or_else(|e| panic!("parse: {e}"));
    let cfg = LaunchConfig { grid: [5, 1, 1], block: [64, 1, 1], dynamic_smem: 0 };
    let mut want = String::new();
    for b in 0..2 {
        want += &format!("block {b} warp 0 before\nblock {b} warp 1 before\nblock {b} after\n");
    }
    want += "block 2 warp 0 before\nblock 2 warp 1 before\nblock 2 about to trap\n";
    for threads in [1, 3] {
        let mut m = Machine::new(Arch::Sm80).with_threads(threads);
        let out = m.alloc(4 * 5 * 64).unwrap();
        let params = ParamBuilder::new().ptr(out).i32(2).finish();
        let e = m.launch(&md, "diff_print_then_trap", &cfg, &params).unwrap_err();
        assert!(matches!(e, VmError::Runtime { block: [2, 0, 0], .. }), "threads {threads}: {e}");
        let r = m.last_report().expect("a partial report after the trap");
        assert_eq!(r.printf, want, "threads {threads}");
        assert_eq!(r.printf_dropped, 0);
    }
    // The same kernel without a trap prints every block's lines: the partial output above is a
    // prefix of the full one, not a different order.
    let mut m = Machine::new(Arch::Sm80);
    let out = m.alloc(4 * 5 * 64).unwrap();
    let r = m.launch(&md, "diff_print_then_trap", &cfg, &ParamBuilder::new().ptr(out).i32(-1).finish()).unwrap();
    assert!(r.printf.starts_with(&want[..want.find("block 2 about").unwrap()]), "{}", r.printf);
    assert_eq!(r.printf.lines().count(), 15, "{}", r.printf);
}
