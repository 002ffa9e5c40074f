//! The `ptx_run` example's launch specs (examples/ptx_run/spec.rs, shared with the root crate's
//! `vm_diff`): parsing, fills, friendly errors, and an end-to-end saxpy through the same code path
//! the tool takes, checked against a plain CPU result.

#[path = "../examples/ptx_run/spec.rs"]
mod spec;

use ptx_vm::Arch;
use spec::{parse_arg, parse_words, Arg, Buffer, Compare, Elem, Fill, TensorMapArg};

const SAXPY: &str = include_str!("ptx/saxpy.ptx");

fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn a_full_command_line_parses_into_its_parts() {
    let s = parse_words(&words(
        "k.ptx kern --grid 4,2 --block 16x16 --smem 1024 --param buf:bf16:64:rand(7,-2,2) \
         --param buf:u32:8:out --param ptr:0+16 --param i8:-3 --param u64:0xffffffffffffffff \
         --param bytes:8:0102030405060708 --no-sanitizer --print-out 3 --compare approx:2 --compare 1=skip",
    ))
    .unwrap();
    assert_eq!((s.ptx.as_str(), s.kernel.as_str()), ("k.ptx", "kern"));
    assert_eq!((s.grid, s.block, s.smem), ([4, 2, 1], [16, 16, 1], 1024));
    assert_eq!((s.sanitizer, s.print_out, s.compare), (false, 3, Compare::Approx(2)));
    assert_eq!((s.rule(0), s.rule(1)), (Compare::Approx(2), Compare::Skip));
    assert_eq!(
        s.args,
        vec![
            Arg::Buffer(Buffer {
                elem: Elem::Bf16,
                count: 64,
                fill: Fill::Rand { seed: 7, range: Some((-2.0, 2.0)) },
                out: false
            }),
            Arg::Buffer(Buffer { elem: Elem::U32, count: 8, fill: Fill::Poison, out: true }),
            Arg::Ptr(0, 16),
            Arg::Scalar(Elem::I8, vec![0xfd]),
            Arg::Scalar(Elem::U64, vec![0xff; 8]),
            Arg::Bytes(8, vec![1, 2, 3, 4, 5, 6, 7, 8]),
        ]
    );
    // The list the builder makes: two buffer pointers, the second plus 16, then the scalars.
    let p = s.params(&[0x1000, 0x2000]);
    let b = p.as_bytes();
    assert_eq!(b.len(), 48);
    assert_eq!(u64::from_le_bytes(b[0..8].try_into().unwrap()), 0x1000);
    assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 0x1010);
    assert_eq!((b[24], &b[32..40], &b[40..48]), (0xfd, &[0xffu8; 8][..], &[1u8, 2, 3, 4, 5, 6, 7, 8][..]));
}

