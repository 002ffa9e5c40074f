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

/// The argument an `InvalidArgument` names and its full message.
fn invalid_name(e: Error) -> (&'static str, String) {
    let msg = e.to_string();
    match e {
        Error::InvalidArgument { name, .. } => (name, msg),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn a_tensor_map_on_the_vm_holds_the_description_in_the_vms_encoding() {
    use ptx_vm::semantics::tensor_map::TensorMap as VmMap;
    use ptx_vm::semantics::wgmma::Swizzle;
    use scaling_kernels::device::{TensorMapDesc, TensorMapSwizzle};
    let dev = Device::vm();
    // A [3][100][64] bf16 tensor, boxes of 2 x 64 x 64 with the 128-byte swizzle.
    let t = dev.alloc_zeros::<half::bf16>(3 * 100 * 64).unwrap();
    let desc = TensorMapDesc::new(&[64, 100, 3], &[128, 12800], &[64, 64, 2])
        .element_strides(&[1, 1, 2])
        .swizzle(TensorMapSwizzle::B128);
    let map = dev.tensor_map(&t.view(), &desc).unwrap();
    assert_eq!((size_of_val(&map), align_of_val(&map)), (128, 64));
    let m = VmMap::decode(&map.bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((m.rank, m.element_bytes, m.swizzle), (3, 2, Swizzle::B128));
    assert_eq!(m.global_dims[..3], [64, 100, 3]);
    assert_eq!(m.global_strides[..2], [128, 12800]);
    assert_eq!((m.box_dims[..3].to_vec(), m.element_strides[..3].to_vec()), (vec![64, 64, 2], vec![1, 1, 2]));
    assert_eq!(m.global_address % 16, 0);
    // The view's address: a map of the view 64 elements in is 128 bytes further.
    let rest = t.slice(64..).unwrap();
    let desc2 = TensorMapDesc::new(&[64, 99, 3], &[128, 12800], &[64, 64, 1]);
    let m2 = VmMap::decode(&dev.tensor_map(&rest, &desc2).unwrap().bytes).unwrap();
    assert_eq!(m2.global_address, m.global_address + 128);
}

#[test]
fn a_tensor_map_is_built_on_every_backend_and_bad_descriptions_are_typed_errors() {
    use scaling_kernels::device::{TensorMapDesc, TensorMapSwizzle};
    for dev in common::backends() {
        let t = dev.alloc_zeros::<f32>(40 * 10).unwrap();
        let good = TensorMapDesc::new(&[40, 10], &[160], &[16, 4]);
        let map = dev.tensor_map(&t.view(), &good).unwrap_or_else(|e| panic!("{}: {e}", dev.describe()));
        assert_ne!(map.bytes, [0u8; 128], "{}", dev.describe());
        let bad = |desc: TensorMapDesc| invalid_name(dev.tensor_map(&t.view(), &desc).unwrap_err());
        let (n, msg) = bad(TensorMapDesc::new(&[], &[], &[]));
        assert_eq!((n, msg.as_str()), ("global_dims", "global_dims: expected 1 to 5 dimensions, got 0"));
        assert_eq!(bad(TensorMapDesc::new(&[2; 6], &[16; 5], &[1; 6])).0, "global_dims");
        assert_eq!(bad(TensorMapDesc::new(&[40, 10], &[], &[16, 4])).0, "global_strides");
        assert_eq!(bad(TensorMapDesc::new(&[40, 10], &[160], &[16])).0, "box_dims");
        assert_eq!(bad(good.clone().element_strides(&[1])).0, "element_strides");
        let (n, msg) = bad(TensorMapDesc::new(&[40, 10], &[168], &[16, 4]));
        assert_eq!(n, "global_strides");
        assert!(msg.contains("global_strides[0] a multiple of 16 below 2^40"), "{msg}");
        assert!(msg.ends_with("got 168"), "{msg}");
        let (n, msg) = bad(TensorMapDesc::new(&[40, 10], &[160], &[16, 257]));
        assert_eq!((n, msg.as_str()), ("box_dims", "box_dims: expected box_dims[1] 1..=256, got 257"));
        let (n, msg) = bad(TensorMapDesc::new(&[40, 10], &[160], &[6, 4]));
        assert_eq!(n, "box_dims");
        assert!(msg.contains("multiple of 16 bytes, got 6 x 4 = 24"), "{msg}");
        let (n, msg) = bad(good.clone().swizzle(TensorMapSwizzle::B32));
        assert_eq!(n, "box_dims");
        assert!(msg.contains("at most 32 bytes"), "{msg}");
        assert_eq!(bad(good.clone().element_strides(&[1, 9])).0, "element_strides");
        assert_eq!(bad(TensorMapDesc::new(&[40, 0], &[160], &[16, 4])).0, "global_dims");
        // 40 x 11 rows do not fit the 400 elements of the view.
        let (n, msg) = bad(TensorMapDesc::new(&[40, 11], &[160], &[16, 4]));
        assert_eq!(n, "view");
        assert!(msg.contains("at byte 1756"), "{msg}");
        // A view one element in is not 16-byte aligned.
        let off = t.slice(1..).unwrap();
        let e = dev.tensor_map(&off, &TensorMapDesc::new(&[36, 9], &[160], &[16, 4])).unwrap_err();
        let (n, msg) = invalid_name(e);
        assert_eq!(n, "view");
        assert!(msg.contains("global_address a multiple of 16"), "{msg}");
    }
}

#[test]
fn a_tensor_map_of_another_devices_view_is_rejected() {
    use scaling_kernels::device::TensorMapDesc;
    let (dev, other) = (Device::vm(), Device::vm());
    let t = other.alloc_zeros::<f32>(64).unwrap();
    let err = dev.tensor_map(&t.view(), &TensorMapDesc::new(&[64], &[], &[16])).unwrap_err();
    assert!(matches!(err, Error::WrongDevice { name: "view", .. }), "{err}");
}
