//! Text-level helpers for PTX files.

/// The code of a PTX module without what depends on where and on which machine it was compiled:
/// `.loc`/`.file` lines, `.section .debug_*` blocks and comments are dropped, and the per-path hash
/// nvcc puts in internal and anonymous-namespace symbol names (`_INTERNAL_1a2b3c4d_...`,
/// `_GLOBAL__N__1a2b3c4d_...`) is masked. Two compilations of the
/// same source with the same compiler and flags give equal results, from any directory; use it to
/// tell whether committed PTX is stale.
pub fn code_without_debug_info(ptx: &str) -> Vec<String> {
    const MARKS: [&str; 2] = ["_INTERNAL_", "_GLOBAL__N__"];
    let mut in_debug = false;
    let mut out = Vec::new();
    for line in ptx.lines() {
        let t = line.trim_start();
        if t.starts_with(".section") && t.contains(".debug_") {
            in_debug = true;
        }
        let keep = !in_debug && !t.starts_with(".loc") && !t.starts_with(".file") && !t.starts_with("//");
        if in_debug && t.starts_with('}') {
            in_debug = false;
        }
        if !keep {
            continue;
        }
        let mut masked = line.to_string();
        for mark in MARKS {
            let mut done = String::with_capacity(masked.len());
            let mut rest = masked.as_str();
            while let Some(i) = rest.find(mark) {
                done.push_str(&rest[..i + mark.len()]);
                rest = &rest[i + mark.len()..];
                let hex = rest.chars().take_while(|c| c.is_ascii_hexdigit()).count();
                done.push_str("########");
                rest = &rest[hex..];
            }
            done.push_str(rest);
            masked = done;
        }
        out.push(masked);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_info_paths_and_hashes_do_not_count() {
        let a = ".file 1 \"/a/x.cu\"\nld.global.u32 %r1, [_ZN_INTERNAL_0123abcd_4_x_cu_v_GLOBAL__N__0000aaaa_1];\n.loc 1 2 3\n\
                 .section .debug_str\n{\n.b8 1,2\n}\nret;";
        let b = ".file 1 \"/b/x.cu\"\nld.global.u32 %r1, [_ZN_INTERNAL_99990000_4_x_cu_v_GLOBAL__N__ffff0000_1];\n.loc 1 7 3\n\
                 .section .debug_str\n{\n.b8 3,4,5\n}\nret;";
        assert_eq!(code_without_debug_info(a), code_without_debug_info(b));
        assert_ne!(code_without_debug_info(a), code_without_debug_info("ret;"));
    }
}
