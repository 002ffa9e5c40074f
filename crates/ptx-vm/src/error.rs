//! The crate's one error type.

use std::fmt;

/// Where in the PTX (and the CUDA source, through `.loc`) something happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// 1-based line in the PTX text.
    pub ptx_line: u32,
    /// The source `file:line` of the innermost `.loc` in effect, if any.
    pub source: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PTX line {}", self.ptx_line)?;
        if let Some(s) = &self.source {
            write!(f, " ({s})")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong parsing, lowering or running PTX.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmError {
    /// The PTX text does not parse.
    Parse {
        /// PTX line of the offending token.
        line: u32,
        /// What was expected and what was found.
        message: String,
    },
    /// An instruction, modifier or directive the VM does not implement. A directive or declaration
    /// is refused by [`Module::parse`](crate::Module::parse); an instruction or external call only
    /// by the launch of a kernel that can reach it (see [`Module::unsupported`](crate::Module::unsupported)).
    Unsupported {
        /// The construct, e.g. `tex.2d.v4.f32.f32`, and for a launch the kernel that reaches it.
        what: String,
        /// PTX line where it appears.
        line: u32,
        /// The source `file:line` of the `.loc` in effect there, if any.
        source: Option<String>,
    },
    /// A name (register, variable, label, function, kernel) that is not declared.
    Undefined {
        /// The name.
        name: String,
        /// PTX line of the use (0 for a launch-time lookup).
        line: u32,
    },
    /// The launch configuration or parameters are invalid.
    Launch {
        /// The kernel.
        kernel: String,
        /// What is wrong.
        message: String,
    },
    /// A host-side memory operation (alloc/free/read/write) failed.
    Memory {
        /// What is wrong.
        message: String,
    },
    /// A fault while a kernel ran: out-of-bounds or misaligned access, trap, deadlock.
    Runtime {
        /// The kernel.
        kernel: String,
        /// The block index (x, y, z).
        block: [u32; 3],
        /// The thread index within the block (x, y, z), when one thread is at fault.
        thread: Option<[u32; 3]>,
        /// Where.
        at: Location,
        /// What happened.
        message: String,
    },
    /// A barrier or warp collective that can never complete.
    Deadlock {
        /// The kernel.
        kernel: String,
        /// The block index (x, y, z).
        block: [u32; 3],
        /// A one-line summary, then one line per group of warps stuck at the same place with the
        /// same lanes (`  warps 0-3,5 (lanes 0xffffffff) wait at barrier 0 (...): `bar.sync` at PTX
        /// line 120 (k.cu:33)`), and one per group of warps whose lanes exited.
        details: String,
    },
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::Parse { line, message } => write!(f, "PTX parse error at line {line}: {message}"),
            VmError::Unsupported { what, line, source } => {
                write!(f, "unsupported by the PTX VM at line {line}")?;
                if let Some(s) = source {
                    write!(f, " ({s})")?;
                }
                write!(f, ": {what}")
            }
            VmError::Undefined { name, line } => write!(f, "undefined name `{name}` at PTX line {line}"),
            VmError::Launch { kernel, message } => write!(f, "launch of `{kernel}`: {message}"),
            VmError::Memory { message } => write!(f, "device memory: {message}"),
            VmError::Runtime { kernel, block, thread, at, message } => {
                write!(f, "kernel `{kernel}` block ({},{},{})", block[0], block[1], block[2])?;
                if let Some(t) = thread {
                    write!(f, " thread ({},{},{})", t[0], t[1], t[2])?;
                }
                write!(f, " at {at}: {message}")
            }
            VmError::Deadlock { kernel, block, details } => {
                write!(f, "kernel `{kernel}` block ({},{},{}) deadlocked: {details}", block[0], block[1], block[2])
            }
        }
    }
}

impl std::error::Error for VmError {}

/// The crate's result alias.
pub type Result<T, E = VmError> = std::result::Result<T, E>;