/// `tmap:` allocates and fills a tensor like a buffer and passes a 128-byte map of it, at the
/// tensor's address, in the VM's encoding (or whatever `params_with` is given); `--arch` picks
/// the VM.
#[test]
fn a_tensor_map_argument_passes_a_map_of_its_buffer() {
    let s = parse_words(&words(
        "h.ptx k --arch sm_90 --param tmap:bf16:40x3:16x2:32B:rand(5) --param buf:f32:4:out --param ptr:0+2",
    ))
    .unwrap();
    assert_eq!(s.arch, Some(Arch::Sm90));
    let t = TensorMapArg {
        buffer: Buffer { elem: Elem::Bf16, count: 120, fill: Fill::Rand { seed: 5, range: None }, out: false },
        dims: vec![40, 3],
        boxd: vec![16, 2],
        swizzle: ptx_vm::semantics::wgmma::Swizzle::B32,
    };
    assert_eq!(s.args[0], Arg::TensorMap(t.clone()));
    assert_eq!(s.buffers().len(), 2, "the tensor counts as buffer 0");
    let m = t.map(0x4000);
    assert_eq!(
        (m.global_address, m.element_bytes, &m.global_dims[..2], m.global_strides[0]),
        (0x4000, 2, &[40u64, 3][..], 80)
    );
    let b = s.params(&[0x4000, 0x9000]);
    let b = b.as_bytes();
    assert_eq!(b.len(), 128 + 16);
    assert_eq!(&b[..128], &t.vm_bytes(0x4000).unwrap()[..]);
    assert_eq!(u64::from_le_bytes(b[128..136].try_into().unwrap()), 0x9000);
    assert_eq!(u64::from_le_bytes(b[136..144].try_into().unwrap()), 0x4002);
    let g = s.params_with(&[0x4000, 0x9000], |_, a| [(a >> 12) as u8; 128]);
    assert_eq!(&g.as_bytes()[..128], &[4u8; 128][..]);
    // Malformed maps are refused with the field named.
    for (arg, why) in [
        ("tmap:bf16:40x3:16:none:zeros", "BOX"),
        ("tmap:bf16:40x3:16x2:16B:zeros", "SWIZZLE"),
        ("tmap:f32:40x3:64x2:128B:zeros", "128"),
        ("tmap:bf16:0x3:16x2:none:zeros", "DIMS"),
    ] {
        let e = parse_arg(arg).unwrap_err();
        assert!(e.contains(why), "{arg}: {e}");
    }
    assert!(parse_words(&words("h.ptx k --arch sm_70")).unwrap_err().contains("--arch sm_70"));
}

#[test]
fn fills_give_the_documented_bytes() {
    let buf = |elem, fill| Buffer { elem, count: 4, fill, out: false };
    assert_eq!(buf(Elem::I16, Fill::Iota).host_bytes(), [0, 0, 1, 0, 2, 0, 3, 0]);
    assert_eq!(buf(Elem::U8, Fill::Poison).host_bytes(), [0xff; 4]);
    assert_eq!(buf(Elem::F32, Fill::Const(-1.5)).host_bytes(), (-1.5f32).to_le_bytes().repeat(4));
    assert_eq!(buf(Elem::Bf16, Fill::Const(1.0)).host_bytes(), [0x80, 0x3f].repeat(4));
    assert_eq!(buf(Elem::F64, Fill::Zeros).host_bytes(), [0; 32]);
    // Seeded: the same seed gives the same bytes, another seed others; ranges are respected.
    let r = |seed, range| Buffer { elem: Elem::I32, count: 1000, fill: Fill::Rand { seed, range }, out: false };
    assert_eq!(r(5, None).host_bytes(), r(5, None).host_bytes());
    assert_ne!(r(5, None).host_bytes(), r(6, None).host_bytes());
    let ints: Vec<i32> =
        r(5, Some((-3.0, 3.0))).host_bytes().chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    assert!(ints.iter().all(|v| (-3..=3).contains(v)));
    assert!((-3..=3).all(|v| ints.contains(&v)), "every value of the range appears in 1000 draws");
    let fl = Buffer { elem: Elem::F32, count: 1000, fill: Fill::Rand { seed: 1, range: Some((2.0, 4.0)) }, out: false };
    assert!(f32s(&fl.host_bytes()).iter().all(|v| (2.0..4.0).contains(v)));
}

