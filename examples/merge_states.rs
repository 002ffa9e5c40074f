//! Merges two partial attention results, as split-KV decode does, on the GPU when there is one and on
//! the PTX VM otherwise: `cargo run --example merge_states`.

use half::bf16;
use scaling_kernels::attention::{merge_states, MergeShape};
use scaling_kernels::{Device, Result};

fn main() -> Result<()> {
    let dev = Device::default();
    println!("device: {}", dev.describe());

    // Two halves of the keys of 2 tokens x 4 heads, head_dim 64: part a saw keys with total weight
    // e^1, part b with weight e^0 (LSE 1.0 and 0.0).
    let shape = MergeShape { tokens: 2, heads: 4, head_dim: 64 };
    let rows = shape.tokens * shape.heads;
    let n = rows * shape.head_dim;
    let o_a = dev.upload(&vec![bf16::from_f32(1.0); n])?;
    let o_b = dev.upload(&vec![bf16::from_f32(-1.0); n])?;
    let lse_a = dev.upload(&vec![1.0f32; rows])?;
    let lse_b = dev.upload(&vec![0.0f32; rows])?;
    let mut o = dev.alloc_zeros::<bf16>(n)?;
    let mut lse = dev.alloc_zeros::<f32>(rows)?;
    merge_states(
        &dev,
        shape,
        &o_a.view(),
        &lse_a.view(),
        &o_b.view(),
        &lse_b.view(),
        &mut o.view_mut(),
        Some(&mut lse.view_mut()),
    )?;

    let (e, o0, l0) = (std::f64::consts::E, dev.download(&o)?[0], dev.download(&lse)?[0]);
    println!("o[0] = {o0} (exact {:.5}), lse[0] = {l0} (exact {:.5})", (e - 1.0) / (e + 1.0), (e + 1.0).ln());
    Ok(())
}
