//! Kernel parameter lists (`Module::params`) and the checked `ParamBuilder` launch, on an
//! nvcc-compiled kernel taking one parameter of each common kind (tests/cuda/api_params.cu) and
//! on hand-written PTX for the declarations nvcc does not emit (`.b32`, `.s32`, `.ptr`).

use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder, ParamClass, VmError};

const MIXED: &str = include_str!("ptx/api_params.ptx");
const KERNEL: &str = "api_params_mixed";

/// Mirrors `struct ApiBlob { int a; float b; double c; }` of api_params.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct ApiBlob {
    a: i32,
    b: f32,
    c: f64,
}

impl ApiBlob {
    fn to_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(&self.a.to_le_bytes());
        v.extend_from_slice(&self.b.to_le_bytes());
        v.extend_from_slice(&self.c.to_le_bytes());
        v
    }
}

const BLOB: ApiBlob = ApiBlob { a: -77, b: 0.15625, c: -1.0e300 };
const N: i32 = 5;
const D: f64 = std::f64::consts::PI;
const C: i8 = -3;
const LL: i64 = -0x1234_5678_9abc;
const S: i16 = -30000;
const CFG: LaunchConfig = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_smem: 0 };

struct Setup {
    m: Machine,
    module: Module,
    input: u64,
    out: u64,
    sum: f32,
}

