//! Device `printf`: the argument buffer CUDA's `vprintf` receives, formatted as the host C
//! library formats it.
//!
//! nvcc lowers `printf(fmt, ...)` to `vprintf(fmt, args)`: `fmt` is the generic address of the
//! format string, `args` the generic address of a local buffer holding the arguments after C's
//! default promotions (`char`/`short` to `int`, `float` to `double`), each at its natural alignment
//! from the buffer's start. The CUDA runtime formats the records on the host at synchronisation
//! (CUDA C++ Programming Guide, "Formatted Output"), so the text is what the host's `printf` writes
//! for the same conversion specification; here that is glibc's, reimplemented for the conversions
//! CUDA documents: `%d %i %u %o %x %X %c %s %p %f %F %e %E %g %G %a %A %%`, the flags `- + space # 0`,
//! widths and precisions (also `*`), and the length modifiers `hh h l ll j z t L`. `%n` writes
//! nothing and consumes its pointer. An unknown conversion is copied as written; one cut off by the
//! end of the string writes nothing.
//!
//! At most [`MAX_ARGS`] (32) arguments are read; from the first conversion that would read more,
//! conversions are written as they stand in the format, as CUDA documents.
//!
//! What `vprintf` returns: CUDA's `printf` returns the number of arguments it parsed (0 when there
//! are none, -1 for a null format string), not the number of characters; here every value read
//! from the buffer counts, including a `*` width or precision.

/// The formatted text and what `printf` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formatted {
    /// The bytes written.
    pub text: Vec<u8>,
    /// The number of arguments read from the buffer.
    pub returned: i32,
}

#[derive(Clone, Copy, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: Option<Count>,
    precision: Option<Count>,
    /// Bytes of the integer argument: 1 (hh), 2 (h), 4, 8 (l, ll, j, z, t).
    int_bytes: u8,
    conv: u8,
}

#[derive(Clone, Copy)]
enum Count {
    Fixed(usize),
    Star,
}

enum Piece<'a> {
    Text(&'a [u8]),
    /// A conversion and its text as written.
    Conv(Spec, &'a [u8]),
}

/// The most arguments one `printf` reads (CUDA C++ Programming Guide, "Formatted Output": at most
/// 32 besides the format; a conversion past them is written as-is).
pub const MAX_ARGS: usize = 32;

/// Splits a format string into literal text and conversion specifications.
fn pieces(fmt: &[u8]) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut lit = 0;
    while i < fmt.len() {
        if fmt[i] != b'%' {
            i += 1;
            continue;
        }
        if lit < i {
            out.push(Piece::Text(&fmt[lit..i]));
        }
        let start = i;
        i += 1;
        let mut s = Spec { int_bytes: 4, ..Spec::default() };
        while let Some(&c) = fmt.get(i) {
            match c {
                b'-' => s.minus = true,
                b'+' => s.plus = true,
                b' ' => s.space = true,
                b'#' => s.alt = true,
                b'0' => s.zero = true,
                _ => break,
            }
            i += 1;
        }
        let count = |i: &mut usize| -> Option<Count> {
            if fmt.get(*i) == Some(&b'*') {
                *i += 1;
                return Some(Count::Star);
            }
            let d0 = *i;
            let mut v = 0usize;
            while let Some(c) = fmt.get(*i).filter(|c| c.is_ascii_digit()) {
                v = v.saturating_mul(10).saturating_add((c - b'0') as usize);
                *i += 1;
            }
            (*i > d0).then_some(Count::Fixed(v))
        };
        s.width = count(&mut i);
        if fmt.get(i) == Some(&b'.') {
            i += 1;
            s.precision = Some(count(&mut i).unwrap_or(Count::Fixed(0)));
        }
        loop {
            match fmt.get(i) {
                Some(b'h') if fmt.get(i + 1) == Some(&b'h') => {
                    s.int_bytes = 1;
                    i += 2;
                }
                Some(b'h') => {
                    s.int_bytes = 2;
                    i += 1;
                }
                Some(b'l' | b'j' | b'z' | b't' | b'q' | b'L') => {
                    s.int_bytes = 8;
                    i += 1;
                }
                _ => break,
            }
        }
        match fmt.get(i) {
            Some(&c) if b"diuoxXcspfFeEgGaAn%".contains(&c) => {
                s.conv = c;
                i += 1;
                out.push(Piece::Conv(s, &fmt[start..i]));
            }
            // An unknown or cut-off conversion is copied as written.
            Some(_) => {
                i += 1;
                out.push(Piece::Text(&fmt[start..i]));
            }
            // glibc writes nothing for a conversion cut off by the end of the string.
            None => {}
        }
        lit = i;
    }
    if lit < fmt.len() {
        out.push(Piece::Text(&fmt[lit..]));
    }
    out
}