#[test]
fn bad_arguments_are_friendly_messages() {
    let err = |s: &str| parse_words(&words(s)).unwrap_err();
    assert_eq!(err("k.ptx"), "expected a PTX file and a kernel name, got 1 word(s): [\"k.ptx\"]");
    assert_eq!(err("k.ptx k --grid"), "--grid needs a value");
    assert_eq!(err("k.ptx k --grid 0"), "--grid 0: `0` is not a positive integer");
    assert_eq!(err("k.ptx k --block 1,2,3,4"), "--block 1,2,3,4: expected X, X,Y or X,Y,Z");
    assert_eq!(err("k.ptx k --frobnicate"), "unknown option --frobnicate");
    assert_eq!(err("k.ptx k --param ptr:0"), "--param ptr:0: there are only 0 buffers");
    assert_eq!(err("k.ptx k --compare fuzzy"), "--compare fuzzy: expected [I=]exact, approx:ULPS, mma:TOL or skip");
    assert_eq!(err("k.ptx k --compare 0=exact"), "--compare 0=...: there are only 0 buffers");
    let arg = |s: &str| parse_arg(s).unwrap_err();
    assert_eq!(arg("buf:f32:abc:zeros"), "--param buf:f32:abc:zeros: element count `abc` is not a positive integer");
    assert_eq!(arg("buf:f31:4:zeros"), "--param buf:f31:4:zeros: unknown element type `f31`");
    assert_eq!(
        arg("buf:f32:4:lots"),
        "--param buf:f32:4:lots: fill `lots` is not one of zeros, poison, iota, rand(SEED), rand(SEED,LO,HI), a number, out"
    );
    assert_eq!(arg("buf:f32:4:rand(x)"), "--param buf:f32:4:rand(x): rand: seed `x` is not a non-negative integer");
    assert_eq!(arg("buf:f32:4:rand(1,3,2)"), "--param buf:f32:4:rand(1,3,2): rand: the range 3..2 is empty");
    assert_eq!(arg("u8:256"), "--param u8:256: 256 does not fit a u8");
    assert_eq!(arg("i8:-129"), "--param i8:-129: -129 does not fit a i8");
    assert_eq!(arg("f32:two"), "--param f32:two: `two` is not a number");
    assert_eq!(arg("f16:1"), "--param f16:1: f16 scalars are not supported (pass them as bytes:2:HEX)");
    assert_eq!(arg("bytes:3:00"), "--param bytes:3:00: alignment `3` is not a power of two");
    assert_eq!(arg("bytes:4:0g"), "--param bytes:4:0g: `0g` is not hex");
    assert_eq!(arg("u32"), "--param u32: expected buf:..., ptr:I, bytes:ALIGN:HEX or TYPE:VALUE");
}

#[test]
fn saxpy_runs_end_to_end_through_the_tool_path() {
    let s = parse_words(&words(
        "tests/ptx/saxpy.ptx saxpy_f32 --grid 3 --block 256 --param i32:1000 --param f32:2.5 \
         --param buf:f32:1000:rand(1) --param buf:f32:1024:iota:out",
    ))
    .unwrap();
    let run = spec::run_vm(&s, SAXPY, Arch::Sm80).unwrap_or_else(|e| panic!("{e}"));
    run.report.assert_clean().unwrap();
    let bufs = s.buffers();
    let x = f32s(&bufs[0].host_bytes());
    let y = f32s(&run.buffers[1]);
    for (i, &got) in y.iter().enumerate() {
        // n = 1000 of 1024: the tail past n keeps its iota value.
        let want = if i < 1000 { 2.5f32.mul_add(x[i], i as f32) } else { i as f32 };
        assert_eq!(got.to_bits(), want.to_bits(), "y[{i}]");
    }
    assert_eq!(f32s(&run.buffers[0]), x, "x is read only");
    assert_eq!(run.report.counters.as_ref().map(|c| c.unique_bytes_written), Some(4000));
    assert_eq!(spec::show_elems(Elem::F32, &run.buffers[1][4088..], 8), "[1022, 1023]");
}

#[test]
fn the_tool_path_checks_params_and_reports_faults() {
    let run = |line: &str| spec::run_vm(&parse_words(&words(line)).unwrap(), SAXPY, Arch::Sm80).err();
    // Pointers first is the wrong order for saxpy_f32(int n, float a, const float* x, float* y).
    assert_eq!(
        run("s.ptx saxpy_f32 --param buf:f32:4:zeros --param buf:f32:4:zeros --param i32:4 --param f32:1").unwrap(),
        "launch of `saxpy_f32`: param 0 `saxpy_f32_param_0` (.u32 at offset 0): got a pointer at offset 0"
    );
    assert!(run("s.ptx nope").unwrap().contains("no kernel `nope`; the module has [\"saxpy_f32\"]"));
    // n larger than the buffers: memcheck stops the launch and names the buffer's end.
    let e = run(
        "s.ptx saxpy_f32 --block 32 --param i32:40 --param f32:1 --param buf:f32:32:zeros --param buf:f32:32:zeros",
    )
    .unwrap();
    assert!(e.contains("outside every allocation"), "{e}");
}

