//! RE2's syntax and limits, as Envoy compiles every regex it is given (`safe_regex` matchers
//! and rewrite patterns). Rust's `regex-syntax` parses a superset of RE2's syntax; what RE2
//! refuses, or reads differently, is refused here from the syntax tree:
//! - `\u`/`\U` escapes, `\x{...}` past `\x{ff}` (Envoy's RE2 reads patterns as Latin-1), `\<`, `\>`, `\b{...}`, class set operations (`&&`, `--`, `~~`) and
//!   nested classes, flags other than `imsU`, `(?<name>...)` (RE2 knows `(?P<name>...)`);
//! - Unicode classes RE2 does not name exactly as written (`\p{greek}`, `\p{Letter}`,
//!   `\p{sc=Greek}`): general categories and established scripts only;
//! - a repetition operator applied to a repetition (`a**`, `a{2}{3}`), counts over 1,000 and
//!   nested counts whose product is over 1,000;
//! - a program larger than the gateway Module's `regex_max_size` (Emissary's default 200),
//!   estimated from above: Envoy's own limit (`re2.max_program_size.error_level`) is lifted in
//!   the bootstrap, so this one is the limit;
//! - the empty pattern (the `RegexMatcher` rule `min_len: 1`).

use regex_syntax::{
    ast::{self, Ast, ClassSet, ClassSetItem, ClassUnicodeKind, Flag, GroupKind, LiteralKind},
    hir::{self, HirKind},
};

use super::shown;

/// Emissary's `regex_max_size` when the Module sets none (`v3route.py`, `regex_matcher`).
pub const DEFAULT_MAX_PROGRAM_SIZE: usize = 200;

/// The largest regex program allowed, in RE2 instructions (`regex_max_size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegexLimit(pub usize);

impl Default for RegexLimit {
    fn default() -> Self {
        Self(DEFAULT_MAX_PROGRAM_SIZE)
    }
}

/// The `re2.max_program_size.error_level` the bootstrap gives Envoy (its default is 100): above
/// any `regex_max_size` (a CRD count), so the Module's limit is the one that holds.
pub const ENVOY_ERROR_LEVEL: u64 = i32::MAX as u64;

/// RE2's `kMaxRepeat`: a larger count, or nested counts whose product is larger, are refused.
const MAX_REPEAT: u32 = 1000;

/// Deeper nesting than this is refused before the tree is walked (RE2 allows 1,000; a pattern
/// this deep is far over the program size anyway).
const NEST_LIMIT: u32 = 64;

/// Why Envoy's RE2 would refuse a pattern.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegexError {
    #[error("{field}: invalid regular expression {}: {detail}", shown(.pattern))]
    Invalid {
        field: String,
        pattern: String,
        detail: String,
    },
    #[error(
        "{field}: regular expression {} is too large (about {size} RE2 instructions; the gateway Module's regex_max_size is {max}); simplify it",
        shown(.pattern)
    )]
    TooLarge {
        field: String,
        pattern: String,
        size: usize,
        max: usize,
    },
}

impl From<RegexError> for String {
    fn from(e: RegexError) -> Self {
        e.to_string()
    }
}

impl From<RegexError> for crate::ir::Refusal {
    fn from(e: RegexError) -> Self {
        Self::from(e.to_string())
    }
}

/// Whether Envoy's RE2 compiles `pattern` within `max` instructions (`regex_max_size`).
pub fn regex(field: &str, pattern: &str, max: usize) -> Result<(), RegexError> {
    let invalid = |detail: String| RegexError::Invalid {
        field: field.to_owned(),
        pattern: pattern.to_owned(),
        detail,
    };
    if pattern.is_empty() {
        return Err(invalid("empty; Envoy needs a pattern".into()));
    }
    let ast = ast::parse::ParserBuilder::new()
        .nest_limit(NEST_LIMIT)
        .build()
        .parse(pattern)
        .map_err(|e| invalid(last_line(&e)))?;
    check(&ast, MAX_REPEAT).map_err(|why| invalid(why.into()))?;
    // Translating checks what parsing does not: class names, ranges, empty classes.
    hir::translate::Translator::new()
        .translate(pattern, &ast)
        .map_err(|e| invalid(last_line(&e)))?;
    let size = Size {
        pattern,
        folds: if folds(&ast) { 2 } else { 1 },
    };
    // RE2 adds a fail instruction, a match and the `.*?` loop of an unanchored search.
    let size = size.of(&ast).saturating_add(4);
    if size > max {
        return Err(RegexError::TooLarge {
            field: field.to_owned(),
            pattern: pattern.to_owned(),
            size,
            max,
        });
    }
    Ok(())
}

