//! The results files of a suite: the console line, CSV, markdown and SVG chart of its records.

use super::*;

fn fmt_time(s: f64) -> String {
    if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.2} us", s * 1e6)
    }
}

pub(super) fn line(label: &str, r: &Record) -> String {
    let mut s = format!(
        "{label} | {}/{}: {} per call, {:.1} {} = {:.1}% of {:.0} peak; kernel floor {}",
        r.family,
        r.id,
        fmt_time(r.seconds),
        r.throughput,
        r.unit(),
        r.pct(),
        r.peak,
        fmt_time(r.kernel_floor)
    );
    if let (Some(c), Some(m), Some(l)) = (r.compute_floor, r.memory_floor, r.limiter) {
        let _ = write!(s, "; floors from counters: SM units {}, DRAM {}; limiter {l}", fmt_time(c), fmt_time(m));
    }
    if let Some(b) = r.unique_bytes {
        let _ = write!(s, "; unique DRAM bytes {:.3} GB = {:.2}x the fewest", b / 1e9, b / r.min_bytes.max(1.0));
    }
    s
}

fn opt_us(v: Option<f64>) -> String {
    v.map_or(String::new(), |t| format!("{:.3}", t * 1e6))
}

pub(super) fn csv(label: &str, records: &[Record]) -> String {
    let mut s = String::from(
        "kind,benchmark,device,time_us,throughput,unit,peak,pct_of_peak,kernel_floor_us,sm_units_floor_us,\
         dram_floor_us,limiter,vm_shape\n",
    );
    let kind = if label.starts_with("MODEL") { "MODEL (VM counters; not measured)" } else { "measured" };
    for r in records {
        let _ = writeln!(
            s,
            "{kind},{}/{},{},{:.3},{:.3},{},{:.1},{:.2},{:.3},{},{},{},\"{}\"",
            r.family,
            r.id,
            r.device,
            r.seconds * 1e6,
            r.throughput,
            r.unit(),
            r.peak,
            r.pct(),
            r.kernel_floor * 1e6,
            opt_us(r.compute_floor),
            opt_us(r.memory_floor),
            r.limiter.unwrap_or(""),
            r.vm_note.replace('"', "'")
        );
    }
    s
}

pub(super) fn markdown(suite: &str, label: &str, records: &[Record]) -> String {
    let mut s = format!("### {suite}: {label}\n\n");
    let model = records.iter().any(|r| !r.measured);
    if model {
        s.push_str(
            "| benchmark | model time | throughput | % of peak | kernel floor | SM-unit floor | DRAM floor | limiter | VM shape |\n\
             |---|---:|---:|---:|---:|---:|---:|---|---|\n",
        );
    } else {
        s.push_str("| benchmark | time | throughput | % of peak | kernel floor |\n|---|---:|---:|---:|---:|\n");
    }
    for r in records {
        let _ = write!(
            s,
            "| {}/{} | {} | {:.1} {} | {:.1}% of {:.0} | {} |",
            r.family,
            r.id,
            fmt_time(r.seconds),
            r.throughput,
            r.unit(),
            r.pct(),
            r.peak,
            fmt_time(r.kernel_floor)
        );
        if model {
            let _ = write!(
                s,
                " {} | {} | {} | {} |",
                r.compute_floor.map_or(String::new(), fmt_time),
                r.memory_floor.map_or(String::new(), fmt_time),
                r.limiter.unwrap_or(""),
                r.vm_note
            );
        }
        s.push('\n');
    }
    if model {
        s.push_str(
            "\n(MODEL: speed-of-light floors from the VM's exact counters multiplied to the real shape and a device \
             model; not a measurement. Model time = the slowest unit's floor; kernel floor = the kernel's own FLOPs and \
             fewest bytes at peak.)\n",
        );
    }
    s
}

pub(super) fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart: per benchmark, its throughput as a share of the device's peak (the bar)
/// and the share its kernel floor would reach (the tick), written by hand.
pub(super) fn svg(suite: &str, label: &str, records: &[Record]) -> String {
    let (left, bar_w, row_h, top) = (430.0, 460.0, 22.0, 64.0);
    let width = left + bar_w + 90.0;
    let height = top + row_h * records.len() as f64 + 40.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" \
         font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{} benchmarks: throughput as % of peak</text>\n\
         <text x=\"10\" y=\"40\" fill=\"{}\">{}</text>\n",
        xml(suite),
        if label.starts_with("MODEL") { "#b00" } else { "#060" },
        xml(label)
    );
    for pct in [0, 25, 50, 75, 100] {
        let x = left + bar_w * f64::from(pct) / 100.0;
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#ccc\"/><text x=\"{x}\" y=\"{}\" \
             text-anchor=\"middle\" fill=\"#666\">{pct}%</text>",
            top - 6.0,
            height - 30.0,
            height - 16.0
        );
    }
    let x_of = |r: &Record, seconds: Option<f64>| {
        seconds.map(|t| left + bar_w * (throughput_at(r, t) / r.peak).clamp(0.0, 1.0))
    };
    for (i, r) in records.iter().enumerate() {
        let y = top + row_h * i as f64;
        let pct = r.pct().clamp(0.0, 100.0);
        let colour = if r.measured { "#2a7" } else { "#58c" };
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <rect x=\"{left}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"{colour}\"/>\n\
             <text x=\"{:.1}\" y=\"{}\">{:.0}% ({:.0} {})</text>",
            left - 6.0,
            y + 14.0,
            xml(&format!("{}/{}", r.family, r.id)),
            y + 3.0,
            bar_w * pct / 100.0,
            row_h - 6.0,
            left + bar_w * pct / 100.0 + 4.0,
            y + 14.0,
            r.pct(),
            r.throughput,
            r.unit()
        );
        // Ticks: where the throughput would be at each floor (model: the SM units' and DRAM's floors
        // from the counters; measured: the kernel's own floor).
        let ticks = if r.measured {
            vec![(x_of(r, Some(r.kernel_floor)), "#000")]
        } else {
            vec![(x_of(r, r.compute_floor), "#e80"), (x_of(r, r.memory_floor), "#a0a")]
        };
        for (x, c) in ticks {
            if let Some(x) = x {
                let _ = writeln!(
                    s,
                    "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"{c}\" stroke-width=\"3\"/>",
                    y + 1.0,
                    y + row_h - 1.0
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"{}\" fill=\"#666\">{}</text>\n</svg>",
        height - 2.0,
        if label.starts_with("MODEL") {
            "bar: modelled throughput (MODEL from VM counters, not measured); ticks: throughput at the SM-unit floor \
             (orange) and at the DRAM floor (purple); the bar stops at the lower"
        } else {
            "bar: measured throughput; black tick: throughput at the kernel's own floor (its FLOPs and fewest bytes at peak)"
        }
    );
    s
}

fn throughput_at(r: &Record, seconds: f64) -> f64 {
    r.throughput * r.seconds / seconds.max(1e-30)
}
