//! Lexer and parser for the PTX that nvcc emits, to a small syntax tree (`ast`).
//!
//! The parser knows the shape of PTX (directives, declarations, labels, instructions and their
//! operands) but not what instructions mean; `lower` gives them meaning. Names stay strings here
//! and are resolved to indices once, in `lower`.

use crate::error::{Result, VmError};

/// A token with the PTX line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// Identifier, directive (`.reg`), register (`%r1`), opcode (`ld.global.v4.f32`).
    Ident(String),
    /// Numeric literal, as written.
    Num(String),
    /// String literal without quotes.
    Str(String),
    /// One punctuation character.
    Punct(char),
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c == b'%' || c == b'.'
}

fn is_ident_cont(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.'
}

/// Splits PTX text into tokens, dropping comments.
pub(crate) fn lex(text: &str) -> Result<Vec<(Tok, u32)>> {
    let mut lx = Lexer { src: text.as_bytes(), pos: 0, line: 1 };
    let mut out = Vec::with_capacity(text.len() / 4);
    while let Some(t) = lx.next()? {
        out.push(t);
    }
    Ok(out)
}

impl Lexer<'_> {
    fn next(&mut self) -> Result<Option<(Tok, u32)>> {
        let s = self.src;
        loop {
            if self.pos >= s.len() {
                return Ok(None);
            }
            let c = s[self.pos];
            if c == b'\n' {
                self.line += 1;
                self.pos += 1;
            } else if c.is_ascii_whitespace() {
                self.pos += 1;
            } else if c == b'/' && s.get(self.pos + 1) == Some(&b'/') {
                while self.pos < s.len() && s[self.pos] != b'\n' {
                    self.pos += 1;
                }
            } else if c == b'/' && s.get(self.pos + 1) == Some(&b'*') {
                self.pos += 2;
                while self.pos < s.len() && !(s[self.pos] == b'*' && s.get(self.pos + 1) == Some(&b'/')) {
                    if s[self.pos] == b'\n' {
                        self.line += 1;
                    }
                    self.pos += 1;
                }
                self.pos += 2;
            } else {
                break;
            }
        }
        let line = self.line;
        let start = self.pos;
        let c = s[start];
        let tok = if is_ident_start(c) {
            self.pos += 1;
            // A directive ends at the next dot: inline asm writes `.reg.b32`.
            let directive = c == b'.';
            loop {
                match s.get(self.pos) {
                    Some(b'.') if directive => break,
                    Some(&c) if is_ident_cont(c) => self.pos += 1,
                    // `.L2::cache_hint`: a double colon continues a name; a single one ends a label.
                    Some(b':') if s.get(self.pos + 1) == Some(&b':') => self.pos += 2,
                    _ => break,
                }
            }
            Tok::Ident(text_of(s, start, self.pos))
        } else if c.is_ascii_digit() {
            self.pos += 1;
            while self.pos < s.len() && (s[self.pos].is_ascii_alphanumeric() || s[self.pos] == b'.') {
                self.pos += 1;
            }
            Tok::Num(text_of(s, start, self.pos))
        } else if c == b'"' {
            self.pos += 1;
            while self.pos < s.len() && s[self.pos] != b'"' {
                if s[self.pos] == b'\n' {
                    self.line += 1;
                }
                self.pos += 1;
            }
            let t = text_of(s, start + 1, self.pos.min(s.len()));
            self.pos += 1;
            Tok::Str(t)
        } else if b"{}()[],;:@!|+-<>=".contains(&c) {
            self.pos += 1;
            Tok::Punct(c as char)
        } else {
            return Err(VmError::Parse { line, message: format!("unexpected character `{}`", c as char) });
        };
        Ok(Some((tok, line)))
    }
}

fn text_of(s: &[u8], a: usize, b: usize) -> String {
    String::from_utf8_lossy(&s[a..b]).into_owned()
}

