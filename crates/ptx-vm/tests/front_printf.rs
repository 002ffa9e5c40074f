//! Device printf on the VM (tests/cuda/front_printf.cu): each conversion CUDA documents, with
//! flags, widths and precisions, prints what the host C library prints for the same arguments;
//! the output of many threads and blocks comes back in a documented, deterministic order; and a
//! printf on an error path that never runs costs nothing.

use ptx_vm::{Arch, LaunchConfig, Machine, Module, ParamBuilder};

const PTX: &str = include_str!("ptx/front_printf.ptx");

fn module() -> Module {
    Module::parse(PTX).unwrap_or_else(|e| panic!("{e}"))
}

fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_smem: 0 }
}

#[test]
fn every_conversion_prints_as_the_host_printf_does() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80);
    let s = m.alloc(6).unwrap();
    m.write(s, b"hello\0").unwrap();
    let ret = m.alloc(14 * 4).unwrap();
    let params = ParamBuilder::new()
        .i32(255)
        .u64(-1_234_567_890_123i64 as u64)
        .u64(u64::MAX)
        .f64(1.23456789)
        .f32(0.3)
        .ptr(s)
        .ptr(ret)
        .finish();
    let r = m.launch(&md, "printf_conversions", &cfg(1, 32), &params).unwrap_or_else(|e| panic!("{e}"));
    r.assert_clean().unwrap();
    // Expected text: the same printf calls with the same arguments, printed by glibc on the host.
    let want = [
        "int 255|-255|4294967041|  255|255  |-0255|+255| 255|007|\n",
        "hex ff|FF|0xff|0377|377|     0ff|0xff    |\n",
        "long -1234567890123|-1234567890123|18446744073709551615|18446744073709551615|ffffffffffffffff\n",
        "short 4464|-56|65535|255\n",
        "char A|  B|C  |\n",
        "str hello|   hello|hello   |he|     hel|\n",
        "fixed 1.234568|1.234568|1.23|    -1.235|1.2       |+1.234568| 1.234568|-000001.23|2|3.\n",
        "sci 1.234568e+03|1.234568E-04|1.23e+00| -1.235e+100|5e-324\n",
        "general 30000|1E-05|1.23457e+06|0.0001|1.23|1.50000|0\n",
        "hexfloat 0x1p+0|-0X1P-1|0x1.55p-2\n",
        "float 0.300000|0.3|0.3\n",
        "star    255|255   |1.23|   1.235e+00|\n",
        "pointer 0x7f001234abcd|(nil)\n",
        "percent 100% done\n",
    ]
    .concat();
    assert_eq!(r.printf, want);
    assert_eq!(r.printf_dropped, 0);
    // CUDA's printf returns the number of arguments it parsed, not the characters written.
    let mut b = vec![0u8; 14 * 4];
    m.read(ret, &mut b).unwrap();
    let got: Vec<i32> = b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(got, [10, 7, 5, 4, 3, 5, 10, 5, 7, 3, 3, 9, 2, 0]);
}

