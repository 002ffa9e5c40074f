//! The compiled kernel modules that build.rs embeds, one per `kernels/<family>/<name>.cu`.

/// One compiled `.cu` file: its PTX (what the VM runs, and what a GPU JITs when no SASS fits) and,
/// when nvcc was present at build time, a fatbin with SASS for [`KernelModule::archs`].
#[derive(Debug)]
pub struct KernelModule {
    /// `<family>_<file stem>`, e.g. `attention_merge`.
    pub name: &'static str,
    /// PTX for `compute_80` (or `compute_90a` for Hopper-only files).
    pub ptx: &'static str,
    /// The fatbin (SASS per arch plus PTX), or `None` when the crate embedded the committed PTX.
    pub fatbin: Option<&'static [u8]>,
    /// The SASS architectures in the fatbin, e.g. `["sm_80", "sm_86", "sm_89", "sm_90a"]`.
    pub archs: &'static [&'static str],
}

/// The generated constants: one `static` per module (`ATTENTION_MERGE`, ...), [`ALL`], and [`NVCC`].
pub mod generated {
    use super::KernelModule;
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

pub use generated::{ALL, NVCC};
