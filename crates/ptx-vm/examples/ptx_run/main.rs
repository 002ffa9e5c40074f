//! The VM as a command-line tool: loads a `.ptx` file, allocates and fills buffers from simple
//! arguments, launches one kernel (parameters checked against its declaration) and prints the
//! report: instruction counts, the main counters, the sanitizer's findings and chosen buffers.
//!
//! ```text
//! cargo run --release -p ptx-vm --example ptx_run -- crates/ptx-vm/tests/ptx/saxpy.ptx saxpy_f32 \
//!     --grid 4 --block 256 --param i32:1000 --param f32:2.5 --param 'buf:f32:1000:rand(1)' \
//!     --param buf:f32:1000:iota:out --print-out 4
//! ```
//!
//! `ptx_run FILE.ptx` alone lists the file's kernels with their declared parameters (offset, size,
//! type), which is what the `--param` list must match.
//!
//! The argument syntax is described in `spec.rs` (and printed on any argument error). What the
//! kernel printed with `printf` is printed too, each line marked `printf| `. When the launch fails
//! while running (a fault, trap, deadlock), the partial report comes first (the blocks before the
//! fault and the faulting block up to it: counters, findings, printf output), then the error. The
//! exit status is 0 for a clean launch, 1 when the sanitizer found something, 2 for a bad argument
//! or a failed launch.

mod spec;

use ptx_vm::{Arch, InstClass, LaunchReport};
use spec::Spec;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", spec::USAGE);
        return ExitCode::SUCCESS;
    }
    if let [file] = args.as_slice() {
        return list_kernels(file);
    }
    let spec = match spec::parse_words(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ptx_run: {e}\n{}", spec::USAGE);
            return ExitCode::from(2);
        }
    };
    let ptx = match std::fs::read_to_string(&spec.ptx) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ptx_run: cannot read {}: {e}", spec.ptx);
            return ExitCode::from(2);
        }
    };
    match spec::run_vm_keep(&spec, &ptx, Arch::Sm80) {
        Ok(run) => {
            print!("{}", report(&spec, &run.report, &run.buffers));
            if run.report.sanitizer.as_ref().is_some_and(|s| !s.is_clean()) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            if let Some(partial) = &e.partial {
                println!("the launch failed; partial report (blocks before the fault, the failing block up to it):");
                print!("{}", report(&spec, partial, &[]));
            }
            eprintln!("ptx_run: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints each kernel of a PTX file with its parameter layout.
fn list_kernels(file: &str) -> ExitCode {
    let module = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| ptx_vm::Module::parse(&t).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("ptx_run: {file}: {e}");
            return ExitCode::from(2);
        }
    };
    for k in module.kernel_names() {
        println!("{k}");
        for (i, p) in module.params(k).unwrap_or_default().iter().enumerate() {
            println!("  param {i} {:<28} offset {:>3} size {:>3} {}", p.name, p.offset, p.size, p.type_name());
        }
    }
    ExitCode::SUCCESS
}

/// The text the tool prints for a launch: `buffers` are the final bytes to show (none after a
/// failed launch).
fn report(spec: &Spec, r: &LaunchReport, buffers: &[Vec<u8>]) -> String {
    let [gx, gy, gz] = spec.grid;
    let [bx, by, bz] = spec.block;
    let mut s = format!(
        "{} on the PTX VM: grid ({gx},{gy},{gz}) block ({bx},{by},{bz}) dynamic smem {} B\n\
         instructions: {} thread, {} warp\n",
        spec.kernel, spec.smem, r.thread_instructions, r.warp_instructions
    );
    if let Some(c) = &r.counters {
        let classes: Vec<String> = InstClass::ALL
            .iter()
            .map(|&k| (k, c.class(k).threads))
            .filter(|&(_, n)| n > 0)
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        s += &format!("  by class (thread): {}\n", classes.join(", "));
        s += &format!(
            "global: {} load requests ({} sectors), {} store requests ({} sectors); \
             unique bytes read {}, written {}\n",
            c.global_load_requests,
            c.global_load_sectors,
            c.global_store_requests,
            c.global_store_sectors,
            c.unique_bytes_read,
            c.unique_bytes_written
        );
        s += &format!(
            "shared: {} requests, {} wavefronts ({} from bank conflicts); barriers {}; mma flops {}\n",
            c.shared_requests,
            c.shared_wavefronts,
            c.bank_conflicts(),
            c.barriers,
            c.mma_flops + c.mma_tf32_flops
        );
    }
    match &r.sanitizer {
        None => s += "sanitizer: off (--no-sanitizer)\n",
        Some(f) => {
            s += &f.to_string();
            if !s.ends_with('\n') {
                s.push('\n');
            }
        }
    }
    s += &spec::printf_text(r);
    for (i, (b, bytes)) in spec.buffers().iter().zip(buffers).enumerate() {
        if b.out {
            let shown = spec::show_elems(b.elem, bytes, spec.print_out);
            s += &format!("buffer {i} ({} x {}): {shown}\n", b.elem.name(), b.count);
        }
    }
    s
}