/// How many values a conversion reads: its `*` width and precision, then its argument.
fn reads(s: &Spec) -> usize {
    matches!(s.width, Some(Count::Star)) as usize
        + matches!(s.precision, Some(Count::Star)) as usize
        + (arg_bytes(s) > 0) as usize
}

/// Bytes of the value a conversion reads from the buffer.
fn arg_bytes(s: &Spec) -> u8 {
    match s.conv {
        b'd' | b'i' | b'u' | b'o' | b'x' | b'X' => s.int_bytes.max(4),
        b'c' => 4,
        b'%' => 0,
        _ => 8,
    }
}

/// Bytes of the argument buffer a format string reads (the end of its last argument).
pub fn args_size(fmt: &[u8]) -> usize {
    let mut pos = 0usize;
    let mut read = 0usize;
    let mut take = |n: u8| pos = pos.div_ceil(n as usize) * n as usize + n as usize;
    for p in pieces(fmt) {
        if let Piece::Conv(s, _) = p {
            read += reads(&s);
            if read > MAX_ARGS {
                break;
            }
            if matches!(s.width, Some(Count::Star)) {
                take(4);
            }
            if matches!(s.precision, Some(Count::Star)) {
                take(4);
            }
            if arg_bytes(&s) > 0 {
                take(arg_bytes(&s));
            }
        }
    }
    pos
}

/// Reads the arguments in order, each at its natural alignment.
struct Args<'a> {
    buf: &'a [u8],
    pos: usize,
    read: i32,
}

impl Args<'_> {
    fn take(&mut self, n: u8) -> u64 {
        let at = self.pos.div_ceil(n as usize) * n as usize;
        self.pos = at + n as usize;
        self.read += 1;
        let mut b = [0u8; 8];
        if let Some(src) = self.buf.get(at..at + n as usize) {
            b[..n as usize].copy_from_slice(src);
        }
        u64::from_le_bytes(b)
    }
}

