//! The device layer on a machine with or without a GPU.

mod common;

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

#[test]
fn default_device_is_the_vm_when_no_gpu_is_present() {
    let dev = Device::default();
    if Device::cuda(0).is_err() {
        assert!(dev.is_vm(), "{}", dev.describe());
        assert!(dev.describe().contains("PTX VM"));
    } else {
        assert!(!dev.is_vm());
    }
}

#[test]
fn upload_download_slices_and_fill_round_trip_on_every_backend() {
    for dev in common::backends() {
        let host: Vec<u32> = (0..1000).map(|i| i * 7 + 3).collect();
        let mut buf = dev.upload(&host).unwrap();
        assert_eq!(dev.download(&buf).unwrap(), host);
        assert_eq!(dev.download(buf.slice(10..20).unwrap()).unwrap(), host[10..20]);
        dev.fill_bytes(&mut buf.slice_mut(500..).unwrap(), 0xAB).unwrap();
        let back = dev.download(&buf).unwrap();
        assert_eq!(back[..500], host[..500]);
        assert!(back[500..].iter().all(|&x| x == 0xABAB_ABAB));
        let zeros = dev.alloc_zeros::<f32>(33).unwrap();
        assert_eq!(dev.download(&zeros).unwrap(), vec![0.0; 33]);
        let err = buf.slice(900..1001).err().unwrap();
        assert_eq!(err.to_string(), "range: expected start <= end <= 1000 (the length), got 900..1001");
    }
}

#[test]
fn a_buffer_of_another_vm_is_rejected_by_argument_name() {
    use scaling_kernels::attention::{merge_states, MergeShape};
    let (dev, other) = (Device::vm(), Device::vm());
    let shape = MergeShape { tokens: 1, heads: 1, head_dim: 4 };
    let o = dev.alloc_zeros::<f32>(4).unwrap();
    let lse = dev.alloc_zeros::<f32>(1).unwrap();
    let foreign = other.alloc_zeros::<f32>(4).unwrap();
    let mut out = dev.alloc_zeros::<f32>(4).unwrap();
    let err =
        merge_states(&dev, shape, &o.view(), &lse.view(), &foreign.view(), &lse.view(), &mut out.view_mut(), None)
            .unwrap_err();
    assert!(matches!(err, Error::WrongDevice { name: "o_b", .. }), "{err}");
}

#[test]
fn a_poisoned_buffer_reads_back_as_the_pattern_and_a_kernel_reading_it_fails_on_the_vm() {
    use scaling_kernels::attention::{merge_states, MergeShape};
    use scaling_kernels::device::POISON;
    for dev in common::backends() {
        let mut buf = dev.alloc_zeros::<u32>(16).unwrap();
        dev.fill_poison(&mut buf.view_mut()).unwrap();
        assert!(dev.download(&buf).unwrap().iter().all(|&x| x == u32::from_ne_bytes([POISON; 4])));
    }
    let dev = Device::vm();
    let shape = MergeShape { tokens: 1, heads: 1, head_dim: 4 };
    let o = dev.upload(&[1.0f32; 4]).unwrap();
    let lse = dev.upload(&[0.5f32]).unwrap();
    let mut poisoned = dev.alloc_zeros::<f32>(4).unwrap();
    dev.fill_poison(&mut poisoned.view_mut()).unwrap();
    let mut out = dev.alloc_zeros::<f32>(4).unwrap();
    let err =
        merge_states(&dev, shape, &o.view(), &lse.view(), &poisoned.view(), &lse.view(), &mut out.view_mut(), None)
            .unwrap_err();
    assert!(err.to_string().contains("initcheck"), "{err}");
}