fn le32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn ulps_count_adjacent_floats_across_zero_and_treat_nan_pairs_as_equal() {
    let f = |x: f32| x.to_le_bytes();
    assert_eq!(spec::ulps(Elem::F32, &f(1.0), &f(f32::from_bits(1.0f32.to_bits() + 3))), 3);
    // The smallest subnormals on both sides of zero are 2 apart; +0 and -0 are 0 apart.
    assert_eq!(spec::ulps(Elem::F32, &f(f32::from_bits(1)), &f(-f32::from_bits(1))), 2);
    assert_eq!(spec::ulps(Elem::F32, &f(0.0), &f(-0.0)), 0);
    assert_eq!(spec::ulps(Elem::F32, &f(f32::NAN), &f(-f32::NAN)), 0);
    assert_eq!(spec::ulps(Elem::F32, &f(f32::NAN), &f(1.0)), u128::MAX);
    // bf16: one step of the 7-bit mantissa.
    assert_eq!(spec::ulps(Elem::Bf16, &[0x80, 0x3f], &[0x81, 0x3f]), 1);
    assert_eq!(spec::ulps(Elem::F64, &1.0f64.to_le_bytes(), &(-1.0f64).to_le_bytes()), 2 * 0x3ff0_0000_0000_0000);
}

#[test]
fn comparison_rules_pass_and_fail_where_documented() {
    let vm = le32(&[1.0, 2.0, -4.0, f32::NAN]);
    let one_ulp = le32(&[1.0, f32::from_bits(2.0f32.to_bits() + 1), -4.0, f32::NAN]);
    let (ok, text) = spec::compare_buffers(Elem::F32, Compare::Exact, &vm, &vm);
    assert!(ok, "{text}");
    assert_eq!(text, "exact: 0/4 differ");
    let (ok, text) = spec::compare_buffers(Elem::F32, Compare::Exact, &vm, &one_ulp);
    assert!(!ok);
    assert_eq!(text, "exact: 1/4 differ (first at [1]: VM 2 GPU 2.0000002)");
    assert!(spec::compare_buffers(Elem::F32, Compare::Approx(1), &vm, &one_ulp).0);
    assert!(!spec::compare_buffers(Elem::F32, Compare::Approx(0), &vm, &one_ulp).0);
    // A NaN where the VM has a number fails any bound.
    let nan = le32(&[f32::NAN, 2.0, -4.0, f32::NAN]);
    assert!(!spec::compare_buffers(Elem::F32, Compare::Approx(1 << 30), &vm, &nan).0);
    assert!(!spec::compare_buffers(Elem::F32, Compare::Mma(1.0), &vm, &nan).0);
    // mma: |diff| relative to the largest |VM| value (4): 0.002 / 4 = 5e-4.
    let near = le32(&[1.002, 2.0, -4.0, f32::NAN]);
    let (ok, text) = spec::compare_buffers(Elem::F32, Compare::Mma(1e-3), &vm, &near);
    assert!(ok, "{text}");
    assert!(text.starts_with("mma: max |diff| 2.000e-3 = 5.00e-4 of max |VM|"), "{text}");
    assert!(!spec::compare_buffers(Elem::F32, Compare::Mma(1e-4), &vm, &near).0);
    // Integers are exact under every rule but skip.
    let (a, b) = ([1u8, 0, 0, 0], [2u8, 0, 0, 0]);
    assert!(!spec::compare_buffers(Elem::I32, Compare::Approx(100), &a, &b).0);
    assert!(!spec::compare_buffers(Elem::U32, Compare::Mma(1.0), &a, &b).0);
    assert!(spec::compare_buffers(Elem::U32, Compare::Skip, &a, &b).0);
}