/// The syntax tree.
pub(crate) mod ast {
    /// A numeric literal.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum Lit {
        /// Integer (two's complement bits; negatives sign-extended).
        Int(u64),
        /// `0f........`: f32 bits.
        F32(u32),
        /// `0d................`: f64 bits.
        F64(u64),
    }

    /// An instruction operand.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Operand {
        /// A register, variable, label or function name.
        Name(String),
        /// A literal.
        Lit(Lit),
        /// `[base+offset]`; base may be absent (`[0x10]`).
        Addr { base: Option<String>, offset: i64 },
        /// `{a, b, ...}`.
        Vec(Vec<Operand>),
        /// `d|p` (a result and a predicate result).
        Pair(String, String),
        /// `!p`.
        Not(String),
        /// `(a, b, ...)`, only in `call`.
        List(Vec<Operand>),
        /// `[a, b, ...]`: the texture and surface operand forms (`[tex, {x, y}]`), which the VM
        /// parses but does not implement.
        Bracket(Vec<Operand>),
        /// `_` (a sink).
        Sink,
    }

    /// A machine instruction as written.
    #[derive(Clone, Debug)]
    pub struct Instr {
        /// Guard predicate and whether it is negated.
        pub guard: Option<(String, bool)>,
        /// Opcode split at dots: `ld.global.v4.f32` -> ["ld", "global", "v4", "f32"].
        pub opcode: Vec<String>,
        /// Operands.
        pub operands: Vec<Operand>,
        /// PTX line.
        pub line: u32,
        /// Source location index into `Module::locs` (0 = none).
        pub loc: u32,
    }

    /// A variable declaration (`.shared .align 16 .b8 smem[1024];`).
    #[derive(Clone, Debug)]
    pub struct VarDecl {
        /// State space: "global", "shared", "local", "const", "param".
        pub space: String,
        /// Name.
        pub name: String,
        /// Element type without the dot, e.g. "b8", "u32".
        pub ty: String,
        /// Total size in bytes (0 for `[]`).
        pub size: usize,
        /// Alignment in bytes.
        pub align: usize,
        /// Initial values, one per element.
        pub init: Vec<Lit>,
        /// Elements initialised with the address of a name (`{0, 0, _ZN4Rect4areaEv}`: a vtable):
        /// (element index, name). `init` holds 0 at those indices.
        pub addr_init: Vec<(usize, String)>,
        /// Declared `.extern`.
        pub is_extern: bool,
        /// Declared with an unsized `[]`.
        pub unsized_array: bool,
        /// Declared as an array (`[N]`) or vector (`.v2`/`.v4`), not a scalar.
        pub is_array: bool,
        /// Carries the `.ptr` attribute (a kernel parameter that holds an address).
        pub is_ptr: bool,
        /// PTX line.
        pub line: u32,
    }

    /// A statement of a function body.
    #[derive(Clone, Debug)]
    pub enum Stmt {
        /// `.reg .type name` (expanded ranges: one entry per register).
        Reg { ty: String, names: Vec<String> },
        /// A variable in a body (`.local`, `.shared`, `.param`...).
        Var(VarDecl),
        /// `name:`.
        Label(String),
        /// `{`.
        Open,
        /// `}`.
        Close,
        /// An instruction.
        Instr(Instr),
    }

    /// An `.entry` or `.func`.
    #[derive(Clone, Debug)]
    pub struct Function {
        /// Name.
        pub name: String,
        /// True for `.entry`.
        pub is_entry: bool,
        /// Return parameters (`.func` only).
        pub rets: Vec<VarDecl>,
        /// Parameters.
        pub params: Vec<VarDecl>,
        /// Body, None for a declaration.
        pub body: Option<Vec<Stmt>>,
        /// `.maxntid` / `.reqntid`.
        pub maxntid: Option<[u32; 3]>,
        /// PTX line of the header.
        pub line: u32,
    }

    /// A whole module.
    #[derive(Clone, Debug, Default)]
    pub struct Module {
        /// `.target` values.
        pub target: Vec<String>,
        /// `.address_size`.
        pub address_size: u32,
        /// Module-scope variables.
        pub vars: Vec<VarDecl>,
        /// Functions and kernels.
        pub functions: Vec<Function>,
        /// `.file` table: index -> path.
        pub files: Vec<(u32, String)>,
        /// Distinct `.loc` values (file index, line, and the `inlined_at` file index and line, 0 when
        /// absent); entry 0 is "none".
        pub locs: Vec<(u32, u32, u32, u32)>,
    }
}