/// A parser error's last line: the others draw the pattern with a caret under it.
fn last_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().last().unwrap_or_default().to_owned()
}

/// Refuses what RE2 does not accept, or reads otherwise. `budget` is what is left of
/// [`MAX_REPEAT`] under the counted repetitions enclosing `ast` (RE2's `RepetitionWalker`).
fn check(ast: &Ast, budget: u32) -> Result<(), &'static str> {
    match ast {
        Ast::Empty(_) | Ast::Dot(_) | Ast::ClassPerl(_) => Ok(()),
        Ast::Flags(f) => flags(&f.flags),
        Ast::Literal(l) => literal(l),
        Ast::Assertion(a) => {
            use ast::AssertionKind as K;
            match a.kind {
                K::StartLine | K::EndLine | K::StartText | K::EndText => Ok(()),
                K::WordBoundary | K::NotWordBoundary => Ok(()),
                _ => Err("RE2 knows the word boundaries \\b and \\B only"),
            }
        }
        Ast::ClassUnicode(c) => unicode_class(c),
        Ast::ClassBracketed(c) => bracketed(c),
        Ast::Repetition(r) => {
            if matches!(*r.ast, Ast::Repetition(_)) {
                return Err("RE2 refuses a repetition operator after another (a**, a{2}{3})");
            }
            let budget = match &r.op.kind {
                ast::RepetitionKind::Range(range) => {
                    use ast::RepetitionRange as R;
                    let (min, max) = match *range {
                        R::Exactly(n) => (n, Some(n)),
                        R::AtLeast(n) => (n, None),
                        R::Bounded(m, n) => (m, Some(n)),
                    };
                    if min > MAX_REPEAT || max.is_some_and(|n| n > MAX_REPEAT) {
                        return Err("RE2 counts repetitions up to 1000");
                    }
                    match max.unwrap_or(min) {
                        0 => budget,
                        n => match budget / n {
                            0 => {
                                return Err(
                                    "RE2 refuses nested repetition counts over 1000 in all",
                                );
                            }
                            left => left,
                        },
                    }
                }
                _ => budget,
            };
            check(&r.ast, budget)
        }
        Ast::Group(g) => {
            match &g.kind {
                GroupKind::CaptureIndex(_) => {}
                GroupKind::CaptureName {
                    starts_with_p,
                    name,
                } => {
                    if !starts_with_p {
                        return Err("RE2 names groups as (?P<name>...)");
                    }
                    if !name
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err("RE2 group names are letters, digits and _");
                    }
                }
                GroupKind::NonCapturing(f) => flags(f)?,
            }
            check(&g.ast, budget)
        }
        Ast::Alternation(a) => a.asts.iter().try_for_each(|a| check(a, budget)),
        Ast::Concat(c) => c.asts.iter().try_for_each(|a| check(a, budget)),
    }
}

fn flags(f: &ast::Flags) -> Result<(), &'static str> {
    let known = f.items.iter().all(|item| match item.kind {
        ast::FlagsItemKind::Negation => true,
        ast::FlagsItemKind::Flag(flag) => matches!(
            flag,
            Flag::CaseInsensitive | Flag::MultiLine | Flag::DotMatchesNewLine | Flag::SwapGreed
        ),
    });
    if known {
        Ok(())
    } else {
        Err("RE2 knows the flags i, m, s and U only")
    }
}

fn literal(l: &ast::Literal) -> Result<(), &'static str> {
    match &l.kind {
        LiteralKind::HexFixed(ast::HexLiteralKind::X)
        | LiteralKind::HexBrace(ast::HexLiteralKind::X)
            if l.c <= '\u{ff}' =>
        {
            Ok(())
        }
        LiteralKind::HexBrace(ast::HexLiteralKind::X) => {
            Err("Envoy's RE2 reads patterns as Latin-1: \\x{...} goes up to \\x{ff}")
        }
        LiteralKind::HexFixed(_) | LiteralKind::HexBrace(_) => {
            Err("RE2 writes a code point as \\x{...}, not \\u or \\U")
        }
        LiteralKind::Verbatim | LiteralKind::Meta | LiteralKind::Special(_) => Ok(()),
        LiteralKind::Superfluous if l.c.is_ascii_punctuation() => Ok(()),
        LiteralKind::Superfluous | LiteralKind::Octal => Err("RE2 does not know this escape"),
    }
}

