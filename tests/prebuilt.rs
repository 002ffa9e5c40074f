//! The committed PTX in kernels/prebuilt/ must match what nvcc builds from kernels/ today.

use scaling_kernels::device::{MODULES, NVCC};

/// The code of a PTX file: `.loc`/`.file` lines and `.section .debug_*` blocks dropped (they name
/// host paths, system-header line numbers and path hashes that vary between clones and machines) and
/// the per-path hashes of internal symbol names masked.
fn code_of(ptx: &str) -> Vec<String> {
    let mut in_debug = false;
    ptx.lines()
        .filter(|l| {
            let t = l.trim_start();
            if t.starts_with(".section") && t.contains(".debug_") {
                in_debug = true;
            }
            let keep = !in_debug && !t.starts_with(".loc") && !t.starts_with(".file") && !t.starts_with("//");
            if in_debug && t.starts_with('}') {
                in_debug = false;
            }
            keep
        })
        .map(|l| {
            let mut out = String::with_capacity(l.len());
            let mut rest = l;
            while let Some(i) = rest.find("_INTERNAL_") {
                out.push_str(&rest[..i + "_INTERNAL_".len()]);
                rest = &rest[i + "_INTERNAL_".len()..];
                let hex = rest.chars().take_while(|c| c.is_ascii_hexdigit()).count();
                out.push_str("########");
                rest = &rest[hex..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

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
            Ok(committed) if code_of(&committed) == code_of(m.ptx) => {}
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