#[test]
fn the_vm_half_is_deterministic_so_a_gpu_difference_is_the_gpu_s() {
    // vm_diff compares one VM run with one GPU run: a second VM run must match the first bit for
    // bit, or a difference could not be blamed on either side.
    let s = parse_words(&words(
        "saxpy.ptx saxpy_f32 --grid 2 --block 64 --param i32:300 --param f32:-0.75 \
         --param buf:f32:300:rand(9) --param buf:f32:300:rand(10)",
    ))
    .unwrap();
    let a = spec::run_vm(&s, SAXPY, Arch::Sm80).unwrap();
    let b = spec::run_vm(&s, SAXPY, Arch::Sm80).unwrap();
    for (i, (x, y)) in a.buffers.iter().zip(&b.buffers).enumerate() {
        assert!(spec::compare_buffers(Elem::F32, Compare::Exact, x, y).0, "buffer {i}");
    }
}

/// The differential check's table (read by the root crate's vm_diff example): every line parses,
/// names a kernel of its PTX file, passes the checked launch and runs sanitizer-clean on the VM,
/// so the GPU half never starts from a broken line; a line marked `--expect-error WORD` fails on
/// the VM (or has a finding) with WORD in the text.
#[test]
fn every_vm_diff_line_runs_clean_on_the_vm() {
    let table = include_str!("cuda/vm_diff.txt");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ptx");
    let (mut ran, mut failing) = (0, 0);
    let mut kernels = std::collections::BTreeSet::new();
    for (i, line) in table.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
        let s = parse_words(&words(line)).unwrap_or_else(|e| panic!("vm_diff.txt:{}: {e}", i + 1));
        let ptx = std::fs::read_to_string(dir.join(&s.ptx)).unwrap_or_else(|e| panic!("vm_diff.txt:{}: {e}", i + 1));
        let outcome = spec::run_vm_keep(&s, &ptx, Arch::Sm80);
        kernels.insert((s.ptx.clone(), s.kernel.clone()));
        if let Some(verdict) = spec::expected_failure(&s, &outcome) {
            verdict.unwrap_or_else(|e| panic!("vm_diff.txt:{}: {e}", i + 1));
            failing += 1;
            continue;
        }
        let run = outcome.unwrap_or_else(|e| panic!("vm_diff.txt:{}: {e}", i + 1));
        run.report.assert_clean().unwrap_or_else(|e| panic!("vm_diff.txt:{}: {e}", i + 1));
        ran += 1;
    }
    assert!(ran >= 29 && failing >= 10, "only {ran} clean lines and {failing} failing ones");
    // Every kernel of every PTX file compiled from tests/cuda and tests/ptx (issue 19: the check covers every
    // nvcc-compiled test kernel) has a line.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = std::fs::read_dir(root.join("tests/cuda")).unwrap().chain(std::fs::read_dir(&dir).unwrap());
    for entry in sources {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".cu") else { continue };
        let file = format!("{stem}.ptx");
        let module = ptx_vm::Module::parse(&std::fs::read_to_string(dir.join(&file)).unwrap()).unwrap();
        for k in module.kernel_names() {
            assert!(kernels.contains(&(file.clone(), k.to_string())), "vm_diff.txt has no line for {file} {k}");
        }
    }
}

/// The `poison` fill leaves the bytes uninitialised (Machine::fill_poison): saxpy reads its y,
/// so a poisoned y is a finding, while the host still reads the pattern back.
#[test]
fn a_poison_buffer_read_before_written_is_a_finding() {
    let line = |fill: &str| {
        format!("s.ptx saxpy_f32 --block 32 --param i32:32 --param f32:2 --param buf:f32:32:rand(3) --param buf:f32:32:{fill}")
    };
    let clean = spec::run_vm(&parse_words(&words(&line("zeros"))).unwrap(), SAXPY, Arch::Sm80).unwrap();
    clean.report.assert_clean().unwrap();
    let s = parse_words(&words(&line("poison"))).unwrap();
    let run = spec::run_vm(&s, SAXPY, Arch::Sm80).unwrap();
    let n = run.report.sanitizer.as_ref().map_or(0, |f| f.findings.len());
    assert!(n > 0, "a read of a poisoned y must be reported: {}", run.report.findings());
    // An untouched poison buffer still reads back as 0xff on the host, as the GPU half uploads it.
    let s =
        parse_words(&words(&format!("{} --param buf:u32:4:poison", line("zeros")).replace("s.ptx", "s.ptx"))).unwrap();
    assert_eq!(s.buffers()[2].host_bytes(), vec![0xff; 16]);
}

