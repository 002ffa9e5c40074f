//! The device layer on a machine with or without a GPU.

use scaling_kernels::device::{MODULES, NVCC};
use scaling_kernels::{Device, Error};

#[test]
fn cuda_without_a_driver_or_gpu_is_a_typed_error_not_a_panic() {
    match Device::cuda(0) {
        Ok(dev) => eprintln!("a GPU is present ({}): the no-driver path cannot be exercised here", dev.describe()),
        Err(e @ (Error::CudaUnavailable { .. } | Error::NoSuchDevice { .. })) => {
            let msg = e.to_string();
            assert!(msg.contains("CUDA") || msg.contains("ordinal"), "{msg}");
        }
        Err(other) => panic!("expected CudaUnavailable or NoSuchDevice, got {other:?}"),
    }
}

#[test]
fn an_ordinal_past_the_last_gpu_is_rejected() {
    match Device::cuda(1 << 20) {
        Err(Error::NoSuchDevice { ordinal, .. }) => assert_eq!(ordinal, 1 << 20),
        Err(Error::CudaUnavailable { .. }) => eprintln!("no CUDA driver: the ordinal check runs only where one is"),
        other => panic!("expected NoSuchDevice, got {other:?}"),
    }
}

#[test]
fn every_kernel_module_is_embedded_with_its_ptx() {
    assert!(!MODULES.is_empty());
    for m in MODULES {
        assert!(m.ptx.contains(".entry"), "{} has no entry point", m.name);
        assert!(m.ptx.contains(".target sm_80") || m.ptx.contains(".target sm_90a"), "{}", m.name);
        match (NVCC, m.fatbin) {
            (Some(_), Some(fatbin)) => assert!(!fatbin.is_empty() && !m.archs.is_empty()),
            (None, None) => assert!(m.archs.is_empty()),
            _ => panic!("{}: fatbin presence disagrees with whether nvcc built the crate", m.name),
        }
    }
}