fn setup() -> Setup {
    let module = Module::parse(MIXED).unwrap_or_else(|e| panic!("parse: {e}"));
    let mut m = Machine::new(Arch::Sm80);
    let values: Vec<f32> = (0..N).map(|i| 0.5 + i as f32 * 1.25).collect();
    let sum = values.iter().fold(0.0f32, |s, v| s + v);
    let input = m.alloc(4 * values.len()).unwrap();
    m.write(input, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let out = m.alloc(9 * 8).unwrap();
    m.memset(out, 0xff, 9 * 8).unwrap();
    Setup { m, module, input, out, sum }
}

/// The right list up to the struct, which the caller appends in one of several ways.
fn prefix(s: &Setup) -> ParamBuilder {
    ParamBuilder::new().ptr(s.input).i32(N).f64(D).i8(C).i64(LL).i16(S)
}

fn read_out(s: &Setup) -> Vec<u64> {
    let mut b = vec![0u8; 9 * 8];
    s.m.read(s.out, &mut b).unwrap();
    b.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn expected(s: &Setup) -> Vec<u64> {
    vec![
        s.sum.to_bits() as u64,
        N as i64 as u64,
        D.to_bits(),
        C as i64 as u64,
        LL as u64,
        S as i64 as u64,
        BLOB.a as i64 as u64,
        BLOB.b.to_bits() as u64,
        BLOB.c.to_bits(),
    ]
}

fn launch_err(s: &mut Setup, p: &ParamBuilder) -> String {
    match s.m.launch_checked(&s.module, KERNEL, &CFG, p) {
        Err(VmError::Launch { kernel, message }) => {
            assert_eq!(kernel, KERNEL);
            message
        }
        other => panic!("expected a launch error, got {other:?}"),
    }
}

#[test]
fn module_lists_nvcc_param_layout() {
    let module = Module::parse(MIXED).unwrap();
    let p = module.params(KERNEL).expect("kernel exists");
    let got: Vec<(usize, usize, usize, String)> =
        p.iter().map(|p| (p.offset, p.size, p.align, p.type_name())).collect();
    let want: Vec<(usize, usize, usize, &str)> = vec![
        (0, 8, 8, ".u64"),
        (8, 4, 4, ".u32"),
        (16, 8, 8, ".f64"),
        (24, 1, 1, ".u8"),
        (32, 8, 8, ".u64"),
        (40, 2, 2, ".u16"),
        (48, 16, 8, ".align 8 .b8[16]"),
        (64, 8, 8, ".u64"),
    ];
    assert_eq!(got, want.into_iter().map(|(a, b, c, d)| (a, b, c, d.to_string())).collect::<Vec<_>>());
    assert_eq!(p[1].name, "api_params_mixed_param_1");
    assert_eq!(p[6].array_len, Some(16));
    assert_eq!((p[2].class, p[2].elem_bits), (ParamClass::Float, 64));
    assert_eq!(module.param_size(KERNEL), Some(72));
    assert!(module.params("no_such_kernel").is_none());
}

#[test]
fn builder_with_struct_as_bytes_reaches_every_value() {
    let mut s = setup();
    let p = prefix(&s).bytes(&BLOB.to_bytes(), std::mem::align_of::<ApiBlob>()).ptr(s.out);
    let r = s.m.launch_checked(&s.module, KERNEL, &CFG, &p).unwrap_or_else(|e| panic!("{e}"));
    r.assert_clean().unwrap();
    assert_eq!(read_out(&s), expected(&s));
}

#[test]
fn builder_with_unsigned_twins_reaches_every_value() {
    let mut s = setup();
    // .u/.s are one class: the unsigned pushes carry the same bits as the signed ones.
    let p = ParamBuilder::new()
        .ptr(s.input)
        .u32(N as u32)
        .f64(D)
        .u8(C as u8)
        .u64(LL as u64)
        .u16(S as u16)
        .bytes(&BLOB.to_bytes(), 8)
        .ptr(s.out);
    s.m.launch_checked(&s.module, KERNEL, &CFG, &p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_out(&s), expected(&s));
}

#[test]
fn swapped_order_names_the_first_parameter_out_of_place() {
    let mut s = setup();
    let p = ParamBuilder::new().ptr(s.input).f64(D).i32(N);
    assert_eq!(launch_err(&mut s, &p), "param 1 `api_params_mixed_param_1` (.u32 at offset 8): got an f64 at offset 8");
}

#[test]
fn missing_char_is_named_even_though_the_next_value_lands_on_its_offset() {
    let mut s = setup();
    let p = ParamBuilder::new().ptr(s.input).i32(N).f64(D).i64(LL).i16(S).bytes(&BLOB.to_bytes(), 8).ptr(s.out);
    assert_eq!(
        launch_err(&mut s, &p),
        "param 3 `api_params_mixed_param_3` (.u8 at offset 24): got an i64 at offset 24"
    );
}

#[test]
fn f32_for_f64_is_named() {
    let mut s = setup();
    let p = ParamBuilder::new().ptr(s.input).i32(N).f32(D as f32).i8(C);
    assert_eq!(
        launch_err(&mut s, &p),
        "param 2 `api_params_mixed_param_2` (.f64 at offset 16): got an f32 at offset 12"
    );
}

#[test]
fn float_for_integer_of_the_same_size_is_an_error() {
    let mut s = setup();
    let p = ParamBuilder::new().ptr(s.input).f32(5.0);
    assert_eq!(launch_err(&mut s, &p), "param 1 `api_params_mixed_param_1` (.u32 at offset 8): got an f32 at offset 8");
    // And the other way round: an integer where .f64 is declared.
    let p = ParamBuilder::new().ptr(s.input).i32(N).u64(D.to_bits());
    assert!(launch_err(&mut s, &p).starts_with("param 2 `api_params_mixed_param_2` (.f64 at offset 16): got a u64"));
}

#[test]
fn struct_as_fields_must_start_at_the_struct_alignment() {
    let mut s = setup();
    // The struct's first field is an int, so the builder puts it at 44; the struct starts at 48.
    let p = prefix(&s).i32(BLOB.a).f32(BLOB.b).f64(BLOB.c).ptr(s.out);
    assert_eq!(
        launch_err(&mut s, &p),
        "param 6 `api_params_mixed_param_6` (.align 8 .b8[16] at offset 48): got an i32 at offset 44 \
         (a struct passed by value starts at its alignment: push it with .bytes(data, 8))"
    );
}

#[test]
fn struct_bytes_with_the_wrong_alignment_are_an_error() {
    let mut s = setup();
    // Aligned to 4 the 16 bytes land at 44, not 48: a Rust mirror missing its f64 alignment.
    let p = prefix(&s).bytes(&BLOB.to_bytes(), 4).ptr(s.out);
    assert_eq!(
        launch_err(&mut s, &p),
        "param 6 `api_params_mixed_param_6` (.align 8 .b8[16] at offset 48): got 16 raw bytes aligned to 4 at offset 44"
    );
}

#[test]
fn a_value_after_the_last_parameter_is_named() {
    let mut s = setup();
    let p = prefix(&s).bytes(&BLOB.to_bytes(), 8).ptr(s.out).u32(1);
    assert_eq!(
        launch_err(&mut s, &p),
        "the kernel takes 8 params (72 bytes), but the builder has more: a u32 at offset 72"
    );
    let p = prefix(&s).bytes(&BLOB.to_bytes(), 8);
    assert_eq!(
        launch_err(&mut s, &p),
        "param 7 `api_params_mixed_param_7` (.u64 at offset 64): nothing was pushed for it (the builder's 7 values end at byte 64)"
    );
}

#[test]
fn unchecked_launch_still_takes_any_bytes_of_the_right_size() {
    let mut s = setup();
    let p = prefix(&s).bytes(&BLOB.to_bytes(), 8).ptr(s.out).finish();
    s.m.launch(&s.module, KERNEL, &CFG, &p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_out(&s), expected(&s));
    let err = s.m.launch(&s.module, KERNEL, &CFG, &p[..64]).unwrap_err();
    assert_eq!(err.to_string(), format!("launch of `{KERNEL}`: params: expected 72 bytes, got 64"));
}

/// Declarations nvcc does not emit for plain C++ types but PTX allows.
const HAND: &str = r#"
.version 9.0
.target sm_80
.address_size 64
.visible .entry typed(
    .param .u64 .ptr .global .align 8 out,
    .param .b32 bits,
    .param .s32 signed,
    .param .f32 x,
    .param .align 2 .b8 pair[10],
    .param .v2 .u32 v
)
{
    ret;
}
"#;

fn hand_check(p: &ParamBuilder) -> Result<(), String> {
    let module = Module::parse(HAND).unwrap();
    module.check_params("typed", p).map_err(|e| match e {
        VmError::Launch { message, .. } => message,
        other => panic!("expected a launch error, got {other:?}"),
    })
}

#[test]
fn hand_written_declarations_have_their_classes() {
    let module = Module::parse(HAND).unwrap();
    let p = module.params("typed").unwrap();
    let names: Vec<String> = p.iter().map(|p| p.type_name()).collect();
    assert_eq!(names, [".u64 .ptr", ".b32", ".s32", ".f32", ".align 2 .b8[10]", ".align 8 .u32[2]"]);
    assert!(p[0].ptr && !p[1].ptr);
    assert_eq!((p[1].class, p[2].class), (ParamClass::Bits, ParamClass::Signed));
    assert_eq!(p[5].array_len, Some(2));
    assert_eq!(module.param_size("typed"), Some(40));
}

#[test]
fn bits_take_any_value_signed_takes_unsigned_float_takes_only_float() {
    let tail = |b: ParamBuilder| b.f32(1.0).i32(1).i32(2).u16(3).u64(9);
    // .b32 takes an f32, a u32 or raw bytes; .s32 takes a u32; a pointer fits .u64 .ptr.
    assert_eq!(hand_check(&tail(ParamBuilder::new().ptr(256).f32(0.5).u32(7))), Ok(()));
    assert_eq!(hand_check(&tail(ParamBuilder::new().u64(256).u32(1).i32(-7))), Ok(()));
    assert_eq!(hand_check(&tail(ParamBuilder::new().ptr(256).bytes(&[1, 2, 3, 4], 4).u32(7))), Ok(()));
    // .f32 refuses an integer of the right size.
    let p = ParamBuilder::new().ptr(256).u32(1).u32(7).u32(1);
    assert_eq!(hand_check(&p).unwrap_err(), "param 3 `x` (.f32 at offset 16): got a u32 at offset 16");
    // .u64 .ptr refuses a double.
    let p = ParamBuilder::new().f64(1.0);
    assert_eq!(hand_check(&p).unwrap_err(), "param 0 `out` (.u64 .ptr at offset 0): got an f64 at offset 0");
}

#[test]
fn struct_fields_fill_an_array_but_may_not_cross_its_end() {
    let head = || ParamBuilder::new().ptr(256).u32(1).i32(2).f32(3.0);
    // The 10-byte struct at 20 as three fields (4 + 4 + 2), or as its bytes, then the vector.
    assert_eq!(hand_check(&head().i32(1).f32(2.0).u16(3).u64(9)), Ok(()));
    assert_eq!(hand_check(&head().bytes(&[0; 10], 2).u64(9)), Ok(()));
    // A third 4-byte field would cover bytes 28..32, past the struct's end at 30.
    assert_eq!(
        hand_check(&head().i32(1).f32(2.0).u32(3)).unwrap_err(),
        "param 4 `pair` (.align 2 .b8[10] at offset 20): got a u32 at offset 28, which runs past the parameter's end at 30"
    );
    // Its bytes with the wrong alignment land in the right place but say the mirror is wrong.
    assert_eq!(
        hand_check(&head().bytes(&[0; 10], 4).u64(9)).unwrap_err(),
        "param 4 `pair` (.align 2 .b8[10] at offset 20): got 10 raw bytes aligned to 4 at offset 20 (the declaration is aligned to 2)"
    );
}
