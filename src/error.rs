//! The crate's one error type.

use std::fmt;

/// Everything that can go wrong in scaling-kernels. Each message names the argument or resource and
/// what was expected, so that a failed call explains itself without a debugger.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An argument has the wrong shape, length, alignment or value.
    InvalidArgument {
        /// The argument, as named in the function's signature (e.g. `"lse_a"`).
        name: &'static str,
        /// What the function expects of it.
        expected: String,
        /// What it was given.
        got: String,
    },
    /// No CUDA driver library (libcuda) could be loaded on this machine.
    CudaUnavailable {
        /// Why: the library is missing, or the driver reported an error at initialisation.
        reason: String,
    },
    /// `Device::cuda(ordinal)` named a GPU that does not exist.
    NoSuchDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// How many GPUs the driver reports.
        count: usize,
    },
    /// The kernel binaries contain nothing this GPU can run.
    NoBinaryForGpu {
        /// The kernel module that failed to load.
        module: &'static str,
        /// The GPU's compute capability, e.g. (7, 5).
        compute_capability: (i32, i32),
        /// The SASS architectures the fatbin was built for (empty when only PTX was embedded).
        archs_built: &'static [&'static str],
    },
    /// The driver cannot load the PTX: it is older than the toolkit that emitted it.
    DriverTooOld {
        /// The kernel module that failed to load.
        module: &'static str,
    },
    /// A buffer or view belongs to a different backend or device than the one launching.
    WrongDevice {
        /// The argument that lives elsewhere.
        name: &'static str,
        /// Where it lives and where it was expected.
        detail: String,
    },
    /// The CUDA driver reported an error.
    Cuda {
        /// What the crate was doing.
        during: String,
        /// The driver's error.
        error: String,
    },
    /// The PTX VM reported an error (a fault, a deadlock, an unsupported instruction, ...).
    Vm {
        /// What the crate was doing.
        during: String,
        /// The VM's error, with kernel, block, thread and source line where it has them.
        error: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub(crate) fn invalid(name: &'static str, expected: impl Into<String>, got: impl fmt::Display) -> Self {
        Error::InvalidArgument { name, expected: expected.into(), got: got.to_string() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { name, expected, got } => {
                write!(f, "{name}: expected {expected}, got {got}")
            }
            Error::CudaUnavailable { reason } => write!(f, "CUDA is not available: {reason}"),
            Error::NoSuchDevice { ordinal, count } => {
                write!(f, "ordinal: expected a GPU ordinal below {count} (the GPUs the driver reports), got {ordinal}")
            }
            Error::NoBinaryForGpu { module, compute_capability: (major, minor), archs_built } => {
                if archs_built.is_empty() {
                    write!(
                        f,
                        "kernel module {module}: the GPU (compute capability {major}.{minor}) cannot run its PTX \
                         (built for compute_80, so sm_80 or newer is required); the crate was built without nvcc, \
                         so no SASS is embedded"
                    )
                } else {
                    write!(
                        f,
                        "kernel module {module}: no binary for this GPU (compute capability {major}.{minor}); built for {} \
                         plus compute_80 PTX, so sm_80 or newer is required",
                        archs_built.join(", ")
                    )
                }
            }
            Error::DriverTooOld { module } => write!(
                f,
                "kernel module {module}: the CUDA driver is older than the PTX (ISA 9.0, CUDA 13.0) it must load; \
                 a driver of release R580 or newer is required"
            ),
            Error::WrongDevice { name, detail } => write!(f, "{name}: {detail}"),
            Error::Cuda { during, error } => write!(f, "CUDA error while {during}: {error}"),
            Error::Vm { during, error } => write!(f, "PTX VM error while {during}: {error}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_errors_explain_themselves() {
        let e = Error::NoBinaryForGpu {
            module: "attention_merge",
            compute_capability: (7, 5),
            archs_built: &["sm_80", "sm_90a"],
        };
        assert_eq!(
            e.to_string(),
            "kernel module attention_merge: no binary for this GPU (compute capability 7.5); built for sm_80, sm_90a \
             plus compute_80 PTX, so sm_80 or newer is required"
        );
        let e = Error::NoBinaryForGpu { module: "m", compute_capability: (7, 0), archs_built: &[] };
        assert!(e.to_string().contains("built without nvcc"), "{e}");
        let e = Error::DriverTooOld { module: "m" };
        assert!(e.to_string().contains("R580 or newer"), "{e}");
        let e = Error::NoSuchDevice { ordinal: 3, count: 1 };
        assert_eq!(e.to_string(), "ordinal: expected a GPU ordinal below 1 (the GPUs the driver reports), got 3");
    }
}
