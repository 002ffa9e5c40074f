//! Typed device memory: owned [`Buffer`]s and borrowed [`View`]s / [`ViewMut`]s.
//!
//! On CUDA they are, or wrap without copying, cudarc's `CudaSlice` / `CudaView` / `CudaViewMut`, so
//! memory that candle, mistral.rs or your own cudarc code allocated is passed in as it is.

use std::ops::{Bound, RangeBounds};

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, DeviceRepr, ValidAsZeroBits};

use crate::error::{Error, Result};

/// An element type that can live in device memory: plain old data that is valid as all-zero bits.
pub trait Element: bytemuck::Pod + DeviceRepr + ValidAsZeroBits + Send + Sync + 'static {}
impl<T: bytemuck::Pod + DeviceRepr + ValidAsZeroBits + Send + Sync + 'static> Element for T {}

pub(crate) enum BufferRepr<T> {
    Cuda(CudaSlice<T>),
    Vm(super::vm::VmAlloc),
}

/// Owned device memory of `len` elements of `T`.
pub struct Buffer<T> {
    pub(crate) repr: BufferRepr<T>,
    pub(crate) len: usize,
}

pub(crate) enum ViewRepr<'a, T> {
    Cuda(CudaView<'a, T>),
    Vm { backend: &'a super::vm::VmBackend, addr: u64 },
}

/// A borrowed, read-only range of device memory (`&[T]` on the device).
pub struct View<'a, T> {
    pub(crate) repr: ViewRepr<'a, T>,
    pub(crate) len: usize,
}

pub(crate) enum ViewMutRepr<'a, T> {
    Cuda(CudaViewMut<'a, T>),
    Vm { backend: &'a super::vm::VmBackend, addr: u64 },
}

/// A borrowed, writable range of device memory (`&mut [T]` on the device).
pub struct ViewMut<'a, T> {
    pub(crate) repr: ViewMutRepr<'a, T>,
    pub(crate) len: usize,
}

/// Resolves a range against `len`, or names the argument and the valid bounds.
fn resolve(range: impl RangeBounds<usize>, len: usize) -> Result<(usize, usize)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    if start > end || end > len {
        return Err(Error::invalid("range", format!("start <= end <= {len} (the length)"), format!("{start}..{end}")));
    }
    Ok((start, end))
}

impl<T: Element> Buffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole buffer as a read-only view.
    pub fn view(&self) -> View<'_, T> {
        let repr = match &self.repr {
            BufferRepr::Cuda(s) => ViewRepr::Cuda(s.as_view()),
            BufferRepr::Vm(a) => ViewRepr::Vm { backend: &a.backend, addr: a.addr },
        };
        View { repr, len: self.len }
    }

    /// The whole buffer as a writable view.
    pub fn view_mut(&mut self) -> ViewMut<'_, T> {
        let len = self.len;
        let repr = match &mut self.repr {
            BufferRepr::Cuda(s) => ViewMutRepr::Cuda(s.as_view_mut()),
            BufferRepr::Vm(a) => ViewMutRepr::Vm { backend: &a.backend, addr: a.addr },
        };
        ViewMut { repr, len }
    }

    /// Elements `range` as a read-only view.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<View<'_, T>> {
        let (start, end) = resolve(range, self.len)?;
        let repr = match &self.repr {
            BufferRepr::Cuda(s) => ViewRepr::Cuda(s.slice(start..end)),
            BufferRepr::Vm(a) => ViewRepr::Vm { backend: &a.backend, addr: a.addr + (start * size_of::<T>()) as u64 },
        };
        Ok(View { repr, len: end - start })
    }

    /// Elements `range` as a writable view.
    pub fn slice_mut(&mut self, range: impl RangeBounds<usize>) -> Result<ViewMut<'_, T>> {
        let (start, end) = resolve(range, self.len)?;
        let repr = match &mut self.repr {
            BufferRepr::Cuda(s) => ViewMutRepr::Cuda(s.slice_mut(start..end)),
            BufferRepr::Vm(a) => {
                ViewMutRepr::Vm { backend: &a.backend, addr: a.addr + (start * size_of::<T>()) as u64 }
            }
        };
        Ok(ViewMut { repr, len: end - start })
    }

    /// The cudarc slice inside, when this buffer lives on a CUDA device.
    pub fn as_cuda(&self) -> Option<&CudaSlice<T>> {
        match &self.repr {
            BufferRepr::Cuda(s) => Some(s),
            BufferRepr::Vm(_) => None,
        }
    }

    /// Gives the cudarc slice back, when this buffer lives on a CUDA device.
    pub fn into_cuda(self) -> Option<CudaSlice<T>> {
        match self.repr {
            BufferRepr::Cuda(s) => Some(s),
            BufferRepr::Vm(_) => None,
        }
    }
}

impl<T: Element> From<CudaSlice<T>> for Buffer<T> {
    /// Wraps a cudarc allocation without copying.
    fn from(s: CudaSlice<T>) -> Self {
        let len = s.len();
        Buffer { repr: BufferRepr::Cuda(s), len }
    }
}

impl<'a, T: Element> View<'a, T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements `range` of this view (relative to it), as a narrower view.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<View<'_, T>> {
        let (start, end) = resolve(range, self.len)?;
        let repr = match &self.repr {
            ViewRepr::Cuda(v) => ViewRepr::Cuda(v.slice(start..end)),
            ViewRepr::Vm { backend, addr } => ViewRepr::Vm { backend, addr: addr + (start * size_of::<T>()) as u64 },
        };
        Ok(View { repr, len: end - start })
    }
}

impl<'a, T: Element> From<CudaView<'a, T>> for View<'a, T> {
    /// Wraps a cudarc view without copying.
    fn from(v: CudaView<'a, T>) -> Self {
        let len = v.len();
        View { repr: ViewRepr::Cuda(v), len }
    }
}

impl<'a, T: Element> From<&'a Buffer<T>> for View<'a, T> {
    fn from(b: &'a Buffer<T>) -> Self {
        b.view()
    }
}

impl<'a, T: Element> ViewMut<'a, T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements `range` of this view (relative to it), as a narrower writable view.
    pub fn slice_mut(&mut self, range: impl RangeBounds<usize>) -> Result<ViewMut<'_, T>> {
        let (start, end) = resolve(range, self.len)?;
        let repr = match &mut self.repr {
            ViewMutRepr::Cuda(v) => ViewMutRepr::Cuda(v.slice_mut(start..end)),
            ViewMutRepr::Vm { backend, addr } => {
                ViewMutRepr::Vm { backend, addr: *addr + (start * size_of::<T>()) as u64 }
            }
        };
        Ok(ViewMut { repr, len: end - start })
    }

    /// A read-only view of the same memory.
    pub fn as_view(&self) -> View<'_, T> {
        let repr = match &self.repr {
            ViewMutRepr::Cuda(v) => ViewRepr::Cuda(v.as_view()),
            ViewMutRepr::Vm { backend, addr } => ViewRepr::Vm { backend, addr: *addr },
        };
        View { repr, len: self.len }
    }
}

impl<'a, T: Element> From<CudaViewMut<'a, T>> for ViewMut<'a, T> {
    /// Wraps a cudarc view without copying.
    fn from(v: CudaViewMut<'a, T>) -> Self {
        let len = v.len();
        ViewMut { repr: ViewMutRepr::Cuda(v), len }
    }
}

impl<'a, T: Element> From<&'a mut Buffer<T>> for ViewMut<'a, T> {
    fn from(b: &'a mut Buffer<T>) -> Self {
        b.view_mut()
    }
}
