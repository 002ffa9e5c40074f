//! The committed PTX in kernels/prebuilt/ must match what nvcc builds from kernels/ today.

use ptx_vm::code_without_debug_info;
use scaling_kernels::device::{MODULES, NVCC};

#[test]
fn prebuilt_ptx_is_fresh() {
    let Some(nvcc) = NVCC else {
        eprintln!("SKIPPED: the crate was built from the prebuilt PTX (no nvcc), so there is nothing to compare");
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels/prebuilt");
    let mut stale = Vec::new();
    for m in MODULES {
        let path = dir.join(format!("{}.ptx", m.name));
        match std::fs::read_to_string(&path) {
            Ok(committed) if code_without_debug_info(&committed) == code_without_debug_info(m.ptx) => {}
            Ok(_) => stale.push(format!("{} differs from what {nvcc} builds", path.display())),
            Err(e) => stale.push(format!("{}: {e}", path.display())),
        }
    }
    let names: Vec<String> = MODULES.iter().map(|m| format!("{}.ptx", m.name)).collect();
    for entry in std::fs::read_dir(&dir).expect("kernels/prebuilt exists").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".ptx") && !names.contains(&name) {
            stale.push(format!("{name} has no kernel source any more"));
        }
    }
    assert!(stale.is_empty(), "run scripts/regen-prebuilt and commit:\n{}", stale.join("\n"));
}