/// Formats `fmt` with the arguments in `args` (the `vprintf` buffer). `string_at` reads the
/// NUL-terminated string a `%s` argument points to (None: the caller reports the fault; nothing is
/// written for it).
pub fn format(fmt: &[u8], args: &[u8], string_at: &mut dyn FnMut(u64) -> Option<Vec<u8>>) -> Formatted {
    let mut out = Vec::new();
    let mut a = Args { buf: args, pos: 0, read: 0 };
    // Once a conversion finds no room among the 32 arguments, the rest are written as they stand.
    let mut full = false;
    for p in pieces(fmt) {
        let mut s = match p {
            Piece::Text(t) => {
                out.extend_from_slice(t);
                continue;
            }
            Piece::Conv(s, raw) => {
                full |= a.read as usize + reads(&s) > MAX_ARGS;
                if full {
                    out.extend_from_slice(raw);
                    continue;
                }
                s
            }
        };
        if s.conv == b'%' {
            out.push(b'%');
            continue;
        }
        let width = match s.width {
            Some(Count::Star) => {
                // A negative `*` width is the `-` flag and its magnitude (C11 7.21.6.1).
                let w = a.take(4) as u32 as i32;
                s.minus |= w < 0;
                w.unsigned_abs() as usize
            }
            Some(Count::Fixed(w)) => w,
            None => 0,
        };
        let precision = match s.precision {
            Some(Count::Star) => {
                let p = a.take(4) as u32 as i32;
                (p >= 0).then_some(p as usize)
            }
            Some(Count::Fixed(p)) => Some(p),
            None => None,
        };
        let v = a.take(arg_bytes(&s));
        let body = match s.conv {
            b'd' | b'i' | b'u' | b'o' | b'x' | b'X' => int(&s, precision, v),
            b'c' => Field { sign: Vec::new(), digits: vec![v as u8], zero_ok: false },
            b's' => {
                let mut text = if v == 0 {
                    // glibc prints a null string as "(null)", or nothing when the precision is shorter.
                    if precision.is_some_and(|p| p < 6) {
                        Vec::new()
                    } else {
                        b"(null)".to_vec()
                    }
                } else {
                    string_at(v).unwrap_or_default()
                };
                if let Some(p) = precision {
                    text.truncate(p);
                }
                Field { sign: Vec::new(), digits: text, zero_ok: false }
            }
            b'p' => {
                if v == 0 {
                    Field { sign: Vec::new(), digits: b"(nil)".to_vec(), zero_ok: false }
                } else {
                    let sign = if s.plus {
                        b"+0x".to_vec()
                    } else if s.space {
                        b" 0x".to_vec()
                    } else {
                        b"0x".to_vec()
                    };
                    Field { sign, digits: format!("{v:x}").into_bytes(), zero_ok: true }
                }
            }
            b'n' => continue,
            _ => float(&s, precision, f64::from_bits(v)),
        };
        pad(&mut out, &s, width, body);
    }
    Formatted { text: out, returned: a.read }
}

/// A converted value: its sign or prefix, its digits, and whether the `0` flag may pad between them.
struct Field {
    sign: Vec<u8>,
    digits: Vec<u8>,
    zero_ok: bool,
}

fn pad(out: &mut Vec<u8>, s: &Spec, width: usize, f: Field) {
    let len = f.sign.len() + f.digits.len();
    let fill = width.saturating_sub(len);
    if s.minus {
        out.extend_from_slice(&f.sign);
        out.extend_from_slice(&f.digits);
        out.resize(out.len() + fill, b' ');
    } else if s.zero && f.zero_ok {
        out.extend_from_slice(&f.sign);
        out.resize(out.len() + fill, b'0');
        out.extend_from_slice(&f.digits);
    } else {
        out.resize(out.len() + fill, b' ');
        out.extend_from_slice(&f.sign);
        out.extend_from_slice(&f.digits);
    }
}

fn sign_of(s: &Spec, negative: bool) -> Vec<u8> {
    if negative {
        b"-".to_vec()
    } else if s.plus {
        b"+".to_vec()
    } else if s.space {
        b" ".to_vec()
    } else {
        Vec::new()
    }
}

fn int(s: &Spec, precision: Option<usize>, raw: u64) -> Field {
    let bits = 8 * s.int_bytes as u32;
    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let u = raw & mask;
    let signed = matches!(s.conv, b'd' | b'i');
    let (negative, mag) = if signed && bits < 64 && (u >> (bits - 1)) & 1 == 1 {
        (true, (!u & mask) + 1)
    } else if signed && bits == 64 && (u as i64) < 0 {
        (true, (u as i64).unsigned_abs())
    } else {
        (false, u)
    };
    let mut digits = match s.conv {
        b'o' => format!("{mag:o}"),
        b'x' => format!("{mag:x}"),
        b'X' => format!("{mag:X}"),
        _ => format!("{mag}"),
    }
    .into_bytes();
    if precision == Some(0) && mag == 0 {
        digits.clear();
    }
    if let Some(p) = precision {
        if digits.len() < p {
            let mut z = vec![b'0'; p - digits.len()];
            z.extend_from_slice(&digits);
            digits = z;
        }
    }
    let mut sign = if signed { sign_of(s, negative) } else { Vec::new() };
    if s.alt {
        match s.conv {
            b'o' if digits.first() != Some(&b'0') => digits.insert(0, b'0'),
            b'x' if mag != 0 => sign.extend_from_slice(b"0x"),
            b'X' if mag != 0 => sign.extend_from_slice(b"0X"),
            _ => {}
        }
    }
    // C11 7.21.6.1: with a precision, the `0` flag is ignored for integer conversions.
    Field { sign, digits, zero_ok: precision.is_none() }
}