use ast::*;

struct Parser {
    toks: Vec<(Tok, u32)>,
    pos: usize,
    cur_loc: u32,
    locs: Vec<(u32, u32, u32, u32)>,
    loc_ids: std::collections::HashMap<(u32, u32, u32, u32), u32>,
    /// The outermost call site each recently seen inlined (file, line) was inlined at.
    inlined: std::collections::HashMap<(u32, u32), (u32, u32)>,
}

/// Parses PTX text to a syntax tree.
pub(crate) fn parse(text: &str) -> Result<Module> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        cur_loc: 0,
        locs: vec![(0, 0, 0, 0)],
        loc_ids: Default::default(),
        inlined: Default::default(),
    };
    let mut m = p.module()?;
    m.locs = std::mem::take(&mut p.locs);
    Ok(m)
}

fn type_size(ty: &str) -> Option<usize> {
    Some(match ty {
        "b8" | "u8" | "s8" | "pred" => 1,
        "b16" | "u16" | "s16" | "f16" | "bf16" => 2,
        "b32" | "u32" | "s32" | "f32" | "f16x2" | "bf16x2" | "tf32" => 4,
        "b64" | "u64" | "s64" | "f64" => 8,
        "b128" => 16,
        _ => return None,
    })
}

/// Parses a numeric literal as PTX writes it.
pub(crate) fn parse_number(s: &str, line: u32) -> Result<Lit> {
    let bad = || VmError::Parse { line, message: format!("bad numeric literal `{s}`") };
    let t = s.trim_end_matches(['U', 'u']);
    if let Some(h) = t.strip_prefix("0f").or_else(|| t.strip_prefix("0F")) {
        return u32::from_str_radix(h, 16).map(Lit::F32).map_err(|_| bad());
    }
    if let Some(h) = t.strip_prefix("0d").or_else(|| t.strip_prefix("0D")) {
        return u64::from_str_radix(h, 16).map(Lit::F64).map_err(|_| bad());
    }
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).map(Lit::Int).map_err(|_| bad());
    }
    if let Some(b) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        return u64::from_str_radix(b, 2).map(Lit::Int).map_err(|_| bad());
    }
    if t.contains('.') || t.contains('e') || t.contains('E') {
        return t.parse::<f64>().map(|v| Lit::F64(v.to_bits())).map_err(|_| bad());
    }
    if t.len() > 1 && t.starts_with('0') {
        return u64::from_str_radix(&t[1..], 8).map(Lit::Int).map_err(|_| bad());
    }
    t.parse::<u64>().map(Lit::Int).map_err(|_| bad())
}

fn negate(l: Lit) -> Lit {
    match l {
        Lit::Int(v) => Lit::Int(v.wrapping_neg()),
        Lit::F32(b) => Lit::F32(b ^ 0x8000_0000),
        Lit::F64(b) => Lit::F64(b ^ (1 << 63)),
    }
}