fn bracketed(c: &ast::ClassBracketed) -> Result<(), &'static str> {
    match &c.kind {
        ClassSet::BinaryOp(_) => Err("RE2 has no class set operations (&&, --, ~~)"),
        ClassSet::Item(item) => class_item(item),
    }
}

fn class_item(item: &ClassSetItem) -> Result<(), &'static str> {
    match item {
        ClassSetItem::Empty(_) | ClassSetItem::Ascii(_) | ClassSetItem::Perl(_) => Ok(()),
        ClassSetItem::Literal(l) => literal(l),
        ClassSetItem::Range(r) => literal(&r.start).and_then(|()| literal(&r.end)),
        ClassSetItem::Unicode(u) => unicode_class(u),
        ClassSetItem::Bracketed(_) => Err("RE2 reads [ inside a class as itself; escape it as \\["),
        ClassSetItem::Union(u) => u.items.iter().try_for_each(class_item),
    }
}

/// `\pL`, `\p{Greek}`: RE2 knows the general categories and the scripts by their exact names
/// (no loose matching, no long names, no `name=value`).
fn unicode_class(c: &ast::ClassUnicode) -> Result<(), &'static str> {
    let known = match &c.kind {
        ClassUnicodeKind::OneLetter(l) => "CLMNPSZ".contains(*l),
        ClassUnicodeKind::Named(name) => {
            UNICODE_CATEGORIES.contains(&name.as_str()) || UNICODE_SCRIPTS.contains(&name.as_str())
        }
        ClassUnicodeKind::NamedValue { .. } => false,
    };
    if known {
        Ok(())
    } else {
        Err(
            "RE2 knows Unicode general categories (\\pL, \\p{Lu}) and scripts (\\p{Greek}) by their exact names only",
        )
    }
}

const UNICODE_CATEGORIES: &[&str] = &[
    "Any", "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn",
    "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm",
    "So", "Z", "Zl", "Zp", "Zs",
];

/// Scripts long in Unicode (and so in RE2's tables, whichever version Envoy builds).
const UNICODE_SCRIPTS: &[&str] = &[
    "Arabic",
    "Armenian",
    "Bengali",
    "Bopomofo",
    "Braille",
    "Buginese",
    "Buhid",
    "Canadian_Aboriginal",
    "Cherokee",
    "Common",
    "Coptic",
    "Cyrillic",
    "Devanagari",
    "Ethiopic",
    "Georgian",
    "Glagolitic",
    "Greek",
    "Gujarati",
    "Gurmukhi",
    "Han",
    "Hangul",
    "Hanunoo",
    "Hebrew",
    "Hiragana",
    "Inherited",
    "Kannada",
    "Katakana",
    "Khmer",
    "Lao",
    "Latin",
    "Limbu",
    "Malayalam",
    "Mongolian",
    "Myanmar",
    "Ogham",
    "Oriya",
    "Runic",
    "Sinhala",
    "Syriac",
    "Tagalog",
    "Tagbanwa",
    "Tamil",
    "Telugu",
    "Thaana",
    "Thai",
    "Tibetan",
    "Tifinagh",
    "Yi",
];

/// An upper bound of the program size Envoy's RE2 reports. Envoy 1.40's RE2 reads a pattern as
/// Latin-1 (measured: `\x{100}` is refused, `\p{Greek}` compiles to nothing), so each byte of
/// a literal is one instruction and a class is one instruction per range of bytes; an
/// alternative or optional copy adds a split, a capture two instructions; counted repetitions
/// are unrolled as RE2 unrolls them. Saturating: a bound past `usize` is refused all the same.
struct Size<'p> {
    pattern: &'p str,
    /// Case folding can split a class's ranges (and a non-ASCII literal's bytes) in two.
    folds: usize,
}