fn float(s: &Spec, precision: Option<usize>, x: f64) -> Field {
    let upper = s.conv.is_ascii_uppercase();
    let sign = sign_of(s, x.is_sign_negative());
    if !x.is_finite() {
        let t = if x.is_nan() { "nan" } else { "inf" };
        let t = if upper { t.to_ascii_uppercase() } else { t.to_string() };
        return Field { sign, digits: t.into_bytes(), zero_ok: false };
    }
    let x = x.abs();
    let text = match s.conv.to_ascii_lowercase() {
        b'f' => fixed(x, precision.unwrap_or(6), s.alt),
        b'e' => sci(x, precision.unwrap_or(6), s.alt),
        b'g' => general(x, precision.unwrap_or(6), s.alt),
        _ => hex(x, precision, s.alt),
    };
    let text = if upper { text.to_ascii_uppercase() } else { text };
    Field { sign, digits: text.into_bytes(), zero_ok: true }
}

/// `%f` of a non-negative finite value: Rust's fixed formatting rounds the exact binary value to
/// nearest, ties to even, as glibc does.
fn fixed(x: f64, p: usize, alt: bool) -> String {
    let mut t = format!("{x:.p$}");
    if alt && p == 0 {
        t.push('.');
    }
    t
}

/// Mantissa digits (with the point) and decimal exponent of `x` to `p` digits after the point.
fn sci_parts(x: f64, p: usize) -> (String, i32) {
    let t = format!("{x:.p$e}");
    let (m, e) = t.split_once('e').unwrap_or((&t, "0"));
    (m.to_string(), e.parse().unwrap_or(0))
}

fn with_exponent(mut m: String, e: i32, alt: bool) -> String {
    if alt && !m.contains('.') {
        m.push('.');
    }
    let sign = if e < 0 { '-' } else { '+' };
    format!("{m}e{sign}{:02}", e.unsigned_abs())
}

fn sci(x: f64, p: usize, alt: bool) -> String {
    let (m, e) = sci_parts(x, p);
    with_exponent(m, e, alt)
}