impl Parser {
    fn line(&self) -> u32 {
        self.toks.get(self.pos).or(self.toks.last()).map(|t| t.1).unwrap_or(0)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T> {
        Err(VmError::Parse { line: self.line(), message: message.into() })
    }

    fn bump(&mut self) -> Result<Tok> {
        match self.toks.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.0.clone())
            }
            None => self.err("unexpected end of input"),
        }
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.is_punct(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, c: char) -> Result<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            self.err(format!("expected `{c}`, found {:?}", self.peek()))
        }
    }

    fn ident(&mut self) -> Result<String> {
        match self.bump()? {
            Tok::Ident(s) => Ok(s),
            t => {
                self.pos -= 1;
                self.err(format!("expected a name, found {t:?}"))
            }
        }
    }

    fn is_ident(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(x)) if x == s)
    }

    fn number(&mut self) -> Result<Lit> {
        let line = self.line();
        let neg = self.eat_punct('-');
        match self.bump()? {
            Tok::Num(s) => {
                let l = parse_number(&s, line)?;
                Ok(if neg { negate(l) } else { l })
            }
            t => self.err(format!("expected a number, found {t:?}")),
        }
    }

    fn uint(&mut self) -> Result<u64> {
        match self.number()? {
            Lit::Int(v) => Ok(v),
            _ => self.err("expected an integer"),
        }
    }

    /// Skips the rest of the current source line (for `.loc ..., inlined_at ...`).
    fn skip_line(&mut self, line: u32) {
        while self.toks.get(self.pos).is_some_and(|t| t.1 == line) {
            self.pos += 1;
        }
    }

    fn skip_braces(&mut self) -> Result<()> {
        self.expect_punct('{')?;
        let mut depth = 1;
        while depth > 0 {
            match self.bump()? {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    fn module(&mut self) -> Result<Module> {
        let mut m = Module::default();
        while let Some(t) = self.peek().cloned() {
            let line = self.line();
            let Tok::Ident(d) = t else {
                return self.err(format!("unexpected {t:?} at module scope"));
            };
            match d.as_str() {
                ".version" => {
                    self.pos += 1;
                    self.bump()?;
                }
                ".target" => {
                    self.pos += 1;
                    m.target.push(self.ident()?);
                    while self.eat_punct(',') {
                        m.target.push(self.ident()?);
                    }
                }
                ".address_size" => {
                    self.pos += 1;
                    m.address_size = self.uint()? as u32;
                }
                ".file" => {
                    self.pos += 1;
                    let idx = self.uint()? as u32;
                    let path = match self.bump()? {
                        Tok::Str(s) => s,
                        _ => return self.err("expected a file name"),
                    };
                    m.files.push((idx, path));
                    self.skip_line(line);
                }
                ".section" => {
                    self.pos += 1;
                    self.ident()?;
                    self.skip_braces()?;
                }
                ".pragma" => {
                    self.pos += 1;
                    self.bump()?;
                    self.expect_punct(';')?;
                }
                _ => {
                    let mut is_extern = false;
                    loop {
                        match self.peek() {
                            Some(Tok::Ident(s)) if s == ".visible" || s == ".weak" || s == ".common" => self.pos += 1,
                            Some(Tok::Ident(s)) if s == ".extern" => {
                                is_extern = true;
                                self.pos += 1
                            }
                            _ => break,
                        }
                    }
                    match self.peek() {
                        Some(Tok::Ident(s)) if s == ".entry" || s == ".func" => {
                            let f = self.function()?;
                            m.functions.push(f);
                        }
                        Some(Tok::Ident(s)) if [".global", ".shared", ".const", ".local"].contains(&s.as_str()) => {
                            let mut v = self.var_decl()?;
                            v.is_extern = is_extern;
                            self.expect_punct(';')?;
                            m.vars.push(v);
                        }
                        _ => {
                            return Err(VmError::Unsupported {
                                what: format!("module-scope `{d}`"),
                                line,
                                source: None,
                            });
                        }
                    }
                }
            }
        }
        Ok(m)
    }

    /// `.space [.align N] [.vN] .type name[N][M] [= init]` (without the `;`).
    fn var_decl(&mut self) -> Result<VarDecl> {
        let line = self.line();
        let space = self.ident()?.trim_start_matches('.').to_string();
        let mut align = 0;
        let mut vec = 1;
        let mut ty = None;
        let mut is_ptr = false;
        while let Some(Tok::Ident(s)) = self.peek().cloned() {
            if s == ".align" {
                self.pos += 1;
                align = self.uint()? as usize;
            } else if s == ".v2" || s == ".v4" || s == ".v8" {
                self.pos += 1;
                vec = s[2..].parse().unwrap_or(1);
            } else if s == ".ptr" || s.starts_with(".attribute") {
                is_ptr |= s == ".ptr";
                self.pos += 1;
                if self.is_punct('(') {
                    while !self.eat_punct(')') {
                        self.bump()?;
                    }
                }
            } else if let Some(t) = s.strip_prefix('.') {
                if type_size(t).is_some() {
                    self.pos += 1;
                    ty = Some(t.to_string());
                    if self.is_ident(".ptr") {
                        continue;
                    }
                    break;
                }
                // `.param .ptr .global .align 4 .b32` style qualifiers.
                if t == "global" || t == "shared" || t == "const" || t == "local" {
                    self.pos += 1;
                    continue;
                }
                return Err(VmError::Unsupported { what: format!("variable qualifier `{s}`"), line, source: None });
            } else {
                break;
            }
        }
        let Some(ty) = ty else { return self.err("expected a type in a variable declaration") };
        let elem = type_size(&ty).unwrap_or(1) * vec;
        let name = self.ident()?;
        let mut count = 1usize;
        let mut unsized_array = false;
        let is_array = vec > 1 || self.is_punct('[');
        while self.eat_punct('[') {
            if self.eat_punct(']') {
                unsized_array = true;
                count = 0;
            } else {
                count = count.saturating_mul(self.uint()? as usize);
                self.expect_punct(']')?;
            }
        }
        let mut init = Vec::new();
        let mut addr_init = Vec::new();
        if self.eat_punct('=') {
            self.initializer(&mut init, &mut addr_init)?;
        }
        Ok(VarDecl {
            space,
            name,
            ty,
            size: elem * count,
            align: if align == 0 { elem.max(1) } else { align },
            init,
            addr_init,
            is_extern: false,
            unsized_array,
            is_array,
            is_ptr,
            line,
        })
    }

    fn initializer(&mut self, out: &mut Vec<Lit>, addrs: &mut Vec<(usize, String)>) -> Result<()> {
        if self.eat_punct('{') {
            loop {
                if self.eat_punct('}') {
                    break;
                }
                self.initializer(out, addrs)?;
                if !self.eat_punct(',') {
                    self.expect_punct('}')?;
                    break;
                }
            }
            Ok(())
        } else if matches!(self.peek(), Some(Tok::Ident(s)) if !s.starts_with('.')) {
            // The address of a function or variable; `generic(name)` and `name+offset` are refused
            // when the module is lowered, where the name can be resolved.
            let name = self.ident()?;
            if self.is_punct('(') || self.is_punct('+') {
                return Err(VmError::Unsupported {
                    what: format!("address initialiser `{name}` with an offset or generic()"),
                    line: self.line(),
                    source: None,
                });
            }
            addrs.push((out.len(), name));
            out.push(Lit::Int(0));
            Ok(())
        } else {
            out.push(self.number()?);
            Ok(())
        }
    }

    fn param_list(&mut self) -> Result<Vec<VarDecl>> {
        let mut v = Vec::new();
        self.expect_punct('(')?;
        if self.eat_punct(')') {
            return Ok(v);
        }
        loop {
            v.push(self.var_decl()?);
            if self.eat_punct(')') {
                return Ok(v);
            }
            self.expect_punct(',')?;
        }
    }

    fn function(&mut self) -> Result<Function> {
        let line = self.line();
        let is_entry = self.ident()? == ".entry";
        let mut rets = Vec::new();
        if self.is_punct('(') {
            rets = self.param_list()?;
        }
        let name = self.ident()?;
        let params = if self.is_punct('(') { self.param_list()? } else { Vec::new() };
        let mut maxntid = None;
        loop {
            match self.peek().cloned() {
                Some(Tok::Ident(d)) if d == ".maxntid" || d == ".reqntid" => {
                    self.pos += 1;
                    let mut dims = [1u32; 3];
                    dims[0] = self.uint()? as u32;
                    let mut i = 1;
                    while self.eat_punct(',') && i < 3 {
                        dims[i] = self.uint()? as u32;
                        i += 1;
                    }
                    maxntid = Some(dims);
                }
                Some(Tok::Ident(d))
                    if d == ".minnctapersm" || d == ".maxnreg" || d == ".maxnctapersm" || d == ".maxclusterrank" =>
                {
                    self.pos += 1;
                    self.uint()?;
                }
                Some(Tok::Ident(d)) if d == ".reqnctapercluster" || d == ".explicitcluster" => {
                    self.pos += 1;
                    while matches!(self.peek(), Some(Tok::Num(_))) || self.is_punct(',') {
                        self.pos += 1;
                    }
                }
                Some(Tok::Ident(d)) if d == ".noreturn" => self.pos += 1,
                Some(Tok::Ident(d)) if d == ".pragma" => {
                    self.pos += 1;
                    self.bump()?;
                    self.expect_punct(';')?;
                }
                _ => break,
            }
        }
        let body = if self.eat_punct(';') { None } else { Some(self.body()?) };
        Ok(Function { name, is_entry, rets, params, body, maxntid, line })
    }

    fn body(&mut self) -> Result<Vec<Stmt>> {
        self.expect_punct('{')?;
        let mut out = Vec::new();
        let mut depth = 1;
        while depth > 0 {
            let line = self.line();
            match self.bump()? {
                Tok::Punct('{') => {
                    depth += 1;
                    out.push(Stmt::Open);
                }
                Tok::Punct('}') => {
                    depth -= 1;
                    if depth > 0 {
                        out.push(Stmt::Close);
                    }
                }
                Tok::Punct('@') => {
                    let neg = self.eat_punct('!');
                    let p = self.ident()?;
                    let mut ins = self.instr(line)?;
                    ins.guard = Some((p, neg));
                    out.push(Stmt::Instr(ins));
                }
                Tok::Ident(s) if s == ".reg" => {
                    let ty = self.ident()?;
                    let ty = match ty.as_str() {
                        ".v2" | ".v4" => {
                            return Err(VmError::Unsupported { what: "vector registers".into(), line, source: None });
                        }
                        _ => ty.trim_start_matches('.').to_string(),
                    };
                    let mut names = Vec::new();
                    loop {
                        let n = self.ident()?;
                        if self.eat_punct('<') {
                            let k = self.uint()?;
                            self.expect_punct('>')?;
                            for i in 0..k {
                                names.push(format!("{n}{i}"));
                            }
                        } else {
                            names.push(n);
                        }
                        if !self.eat_punct(',') {
                            break;
                        }
                    }
                    self.expect_punct(';')?;
                    out.push(Stmt::Reg { ty, names });
                }
                Tok::Ident(s) if [".local", ".shared", ".param", ".const", ".global"].contains(&s.as_str()) => {
                    self.pos -= 1;
                    let v = self.var_decl()?;
                    self.expect_punct(';')?;
                    out.push(Stmt::Var(v));
                }
                Tok::Ident(s) if s == ".loc" => {
                    // `.loc file line col[, function_name $L.., inlined_at file line col]`
                    let file = self.uint()? as u32;
                    let l = self.uint()? as u32;
                    let mut inl = (0, 0);
                    while self.toks.get(self.pos).is_some_and(|t| t.1 == line) {
                        if self.is_ident("inlined_at") {
                            self.pos += 1;
                            inl = (self.uint()? as u32, self.uint()? as u32);
                        } else {
                            self.pos += 1;
                        }
                    }
                    // A header function inlined into another that is inlined into the kernel: name
                    // the outermost call site, the line of the user's own source.
                    if inl != (0, 0) {
                        if let Some(&outer) = self.inlined.get(&inl) {
                            inl = outer;
                        }
                        self.inlined.insert((file, l), inl);
                    }
                    let key = (file, l, inl.0, inl.1);
                    let next = self.locs.len() as u32;
                    self.cur_loc = *self.loc_ids.entry(key).or_insert(next);
                    if self.cur_loc == next {
                        self.locs.push(key);
                    }
                }
                Tok::Ident(s) if s == ".pragma" => {
                    self.bump()?;
                    self.expect_punct(';')?;
                }
                Tok::Ident(s) if s == ".callprototype" => {
                    // `label: .callprototype (rets) _ (params);` names the signature of an indirect
                    // call; the VM takes the signature from the call's own argument lists.
                    while !self.eat_punct(';') {
                        self.bump()?;
                    }
                }
                Tok::Ident(s) if s.starts_with('.') => {
                    return Err(VmError::Unsupported {
                        what: format!("directive `{s}` in a function body"),
                        line,
                        source: None,
                    });
                }
                Tok::Ident(s) => {
                    if self.eat_punct(':') {
                        out.push(Stmt::Label(s));
                    } else {
                        self.pos -= 1;
                        let ins = self.instr(line)?;
                        out.push(Stmt::Instr(ins));
                    }
                }
                t => return self.err(format!("unexpected {t:?} in a function body")),
            }
        }
        Ok(out)
    }

    fn instr(&mut self, line: u32) -> Result<Instr> {
        let op = self.ident()?;
        let opcode: Vec<String> = op.split('.').map(|s| s.to_string()).collect();
        let mut operands = Vec::new();
        if !self.eat_punct(';') {
            loop {
                operands.push(self.operand()?);
                if self.eat_punct(';') {
                    break;
                }
                self.expect_punct(',')?;
            }
        }
        Ok(Instr { guard: None, opcode, operands, line, loc: self.cur_loc })
    }

    fn operand(&mut self) -> Result<Operand> {
        match self.peek().cloned() {
            Some(Tok::Punct('[')) => {
                self.pos += 1;
                let mut base = None;
                let mut offset = 0i64;
                if let Some(Tok::Ident(_)) = self.peek() {
                    base = Some(self.ident()?);
                    // `[r+8]`, `[r+-8]` and `[r-8]`: `number` reads the sign.
                    if self.eat_punct('+') || self.is_punct('-') {
                        offset = self.uint()? as i64;
                    }
                    if offset == 0 && self.eat_punct(',') {
                        let mut v = vec![Operand::Name(base.unwrap_or_default())];
                        loop {
                            v.push(self.operand()?);
                            if self.eat_punct(']') {
                                return Ok(Operand::Bracket(v));
                            }
                            self.expect_punct(',')?;
                        }
                    }
                } else {
                    offset = self.uint()? as i64;
                }
                self.expect_punct(']')?;
                Ok(Operand::Addr { base, offset })
            }
            Some(Tok::Punct('{')) => {
                self.pos += 1;
                let mut v = Vec::new();
                loop {
                    v.push(self.operand()?);
                    if self.eat_punct('}') {
                        break;
                    }
                    self.expect_punct(',')?;
                }
                Ok(Operand::Vec(v))
            }
            Some(Tok::Punct('(')) => {
                self.pos += 1;
                let mut v = Vec::new();
                if self.eat_punct(')') {
                    return Ok(Operand::List(v));
                }
                loop {
                    v.push(self.operand()?);
                    if self.eat_punct(')') {
                        break;
                    }
                    self.expect_punct(',')?;
                }
                Ok(Operand::List(v))
            }
            Some(Tok::Punct('!')) => {
                self.pos += 1;
                Ok(Operand::Not(self.ident()?))
            }
            Some(Tok::Punct('-')) | Some(Tok::Num(_)) => Ok(Operand::Lit(self.number()?)),
            Some(Tok::Ident(s)) => {
                self.pos += 1;
                if s == "_" && !self.is_punct('|') {
                    return Ok(Operand::Sink);
                }
                if self.eat_punct('|') {
                    let p = self.ident()?;
                    return Ok(Operand::Pair(s, p));
                }
                // `var+8` as a `mov` source (address of a variable plus an offset).
                if self.is_punct('+') {
                    self.pos += 1;
                    let off = self.uint()? as i64;
                    return Ok(Operand::Addr { base: Some(s), offset: off });
                }
                Ok(Operand::Name(s))
            }
            t => self.err(format!("unexpected {t:?} in an operand")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_in_all_ptx_forms() {
        assert_eq!(parse_number("0f3F800000", 1).ok(), Some(Lit::F32(0x3f80_0000)));
        assert_eq!(parse_number("0d3FF0000000000000", 1).ok(), Some(Lit::F64(0x3ff0_0000_0000_0000)));
        assert_eq!(parse_number("0xff", 1).ok(), Some(Lit::Int(255)));
        assert_eq!(parse_number("42", 1).ok(), Some(Lit::Int(42)));
        assert_eq!(parse_number("42U", 1).ok(), Some(Lit::Int(42)));
    }
}