#[test]
fn output_comes_block_by_block_in_the_order_the_block_ran() {
    // 40 threads: warp 0 (32 lanes) and a partial warp 1. The blocks' outputs follow each other in
    // block index order; inside a block the barrier puts every "A" line before every "B" line, and
    // the lanes of one warp's printf come in lane order. Which warp goes first after the barrier is
    // the VM's scheduling, the same for any host-thread count.
    let md = module();
    let mut outputs = Vec::new();
    for threads in [1, 3] {
        let mut m = Machine::new(Arch::Sm80).with_threads(threads);
        let r = m.launch(&md, "printf_order", &cfg(3, 40), &[]).unwrap_or_else(|e| panic!("{e}"));
        outputs.push(r.printf);
    }
    assert_eq!(outputs[0], outputs[1], "the order must not depend on the host-thread count");
    let lines: Vec<(String, u32, u32)> = outputs[0]
        .lines()
        .map(|l| {
            let (tag, rest) = l.split_once(' ').unwrap();
            let (b, t) = rest.split_once('.').unwrap();
            (tag.to_string(), b.parse().unwrap(), t.parse().unwrap())
        })
        .collect();
    assert_eq!(lines.len(), 3 * 2 * 40);
    for (b, block) in lines.chunks(80).enumerate() {
        assert!(block.iter().all(|l| l.1 == b as u32), "block {b} interleaved with another: {block:?}");
        for (half, tag) in [(&block[..40], "A"), (&block[40..], "B")] {
            assert!(half.iter().all(|l| l.0 == tag), "block {b}: {tag} lines not together: {block:?}");
            let mut tids: Vec<u32> = half.iter().map(|l| l.2).collect();
            let warp0: Vec<u32> = tids.iter().copied().filter(|&t| t < 32).collect();
            assert_eq!(warp0, (0..32).collect::<Vec<_>>(), "block {b} {tag}: lanes out of order");
            tids.sort();
            assert_eq!(tids, (0..40).collect::<Vec<_>>(), "block {b} {tag}: every thread once");
        }
    }
}

#[test]
fn output_past_one_mebibyte_is_dropped_and_counted() {
    let md = module();
    let mut m = Machine::new(Arch::Sm80).with_sanitizer(false);
    let blocks = 9;
    let r = m.launch(&md, "printf_flood", &cfg(blocks, 128), &[]).unwrap_or_else(|e| panic!("{e}"));
    let total = blocks as usize * 128 * 1001;
    assert_eq!(r.printf.len(), ptx_vm::PRINTF_BUFFER_BYTES);
    assert_eq!(r.printf_dropped as usize, total - ptx_vm::PRINTF_BUFFER_BYTES);
    // What is kept is whole lines of the first blocks' threads (block by block), then the start
    // of the next line.
    let full_lines = ptx_vm::PRINTF_BUFFER_BYTES / 1001;
    let ids: Vec<usize> = r
        .printf
        .split_terminator('\n')
        .take(full_lines)
        .map(|l| {
            assert_eq!(l.len(), 1000, "{l:?}");
            l.trim_start().parse().unwrap()
        })
        .collect();
    for (b, block) in ids.chunks_exact(128).enumerate() {
        let mut sorted = block.to_vec();
        sorted.sort();
        assert_eq!(sorted, (b * 128..b * 128 + block.len()).collect::<Vec<_>>(), "block {b}");
    }
}

#[test]
fn a_printf_on_an_untaken_error_path_neither_refuses_nor_prints() {
    let md = module();
    assert_eq!(md.unsupported("double_or_report"), Some(vec![]));
    let n = 100usize;
    let x: Vec<i32> = (0..n as i32).map(|i| i * 7 - 3 * (i % 5)).map(i32::abs).collect();
    let mut m = Machine::new(Arch::Sm80);
    let xd = m.alloc(4 * n).unwrap();
    m.write(xd, &x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let yd = m.alloc(4 * n).unwrap();
    m.memset(yd, 0xff, 4 * n).unwrap();
    let params = ParamBuilder::new().i32(n as i32).ptr(xd).ptr(yd).finish();
    let r = m.launch(&md, "double_or_report", &cfg(2, 64), &params).unwrap_or_else(|e| panic!("{e}"));
    r.assert_clean().unwrap();
    assert_eq!(r.printf, "");
    let mut b = vec![0u8; 4 * n];
    m.read(yd, &mut b).unwrap();
    let y: Vec<i32> = b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(y, x.iter().map(|v| 2 * v).collect::<Vec<_>>());
    // A negative input takes the error path, which prints and leaves its output unwritten.
    m.write(xd + 4 * 42, &(-5i32).to_le_bytes()).unwrap();
    let r = m.launch(&md, "double_or_report", &cfg(2, 64), &params).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.printf, "double_or_report: negative input -5 at 42\n");
}