/// `%g` (C11 7.21.6.1): `%e` style when the exponent X after rounding to P significant digits is
/// below -4 or at least P, else `%f` with P-1-X decimals; trailing zeros removed unless `#`.
fn general(x: f64, p: usize, alt: bool) -> String {
    let p = p.max(1);
    let (_, x_exp) = sci_parts(x, p - 1);
    let strip = |t: String| -> String {
        if alt || !t.contains('.') {
            return t;
        }
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if x_exp < -4 || x_exp >= p as i32 {
        let (m, e) = sci_parts(x, p - 1);
        with_exponent(strip(m), e, alt)
    } else {
        let decimals = (p as i32 - 1 - x_exp) as usize;
        let mut t = strip(format!("{x:.decimals$}"));
        if alt && !t.contains('.') {
            t.push('.');
        }
        t
    }
}

/// `%a` as glibc writes a double: `0x1.<hex>p<exp>` for normal numbers, `0x0.<hex>p-1022` for
/// subnormals; without a precision the fraction is exact with trailing zeros dropped, with one it
/// is rounded to nearest, ties to even (the leading digit may become 2).
fn hex(x: f64, precision: Option<usize>, alt: bool) -> String {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let mut frac = bits & ((1u64 << 52) - 1);
    let (mut lead, exp) = match (biased, frac) {
        (0, 0) => (0u64, 0),
        (0, _) => (0, -1022),
        _ => (1, biased - 1023),
    };
    let mut ndig = 13usize;
    if let Some(p) = precision.filter(|&p| p < 13) {
        let drop = 4 * (13 - p) as u32;
        let keep = frac >> drop;
        let rest = frac & ((1u64 << drop) - 1);
        let half = 1u64 << (drop - 1);
        let mut r = keep;
        // Ties go to the even last digit kept, which is the leading digit when no fraction is.
        let last = if p == 0 { lead } else { keep };
        if rest > half || (rest == half && last & 1 == 1) {
            r += 1;
        }
        if p == 0 {
            lead += r;
            frac = 0;
        } else if r >> (4 * p) != 0 {
            lead += 1;
            frac = r & ((1u64 << (4 * p)) - 1);
        } else {
            frac = r;
        }
        ndig = p;
    }
    let mut digits = if ndig == 0 { String::new() } else { format!("{frac:0ndig$x}") };
    match precision {
        None => digits = digits.trim_end_matches('0').to_string(),
        Some(p) if p > 13 => digits.extend(std::iter::repeat_n('0', p - 13)),
        _ => {}
    }
    let point = if digits.is_empty() && !alt { "" } else { "." };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("0x{lead}{point}{digits}p{sign}{}", exp.unsigned_abs())
}

/// Appends `text` to `out` while `out` stays within `cap` bytes (cut at a character boundary);
/// what does not fit is added to `dropped`.
pub fn append_capped(out: &mut String, dropped: &mut u64, text: &str, cap: usize) {
    let room = cap.saturating_sub(out.len());
    if text.len() <= room {
        out.push_str(text);
        return;
    }
    let cut = (0..=room).rev().find(|&c| text.is_char_boundary(c)).unwrap_or(0);
    out.push_str(&text[..cut]);
    *dropped += (text.len() - cut) as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `vprintf` argument, as the buffer holds it after C's default promotions.
    enum A {
        I(i32),
        L(i64),
        D(f64),
        S(&'static str),
        P(u64),
    }

    /// Lays the arguments out as nvcc does (natural alignment); strings get fake addresses.
    fn run(fmt: &str, args: &[A]) -> (String, i32) {
        run_layout(fmt, args, None)
    }

    /// [`run`], where the format reads only the first `size` bytes of the buffer.
    fn run_sized(fmt: &str, args: &[A], size: usize) -> (String, i32) {
        run_layout(fmt, args, Some(size))
    }

    fn run_layout(fmt: &str, args: &[A], layout: Option<usize>) -> (String, i32) {
        let mut buf = Vec::new();
        let mut strings = Vec::new();
        let mut put = |b: &[u8]| {
            let at = buf.len().div_ceil(b.len()) * b.len();
            buf.resize(at, 0xcc);
            buf.extend_from_slice(b);
        };
        for a in args {
            match a {
                A::I(v) => put(&v.to_le_bytes()),
                A::L(v) => put(&v.to_le_bytes()),
                A::D(v) => put(&v.to_le_bytes()),
                A::P(v) => put(&v.to_le_bytes()),
                A::S(s) => {
                    strings.push(s.as_bytes().to_vec());
                    put(&(0x1000 + strings.len() as u64 - 1).to_le_bytes());
                }
            }
        }
        assert_eq!(args_size(fmt.as_bytes()), layout.unwrap_or(buf.len()), "argument layout of {fmt:?}");
        let f = format(fmt.as_bytes(), &buf, &mut |p| strings.get((p - 0x1000) as usize).cloned());
        (String::from_utf8(f.text).unwrap(), f.returned)
    }

    #[test]
    // 3.14159 is a literal whose printed digits the expectations spell out, not an approximation of pi.
    #[allow(clippy::approx_constant)]
    fn conversions_match_glibc_printf() {
        // Expected text from glibc 2.x printf with the same arguments (gcc on x86-64 Linux).
        let cases: Vec<(&str, Vec<A>, &str)> = vec![
            ("%d|%i|%u", vec![A::I(42), A::I(-7), A::I(-1)], "42|-7|4294967295"),
            (
                "%5d|%-5d|%05d|%+d|% d|%.3d|%.0d|%+.0d",
                vec![A::I(42), A::I(42), A::I(-42), A::I(42), A::I(42), A::I(7), A::I(0), A::I(0)],
                "   42|42   |-0042|+42| 42|007||+",
            ),
            (
                "%x|%X|%#x|%#X|%o|%#o|%#o|%#x",
                vec![A::I(255), A::I(255), A::I(255), A::I(255), A::I(8), A::I(8), A::I(0), A::I(0)],
                "ff|FF|0xff|0XFF|10|010|0|0",
            ),
            ("%08.3x|%-#10x|%#010x", vec![A::I(255), A::I(255), A::I(255)], "     0ff|0xff      |0x000000ff"),
            ("%#.3o|%#.0o|%.0x", vec![A::I(8), A::I(0), A::I(0)], "010|0|"),
            (
                "%ld|%lld|%llu|%lu|%lx",
                vec![A::L(-1234567890123), A::L(9223372036854775807), A::L(-1), A::L(-1), A::L(-2)],
                "-1234567890123|9223372036854775807|18446744073709551615|18446744073709551615|fffffffffffffffe",
            ),
            (
                "%hd|%hhd|%hu|%hhu|%hx",
                vec![A::I(70000), A::I(200), A::I(-1), A::I(-1), A::I(-1)],
                "4464|-56|65535|255|ffff",
            ),
            ("%c|%3c|%-3c|%05c|", vec![A::I(65), A::I(66), A::I(67), A::I(97)], "A|  B|C  |    a|"),
            (
                "%s|%8s|%-8s|%.2s|%8.3s|%05s|",
                vec![A::S("hello"), A::S("abc"), A::S("abc"), A::S("hello"), A::S("hello"), A::S("ab")],
                "hello|     abc|abc     |he|     hel|   ab|",
            ),
            ("[%s|%.3s|%8s|%.6s]", vec![A::P(0), A::P(0), A::P(0), A::P(0)], "[(null)||  (null)|(null)]"),
            ("%-05d|%+x", vec![A::I(3), A::I(5)], "3    |5"),
            (
                "%f|%F|%.2f|%10.3f|%-10.1f|%+f|% f|%010.2f|%.0f|%#.0f",
                vec![
                    A::D(3.14159),
                    A::D(2.5),
                    A::D(2.675),
                    A::D(-1.0005),
                    A::D(9.96),
                    A::D(1.0),
                    A::D(1.0),
                    A::D(-3.14159),
                    A::D(2.5),
                    A::D(3.0),
                ],
                "3.141590|2.500000|2.67|    -1.000|10.0      |+1.000000| 1.000000|-000003.14|2|3.",
            ),
            (
                "%e|%E|%.2e|%12.3e|%.0e|%#.0e|%e",
                vec![A::D(12345.678), A::D(0.00012), A::D(9.995), A::D(-1e100), A::D(5e-324), A::D(1.0), A::D(0.0)],
                "1.234568e+04|1.200000E-04|9.99e+00| -1.000e+100|5e-324|1.e+00|0.000000e+00",
            ),
            (
                "%g|%G|%g|%g|%g|%.3g|%#g|%g|%.0g|%g",
                vec![
                    A::D(100000.0),
                    A::D(1e-05),
                    A::D(1234567.0),
                    A::D(0.0001),
                    A::D(123.456),
                    A::D(3.14159),
                    A::D(1.5),
                    A::D(0.0),
                    A::D(15.0),
                    A::D(1e300),
                ],
                "100000|1E-05|1.23457e+06|0.0001|123.456|3.14|1.50000|0|2e+01|1e+300",
            ),
            (
                "%a|%A|%a|%.2a|%.0a|%a|%a|%.1a",
                vec![
                    A::D(1.0),
                    A::D(-0.5),
                    A::D(0.1),
                    A::D(1.0 / 3.0),
                    A::D(1.5),
                    A::D(5e-324),
                    A::D(0.0),
                    A::D(1.96875),
                ],
                "0x1p+0|-0X1P-1|0x1.999999999999ap-4|0x1.55p-2|0x2p+0|0x0.0000000000001p-1022|0x0p+0|0x2.0p+0",
            ),
            (
                "%f|%e|%g|%F|%5.1f|%-6f|%+f",
                vec![
                    A::D(f64::INFINITY),
                    A::D(f64::NEG_INFINITY),
                    A::D(f64::NAN),
                    A::D(f64::INFINITY),
                    A::D(f64::NAN),
                    A::D(f64::INFINITY),
                    A::D(f64::INFINITY),
                ],
                "inf|-inf|nan|INF|  nan|inf   |+inf",
            ),
            (
                "%*d|%-*d|%.*f|%*.*e|",
                vec![A::I(6), A::I(42), A::I(-6), A::I(42), A::I(2), A::D(3.14159), A::I(12), A::I(3), A::D(31.4159)],
                "    42|42    |3.14|   3.142e+01|",
            ),
            (
                "%p|%p|%20p",
                vec![A::P(0x7f001234abcd), A::P(0), A::P(0x10)],
                "0x7f001234abcd|(nil)|                0x10",
            ),
            ("100%% done %d%%", vec![A::I(7)], "100% done 7%"),
            (
                "%.15g|%.17g|%.20f",
                vec![A::D(0.1), A::D(0.1), A::D(0.1)],
                "0.1|0.10000000000000001|0.10000000000000000555",
            ),
            ("%f|%.3f|%g", vec![A::D(1e22), A::D(-0.0), A::D(-0.0)], "10000000000000000000000.000000|-0.000|-0"),
            ("%5%|%", vec![], "%|"),
            ("[%-5", vec![], "["),
        ];
        for (fmt, args, want) in &cases {
            assert_eq!(run(fmt, args).0, *want, "format {fmt:?}");
        }
    }

    #[test]
    fn returns_the_number_of_arguments_read() {
        assert_eq!(run("no arguments\n", &[]), ("no arguments\n".to_string(), 0));
        assert_eq!(run("%d %s %*d", &[A::I(1), A::S("x"), A::I(3), A::I(4)]).1, 4);
    }

    #[test]
    fn floats_are_doubles_and_ints_four_bytes_at_natural_alignment() {
        // int at 0, double at 8, long long at 16, pointer at 24, promoted char at 32.
        assert_eq!(args_size(b"%d %f %lld %p %c"), 36);
        assert_eq!(args_size(b"%hhd%hd%d"), 12);
        assert_eq!(args_size(b"%d%%%d"), 8);
        assert_eq!(args_size(b"%c%f"), 16);
    }

    #[test]
    fn conversions_past_thirty_two_arguments_are_written_as_they_stand() {
        let fmt = "%d ".repeat(31) + "%*d|%x";
        let args: Vec<A> = (0..34).map(A::I).collect();
        // 31 plain values, then `%*d` would read the 32nd and 33rd: it and `%x` stay as written.
        let want = (0..31).map(|i| format!("{i} ")).collect::<String>() + "%*d|%x";
        let (text, n) = run_sized(&fmt, &args, 31 * 4);
        assert_eq!((text.as_str(), n), (want.as_str(), 31));
    }

    #[test]
    fn output_past_the_cap_is_dropped_at_a_character_boundary() {
        let (mut out, mut dropped) = (String::new(), 0);
        append_capped(&mut out, &mut dropped, "abc", 5);
        append_capped(&mut out, &mut dropped, "dé", 5);
        assert_eq!((out.as_str(), dropped), ("abcd", 2));
    }
}