/// printf output is kept and marked; a failed launch keeps its partial report (with the printf
/// output of the blocks before the fault and of the faulting block up to it).
#[test]
fn the_tool_keeps_printf_and_the_partial_report_of_a_failed_launch() {
    let ptx = include_str!("ptx/diff_partial.ptx");
    let line = |trap: i32| {
        format!("d.ptx diff_print_then_trap --grid 3 --block 64 --param buf:i32:192:out --param i32:{trap}")
    };
    let run = spec::run_vm_keep(&parse_words(&words(&line(-1))).unwrap(), ptx, Arch::Sm80).unwrap();
    let text = spec::printf_text(&run.report);
    assert!(text.starts_with("printf| block 0 warp 0 before\nprintf| block 0 warp 1 before\n"), "{text}");
    assert_eq!(text.lines().count(), 9, "{text}");
    let e = spec::run_vm_keep(&parse_words(&words(&line(1))).unwrap(), ptx, Arch::Sm80).err().unwrap();
    assert!(e.message.contains("trap"), "{e}");
    let partial = e.partial.expect("a partial report");
    assert_eq!(
        spec::printf_text(&partial),
        "printf| block 0 warp 0 before\nprintf| block 0 warp 1 before\nprintf| block 0 after\n\
         printf| block 1 warp 0 before\nprintf| block 1 warp 1 before\nprintf| block 1 about to trap\n"
    );
    assert_eq!(partial.counters.as_ref().map(|c| c.blocks), Some(2));
    // A launch refused before running has no partial report.
    let e = spec::run_vm_keep(&parse_words(&words("d.ptx nope")).unwrap(), ptx, Arch::Sm80).err().unwrap();
    assert!(e.partial.is_none());
}

/// `--expect-error WORD` passes only a launch that fails or has a finding, with WORD in the text.
#[test]
fn expect_error_accepts_only_the_named_failure() {
    let ptx = include_str!("ptx/diff_partial.ptx");
    let judge = |args: &str| {
        let s = parse_words(&words(&format!("d.ptx diff_print_then_trap --block 32 --param buf:i32:32:out {args}")))
            .unwrap();
        spec::expected_failure(&s, &spec::run_vm_keep(&s, ptx, Arch::Sm80))
    };
    assert!(judge("--param i32:-1").is_none());
    assert!(judge("--param i32:0 --expect-error :_trap").unwrap().is_ok());
    assert!(judge("--param i32:0 --expect-error deadlocked:").unwrap().unwrap_err().contains("without `deadlocked:`"));
    // `_` is a space, so a WORD cannot match the kernel's name `diff_print_then_trap` by accident.
    assert!(judge("--param i32:0 --expect-error then_trap").unwrap().is_err());
    assert!(judge("--param i32:-1 --expect-error :_trap").unwrap().unwrap_err().contains("ran clean"));
    let poisoned = "s.ptx saxpy_f32 --block 32 --param i32:32 --param f32:2 --param buf:f32:32:rand(3) \
                    --param buf:f32:32:poison --expect-error ";
    let s = parse_words(&words(&format!("{poisoned}uninit"))).unwrap();
    let verdict = spec::expected_failure(&s, &spec::run_vm_keep(&s, SAXPY, Arch::Sm80)).unwrap();
    assert!(verdict.as_ref().is_ok_and(|v| v.contains("finding")), "{verdict:?}");
}