impl Size<'_> {
    fn of(&self, ast: &Ast) -> usize {
        use ast::RepetitionKind as K;
        match ast {
            Ast::Empty(_) | Ast::Flags(_) => 0,
            Ast::Assertion(_) => 1,
            Ast::Literal(l) => match l.c.len_utf8() {
                1 => 1,
                n => n.saturating_mul(self.folds),
            },
            Ast::Dot(span) => self.class(span),
            Ast::ClassPerl(c) => self.class(&c.span),
            Ast::ClassUnicode(c) => self.class(&c.span),
            Ast::ClassBracketed(c) => self.class(&c.span),
            Ast::Group(g) => {
                let captures = if matches!(g.kind, GroupKind::NonCapturing(_)) {
                    0
                } else {
                    2
                };
                self.of(&g.ast).saturating_add(captures)
            }
            Ast::Concat(c) => c
                .asts
                .iter()
                .map(|a| self.of(a))
                .fold(0, usize::saturating_add),
            Ast::Alternation(a) => a
                .asts
                .iter()
                .map(|a| self.of(a))
                .fold(a.asts.len().saturating_sub(1), usize::saturating_add),
            Ast::Repetition(r) => {
                let one = self.of(&r.ast);
                let (min, max) = match &r.op.kind {
                    K::ZeroOrOne => (0, Some(1)),
                    K::ZeroOrMore => (0, None),
                    K::OneOrMore => (1, None),
                    K::Range(ast::RepetitionRange::Exactly(n)) => (*n, Some(*n)),
                    K::Range(ast::RepetitionRange::AtLeast(n)) => (*n, None),
                    K::Range(ast::RepetitionRange::Bounded(m, n)) => (*m, Some(*n)),
                };
                let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
                let (min, max) = (count(min), max.map(count));
                match max {
                    Some(max) => one
                        .saturating_mul(max.max(1))
                        .saturating_add(max.saturating_sub(min)),
                    None => one.saturating_mul(min.max(1)).saturating_add(1),
                }
            }
        }
    }

    /// A class as Latin-1 RE2 compiles it: its ranges that start within Latin-1, plus one per
    /// non-ASCII byte written in it (each is a character of its own when read as Latin-1).
    fn class(&self, span: &ast::Span) -> usize {
        let text = self
            .pattern
            .get(span.start.offset..span.end.offset)
            .unwrap_or_default();
        let ranges = ast::parse::Parser::new()
            .parse(text)
            .ok()
            .and_then(|ast| hir::translate::Translator::new().translate(text, &ast).ok())
            .map_or(LATIN_1_RANGES, |hir| match hir.kind() {
                HirKind::Class(hir::Class::Unicode(c)) => {
                    c.ranges().iter().filter(|r| r.start() <= '\u{ff}').count()
                }
                HirKind::Class(hir::Class::Bytes(c)) => c.ranges().len(),
                _ => LATIN_1_RANGES,
            });
        let non_ascii = text.bytes().filter(|b| !b.is_ascii()).count();
        ranges
            .saturating_add(non_ascii)
            .saturating_mul(self.folds)
            .max(1)
    }
}

/// The most ranges a class of Latin-1 characters can have.
const LATIN_1_RANGES: usize = 128;

/// Whether any part of the pattern is case-insensitive (`(?i)`).
fn folds(ast: &Ast) -> bool {
    let has_i = |f: &ast::Flags| {
        f.items
            .iter()
            .any(|i| i.kind == ast::FlagsItemKind::Flag(Flag::CaseInsensitive))
    };
    match ast {
        Ast::Flags(f) => has_i(&f.flags),
        Ast::Group(g) => matches!(&g.kind, GroupKind::NonCapturing(f) if has_i(f)) || folds(&g.ast),
        Ast::Repetition(r) => folds(&r.ast),
        Ast::Concat(c) => c.asts.iter().any(folds),
        Ast::Alternation(a) => a.asts.iter().any(folds),
        _ => false,
    }
}

/// The size [`regex`] estimates for a pattern it parses (for the tests that hold it above the
/// sizes Envoy reports).
#[cfg(test)]
pub(super) fn estimate(pattern: &str) -> usize {
    let ast = ast::parse::Parser::new()
        .parse(pattern)
        .unwrap_or_else(|e| panic!("{e}"));
    let size = Size {
        pattern,
        folds: if folds(&ast) { 2 } else { 1 },
    };
    size.of(&ast).saturating_add(4)
}
