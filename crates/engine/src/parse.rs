//! Strict JSON parsing into the exact document model.
//!
//! Every document the engine sees enters through [`parse_document`]. It accepts RFC 8259 JSON
//! and nothing else (one value, optional surrounding whitespace) and builds a [`Value`] whose
//! numbers keep their literal text, so no later stage can lose a digit. On top of the grammar
//! it enforces the [`Limits`]: size, nesting depth and duplicate object keys.
//!
//! serde_json does the tokenising; a hand-written tokenizer would be one more place for two
//! JSON readers to disagree. This module adds a visitor that builds the value while counting
//! depth and watching for repeated keys, recovers the spelling of exponents that serde_json
//! rewrites (`NumberLiterals`), and turns serde_json's errors into a small [`ParseError`] with
//! a stable code. `docs/parsing.md` states the rules and the choices made
//! where RFC 8259 leaves them open.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number};

use crate::{Limits, Value};

/// Why a document was refused. Positions are 1-based lines and byte columns, as serde_json
/// counts them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The document is larger than `Limits::max_bytes`; it was not parsed at all.
    #[error("the document is {actual} bytes, more than the limit of {limit} bytes")]
    TooLarge { limit: usize, actual: usize },
    /// Arrays and objects nest deeper than the effective depth limit. The position is at, or
    /// a few bytes after, the opening bracket of the first level too deep: serde_json places
    /// a visitor's error where it stopped reading.
    #[error(
        "arrays and objects nest deeper than the limit of {limit} levels at line {line}, column {column}"
    )]
    TooDeep {
        limit: usize,
        line: usize,
        column: usize,
    },
    /// An object repeats a key while `Limits::allow_duplicate_keys` is off. The position is
    /// the end of the repeated key.
    #[error("the object key {key:?} appears more than once, again at line {line}, column {column}")]
    DuplicateKey {
        key: String,
        line: usize,
        column: usize,
    },
    /// The bytes are not UTF-8; the position is the first byte that is not.
    #[error("the document is not valid UTF-8 at line {line}, column {column}")]
    InvalidUtf8 { line: usize, column: usize },
    /// Anything else that is not one RFC 8259 JSON text; `message` is serde_json's
    /// description without its position.
    #[error("{message} at line {line}, column {column}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
}

impl ParseError {
    /// A stable machine-readable name for the kind of error, for clients and metrics:
    /// messages may be reworded, codes may not.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::TooDeep { .. } => "too_deep",
            Self::DuplicateKey { .. } => "duplicate_key",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::Syntax { .. } => "syntax",
        }
    }
}

/// The message serde_json gives when it hits its own depth limit.
const SERDE_JSON_RECURSION_MESSAGE: &str = "recursion limit exceeded";

/// The map key under which serde_json's `arbitrary_precision` feature hands a number's
/// literal text to a visitor (a one-entry map `{TOKEN: "<digits>"}`).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Parses one JSON document under `limits`.
///
/// The size is checked before anything is read, then the whole input must be UTF-8, must
/// not start with a byte order mark and must hold exactly one JSON value.
pub fn parse_document(bytes: &[u8], limits: &Limits) -> Result<Value, ParseError> {
    let text = checked_text(bytes, limits)?;
    let max_depth = limits.max_depth.min(Limits::MAX_DEPTH_CEILING);
    let context = Context {
        max_depth,
        allow_duplicate_keys: limits.allow_duplicate_keys,
        refusal: Cell::new(None),
        literals: NumberLiterals::new(text),
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    // serde_json's own limit (128 levels, refusing the 128th) would cap `max_depth` at 127;
    // our visitor checks the depth before descending, so recursion stays bounded.
    deserializer.disable_recursion_limit();
    let parsed = ValueSeed {
        context: &context,
        depth: 0,
    }
    .deserialize(&mut deserializer)
    // `end` allows trailing whitespace and refuses anything else.
    .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| to_parse_error(&error, context.refusal.take(), max_depth))
}

/// The checks made before any parse, by both readers (this module's and [`crate::Doc`]'s):
/// the size, then UTF-8 over the whole input, then no byte order mark.
pub(crate) fn checked_text<'a>(bytes: &'a [u8], limits: &Limits) -> Result<&'a str, ParseError> {
    if bytes.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            limit: limits.max_bytes,
            actual: bytes.len(),
        });
    }
    // Checking the whole input up front gives invalid UTF-8 its own error and exact position
    // wherever it is (serde_json would call it a syntax error outside strings), and lets
    // serde_json's `from_str` skip its own per-string check.
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = position_of(bytes, e.valid_up_to());
        ParseError::InvalidUtf8 { line, column }
    })?;
    // RFC 8259 lets a parser ignore a byte order mark; we refuse it so that two readers of
    // the same bytes cannot disagree on whether the document is JSON.
    if text.starts_with('\u{feff}') {
        return Err(ParseError::Syntax {
            message: "the document starts with a byte order mark (U+FEFF), which JSON texts \
                      must not carry"
                .to_owned(),
            line: 1,
            column: 1,
        });
    }
    Ok(text)
}

/// Turns a serde_json error into ours, using the refusal the visitor recorded, if any.
fn to_parse_error(
    error: &serde_json::Error,
    refusal: Option<Refusal>,
    max_depth: usize,
) -> ParseError {
    let (line, column) = (error.line(), error.column());
    match refusal {
        Some(Refusal::TooDeep) => ParseError::TooDeep {
            limit: max_depth,
            line,
            column,
        },
        Some(Refusal::DuplicateKey(key)) => ParseError::DuplicateKey { key, line, column },
        None => {
            // serde_json exposes its message only through `Display`, with the position
            // appended; the position is kept in fields of its own instead.
            let text = error.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = text.strip_suffix(&suffix).unwrap_or(&text);
            if message == SERDE_JSON_RECURSION_MESSAGE {
                ParseError::TooDeep {
                    limit: max_depth,
                    line,
                    column,
                }
            } else {
                ParseError::Syntax {
                    message: message.to_owned(),
                    line,
                    column,
                }
            }
        }
    }
}

/// The line and byte column (both 1-based) of `offset` in `bytes`, counted as serde_json
/// counts them so that every error uses one convention.
fn position_of(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    (line, offset - line_start + 1)
}

/// Why the visitor stopped the parse. serde_json carries only a message for a visitor's
/// error (and adds the position), so the kind travels beside it in [`Context`].
enum Refusal {
    TooDeep,
    DuplicateKey(String),
}

/// What every level of the parse shares.
struct Context<'s> {
    max_depth: usize,
    allow_duplicate_keys: bool,
    refusal: Cell<Option<Refusal>>,
    literals: NumberLiterals<'s>,
}

impl Context<'_> {
    fn refuse<E: de::Error>(&self, refusal: Refusal) -> E {
        self.refusal.set(Some(refusal));
        // Never shown: `to_parse_error` rebuilds the error from the recorded refusal.
        E::custom("refused by the parse limits")
    }
}

/// Gives back the literal text of numbers whose exponent serde_json rewrote.
///
/// Under `arbitrary_precision` serde_json keeps every digit but spells the exponent its own
/// way (`1E400` becomes `1e+400`). Numbers reach the visitor in document order, so the k-th
/// number is the k-th number literal in the source. Numbers without an exponent only bump a
/// counter; for one with an exponent the source is scanned forward from the last literal found,
/// so a parse scans the source at most once, and only as far as its last exponent.
struct NumberLiterals<'s> {
    source: &'s str,
    /// How many numbers the visitor has been handed so far.
    seen: Cell<usize>,
    /// How many literals have been found, and the offset just past the last one.
    found: Cell<(usize, usize)>,
}

impl<'s> NumberLiterals<'s> {
    fn new(source: &'s str) -> Self {
        Self {
            source,
            seen: Cell::new(0),
            found: Cell::new((0, 0)),
        }
    }

    /// Counts a number whose text serde_json left as written.
    fn pass(&self) {
        self.seen.set(self.seen.get() + 1);
    }

    /// Counts a number and returns its literal text, given serde_json's spelling of it.
    fn exact(&self, text: String) -> String {
        let index = self.seen.get();
        self.pass();
        if !text.contains('e') {
            return text;
        }
        match self.locate(index) {
            // The check makes a locator bug cost the spelling, never the value.
            Some(literal) if spell_exponent_as_serde_json(literal) == text => literal.to_owned(),
            _ => {
                debug_assert!(false, "number literal {index} not found for {text}");
                text
            }
        }
    }

    /// The source text of the number literal at `index` (counted from 0), scanning on from
    /// the last one found.
    fn locate(&self, index: usize) -> Option<&'s str> {
        let (mut found, mut offset) = self.found.get();
        while let Some((start, end)) = next_number_literal(self.source.as_bytes(), offset) {
            offset = end;
            found += 1;
            if found > index {
                self.found.set((found, offset));
                return self.source.get(start..end);
            }
        }
        None
    }
}

/// The offsets of the first number literal at or after `from` in a valid JSON prefix: outside
/// strings, only a number has a `-` or a digit.
fn next_number_literal(source: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(&byte) = source.get(i) {
        match byte {
            b'"' => {
                i += 1;
                while let Some(&byte) = source.get(i) {
                    i += if byte == b'\\' { 2 } else { 1 };
                    if byte == b'"' {
                        break;
                    }
                }
            }
            // serde_json hands a number over before it reads what follows, so in a document it
            // then refuses the literal ends where the grammar ends (`-2.5e-3` of `-2.5e-3e`).
            b'-' | b'0'..=b'9' => return number_literal_end(source, i).map(|end| (i, end)),
            _ => i += 1,
        }
    }
    None
}

/// The end of the number literal starting at `start`, by RFC 8259's grammar
/// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`): `None` if no number starts there. A
/// fraction or exponent without digits is not part of the literal (the byte after it then
/// makes the document invalid).
pub(crate) fn number_literal_end(source: &[u8], start: usize) -> Option<usize> {
    let digits_from = |mut i: usize| {
        while source.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = start + usize::from(source.get(start) == Some(&b'-'));
    i = match source.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits_from(i + 1),
        _ => return None,
    };
    if source.get(i) == Some(&b'.') && source.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = digits_from(i + 1);
    }
    if matches!(source.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(source.get(i + 1), Some(b'+' | b'-')));
        if source.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
            i = digits_from(i + 1 + sign);
        }
    }
    Some(i)
}

/// A number literal as serde_json spells it: `e` for the exponent, always with a sign.
fn spell_exponent_as_serde_json(literal: &str) -> String {
    match literal.split_once(['e', 'E']) {
        Some((mantissa, exponent)) if exponent.starts_with(['+', '-']) => {
            format!("{mantissa}e{exponent}")
        }
        Some((mantissa, exponent)) => format!("{mantissa}e+{exponent}"),
        None => literal.to_owned(),
    }
}

/// How many nesting levels [`size_hint`] remembers object sizes for.
const HINTED_DEPTHS: usize = 8;
/// The largest capacity a hint asks for up front: a larger object grows from there.
const MAX_HINT: u8 = 32;

thread_local! {
    /// The member count of the object this thread parsed last at each of the first depths.
    static OBJECT_SIZES: Cell<[u8; HINTED_DEPTHS]> = const { Cell::new([0; HINTED_DEPTHS]) };
}

/// The capacity to give a new object at `depth`: the size of the object this thread last
/// parsed there. Documents a server sees in a row, and the members of one array, mostly share
/// a shape, so an object is usually built without growing (each growth reallocates its
/// entries and rehashes its index; a 17-member object grows four times from empty). A wrong
/// hint costs a little memory or one growth, never a result.
fn size_hint(depth: usize) -> usize {
    OBJECT_SIZES.with(|sizes| sizes.get().get(depth).copied().map_or(0, usize::from))
}

/// Records the member count of an object just parsed at `depth` for [`size_hint`].
fn remember_size(depth: usize, len: usize) {
    if depth < HINTED_DEPTHS {
        OBJECT_SIZES.with(|sizes| {
            let mut all = sizes.get();
            all[depth] = u8::try_from(len).unwrap_or(MAX_HINT).min(MAX_HINT);
            sizes.set(all);
        });
    }
}

/// Builds one value that sits inside `depth` arrays and objects.
#[derive(Clone, Copy)]
struct ValueSeed<'c> {
    context: &'c Context<'c>,
    depth: usize,
}

impl<'c> ValueSeed<'c> {
    /// The seed for the members of an array or object built by this seed. Its depth is
    /// checked by `check_depth` before the container counts as one (see `visit_map`).
    fn inner(self) -> ValueSeed<'c> {
        ValueSeed {
            depth: self.depth + 1,
            ..self
        }
    }

    /// Refuses an array or object built by this seed if it would be too deep. Each level
    /// checks before reading its members, so recursion stops at `max_depth` whatever the
    /// input.
    fn check_depth<E: de::Error>(self) -> Result<(), E> {
        if self.depth + 1 > self.context.max_depth {
            Err(self.context.refuse(Refusal::TooDeep))
        } else {
            Ok(())
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

// Under `arbitrary_precision` serde_json hands an integer that fits `u64` or `i64` (other than
// `-0`) to `visit_u64`/`visit_i64`, which is exact: JSON allows such an integer only one
// spelling, the one `Number` prints. Every other number arrives through `visit_map` with its
// literal text. There is deliberately no `visit_f64`: were the feature ever lost, fractions
// would fail to parse loudly instead of silently losing digits.
impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        self.context.literals.pass();
        Ok(Value::Number(value.into()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        self.context.literals.pass();
        Ok(Value::Number(value.into()))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.check_depth()?;
        let inner = self.inner();
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.inner();
        let mut object = Map::new();
        let mut next_key = match map.next_key_seed(KeySeed)? {
            None => None,
            Some(Key::Name(name)) => {
                object = Map::with_capacity(size_hint(self.depth));
                Some(name)
            }
            // Either serde_json handing over a number, or a document whose first key is
            // literally "$serde_json::private::Number" (serde_json's own `Value` would take
            // `{"$serde_json::private::Number": "1"}` for the number 1). Only serde_json's
            // number passes its text as an owned `String` (`visit_string`); a string in the
            // document arrives through `visit_str`/`visit_borrowed_str`. That tells the two
            // apart, so such a document stays an object.
            Some(Key::Token) => match map.next_value_seed(TokenValueSeed(inner))? {
                TokenValue::NumberText(text) => {
                    // `from_string_unchecked` is the only way to keep a spelling that
                    // serde_json would rewrite (its `FromStr` rewrites the exponent too). It
                    // is hidden from serde_json's docs, but jsonschema 0.60 calls it as well.
                    // The text is safe to take unchecked: serde_json scanned it, and
                    // `exact` returns either that text or a literal spelling the same number.
                    let text = self.context.literals.exact(text);
                    return Ok(Value::Number(Number::from_string_unchecked(text)));
                }
                TokenValue::Other(value) => {
                    // This object's member was read before its own depth check below; that
                    // is safe because `inner` carries the right depth and checks its own
                    // containers.
                    object.insert(NUMBER_TOKEN.to_owned(), value);
                    map.next_key()?
                }
            },
        };
        self.check_depth()?;
        while let Some(key) = next_key {
            // One lookup per member (the key is hashed once), which is most of the map's cost.
            match object.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(inner)?);
                }
                Entry::Occupied(slot) if !self.context.allow_duplicate_keys => {
                    return Err(self
                        .context
                        .refuse(Refusal::DuplicateKey(slot.key().clone())));
                }
                // With duplicates allowed the last one wins, in the first one's place, as in
                // serde_json's own `Value`.
                Entry::Occupied(mut slot) => {
                    slot.insert(map.next_value_seed(inner)?);
                }
            }
            next_key = map.next_key()?;
        }
        remember_size(self.depth, object.len());
        Ok(Value::Object(object))
    }
}

/// An object's first key: serde_json hands a number over as a one-member map whose key is
/// [`NUMBER_TOKEN`], and that key is told apart without allocating it.
enum Key {
    Token,
    Name(String),
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E>(self, value: &str) -> Result<Key, E> {
        Ok(if value == NUMBER_TOKEN {
            Key::Token
        } else {
            Key::Name(value.to_owned())
        })
    }

    fn visit_string<E>(self, value: String) -> Result<Key, E> {
        Ok(if value == NUMBER_TOKEN {
            Key::Token
        } else {
            Key::Name(value)
        })
    }
}

/// What follows a first key equal to [`NUMBER_TOKEN`].
enum TokenValue {
    /// serde_json's number text.
    NumberText(String),
    /// A member value written in the document.
    Other(Value),
}

/// Reads the value after a first key equal to [`NUMBER_TOKEN`], telling serde_json's number
/// text (`visit_string`) from anything the document itself holds.
struct TokenValueSeed<'c>(ValueSeed<'c>);

impl<'de> DeserializeSeed<'de> for TokenValueSeed<'_> {
    type Value = TokenValue;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<TokenValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TokenValueSeed<'_> {
    type Value = TokenValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(formatter)
    }

    fn visit_string<E>(self, value: String) -> Result<TokenValue, E> {
        Ok(TokenValue::NumberText(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TokenValue, E> {
        self.0.visit_unit().map(TokenValue::Other)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<TokenValue, E> {
        self.0.visit_bool(value).map(TokenValue::Other)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<TokenValue, E> {
        self.0.visit_u64(value).map(TokenValue::Other)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<TokenValue, E> {
        self.0.visit_i64(value).map(TokenValue::Other)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<TokenValue, E> {
        self.0.visit_str(value).map(TokenValue::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TokenValue, A::Error> {
        self.0.visit_seq(seq).map(TokenValue::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TokenValue, A::Error> {
        self.0.visit_map(map).map(TokenValue::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Value, ParseError> {
        parse_document(text.as_bytes(), &Limits::default())
    }

    fn nested_arrays(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    #[test]
    fn size_hints_from_earlier_documents_change_nothing() {
        let wide: String = format!(
            "{{{}}}",
            (0..40)
                .map(|i| format!("\"k{i}\":{{\"a\":{i}}}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        // Each document is parsed after one of another shape at the same depths, so that the
        // hints are too large, too small and exact in turn; serde_json's own parse is the
        // reference. Duplicate keys are still caught whatever capacity the object started at.
        for doc in [
            wide.as_str(),
            r#"{"x":{"a":1,"b":2,"c":3}}"#,
            "{}",
            &wide,
            r#"{"a":[{"b":1},{"b":2,"c":[]}]}"#,
        ] {
            let expected: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(parse(doc).unwrap(), expected, "{doc}");
            assert_eq!(
                parse(r#"{"a":1,"b":2,"a":3}"#).unwrap_err().code(),
                "duplicate_key"
            );
        }
        assert!(size_hint(0) <= usize::from(MAX_HINT));
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        for literal in [
            "12345678901234567890",
            "9007199254740993",
            "0.1",
            "1.000000000000000000001",
            "1234567890123456789012345678901234567890",
            "1e400",
            "-0",
            "2718350.0000000",
            "-1.5E-7",
            "0.10",
            "1E+2",
            "0",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
        ] {
            let value = parse(literal).unwrap();
            assert_eq!(serde_json::to_string(&value).unwrap(), literal);
            let wrapped = format!(r#"{{"n":[{literal}]}}"#);
            let value = parse(&wrapped).unwrap();
            assert_eq!(serde_json::to_string(&value).unwrap(), wrapped);
        }
    }

    #[test]
    fn exponents_keep_their_spelling_among_strings_and_other_numbers() {
        let text = concat!(
            r#"{"k1E5": ["-2E3 \" 7e7", 1E5, 2, -0, 3.5E-2, "\\", 4e+1],"#,
            r#" "n": {"$serde_json::private::Number": 6E2}, "m": [0e0, 10000000000000000000000E-1]}"#,
        );
        let value = parse(text).unwrap();
        let compact: String = text.split(", ").collect::<Vec<_>>().join(",");
        let compact = compact.replace(": ", ":");
        assert_eq!(serde_json::to_string(&value).unwrap(), compact);

        // Duplicates that are dropped still count as numbers in the document.
        let limits = Limits {
            allow_duplicate_keys: true,
            ..Limits::default()
        };
        let value = parse_document(br#"{"a":1E1,"a":2E2,"b":[3,4E4]}"#, &limits).unwrap();
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"a":2E2,"b":[3,4E4]}"#
        );
    }

    #[test]
    fn a_number_with_letters_after_its_exponent_is_a_syntax_error() {
        // serde_json hands `-2.5e-3` to the visitor before it reads the `e` it then refuses;
        // the literal's text must still be found where the grammar ends it (this panicked
        // in debug builds when the locator took `-2.5e-3e` for the literal).
        for text in ["-2.5e-3e", "[1E5e]", "[1e+2E, 3]", "1.5e1.", "{\"a\":2E2e}"] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.code(), "syntax", "{text}: {error}");
        }
    }

    #[test]
    fn accepts_scalars_containers_and_surrounding_whitespace() {
        let value =
            parse(" \t\r\n{\"b\": [true, false, null, \"\\u00e9\\ud83d\\ude00\"], \"a\": {}} \n")
                .unwrap();
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            "{\"b\":[true,false,null,\"é😀\"],\"a\":{}}"
        );
        assert_eq!(parse("\"x\"").unwrap(), Value::String("x".to_owned()));
        assert_eq!(parse("null").unwrap(), Value::Null);
    }

    #[test]
    fn refuses_trailing_data() {
        let error = parse("{} {}").unwrap_err();
        assert_eq!(error.code(), "syntax");
        assert_eq!(error.to_string(), "trailing characters at line 1, column 4");
    }

    #[test]
    fn refuses_what_rfc_8259_forbids() {
        for text in [
            "",
            "NaN",
            "[Infinity]",
            "-Infinity",
            "01",
            "[1.]",
            "[.5]",
            "+1",
            "[1,]",
            "{\"a\":1,}",
            "'a'",
            "\"\\uD800\"",
            "\"\\uDC00\"",
            "\"\\uD800\\u0041\"",
            "\"tab\tinside\"",
            "[1] // comment",
            "\"\\x41\"",
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.code(), "syntax", "{text:?} gave {error}");
        }
    }

    #[test]
    fn refuses_invalid_utf8_with_its_position() {
        let error = parse_document(b"{\n  \"a\": \"\xC3\x28\"}", &Limits::default()).unwrap_err();
        assert_eq!(error, ParseError::InvalidUtf8 { line: 2, column: 9 });
        assert_eq!(error.code(), "invalid_utf8");
        assert_eq!(
            error.to_string(),
            "the document is not valid UTF-8 at line 2, column 9"
        );
        // Outside strings too, and encoded surrogates are not UTF-8.
        let error = parse_document(b"[1]\xFF", &Limits::default()).unwrap_err();
        assert_eq!(error, ParseError::InvalidUtf8 { line: 1, column: 4 });
        let error = parse_document(b"[\"\xED\xA0\x80\"]", &Limits::default()).unwrap_err();
        assert_eq!(error.code(), "invalid_utf8");
    }

    #[test]
    fn refuses_a_byte_order_mark() {
        let error = parse_document(b"\xEF\xBB\xBF{}", &Limits::default()).unwrap_err();
        assert_eq!(error.code(), "syntax");
        assert!(error.to_string().contains("byte order mark"), "{error}");
    }

    #[test]
    fn refuses_duplicate_keys_by_default() {
        let error = parse("{\"a\": 1,\n \"b\": {\"c\": 2, \"c\": 3}}").unwrap_err();
        assert_eq!(
            error,
            ParseError::DuplicateKey {
                key: "c".to_owned(),
                line: 2,
                column: 18,
            }
        );
        assert_eq!(error.code(), "duplicate_key");
        assert_eq!(
            error.to_string(),
            "the object key \"c\" appears more than once, again at line 2, column 18"
        );
        // Keys are compared after unescaping.
        assert_eq!(
            parse(r#"{"a":1,"\u0061":2}"#).unwrap_err().code(),
            "duplicate_key"
        );
    }

    #[test]
    fn allowed_duplicate_keys_keep_the_last_value_in_the_first_place() {
        let limits = Limits {
            allow_duplicate_keys: true,
            ..Limits::default()
        };
        let value = parse_document(br#"{"a":1,"b":2,"a":3}"#, &limits).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn a_key_spelling_serde_jsons_number_token_stays_an_object_key() {
        for text in [
            r#"{"$serde_json::private::Number":"1"}"#,
            r#"{"$serde_json::private::Number":1}"#,
            r#"{"$serde_json::private::Number":"1","x":[2]}"#,
            r#"{"$serde_json::private::Number":{"$serde_json::private::Number":"7"}}"#,
        ] {
            let value = parse(text).unwrap();
            assert!(value.is_object(), "{text} became {value:?}");
            assert_eq!(serde_json::to_string(&value).unwrap(), text);
        }
        let error = parse(r#"{"$serde_json::private::Number":1,"$serde_json::private::Number":2}"#)
            .unwrap_err();
        assert_eq!(error.code(), "duplicate_key");
        // It counts as a level of nesting like any object.
        let limits = Limits {
            max_depth: 1,
            ..Limits::default()
        };
        let error =
            parse_document(br#"[{"$serde_json::private::Number":"1"}]"#, &limits).unwrap_err();
        assert_eq!(error.code(), "too_deep");
    }

    #[test]
    fn depth_counts_containers_from_one() {
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        assert!(parse_document(b"[{\"a\":[]}]", &limits).is_err());
        assert!(parse_document(b"[{\"a\":1}]", &limits).is_ok());
        assert!(parse_document(b"[[1, 2.5, \"s\"], {}]", &limits).is_ok());
        let error = parse_document(b"[[[1]]]", &limits).unwrap_err();
        assert_eq!(
            error,
            ParseError::TooDeep {
                limit: 2,
                line: 1,
                column: 3,
            }
        );
        assert_eq!(error.code(), "too_deep");
        assert_eq!(
            error.to_string(),
            "arrays and objects nest deeper than the limit of 2 levels at line 1, column 3"
        );
        let flat = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        assert!(parse_document(b"17", &flat).is_ok());
        assert_eq!(parse_document(b"{}", &flat).unwrap_err().code(), "too_deep");
    }

    #[test]
    fn the_default_depth_is_128() {
        assert!(parse(&nested_arrays(128)).is_ok());
        let error = parse(&nested_arrays(129)).unwrap_err();
        assert_eq!(
            error,
            ParseError::TooDeep {
                limit: 128,
                line: 1,
                column: 130,
            }
        );
    }

    #[test]
    fn a_depth_limit_above_the_ceiling_is_clamped() {
        let limits = Limits {
            max_depth: usize::MAX,
            ..Limits::default()
        };
        let error = parse_document(nested_arrays(1_000).as_bytes(), &limits).unwrap_err();
        assert!(
            matches!(error, ParseError::TooDeep { limit, .. } if limit <= Limits::MAX_DEPTH_CEILING),
            "{error}"
        );
    }

    #[test]
    fn hundred_thousand_deep_array_is_too_deep_not_a_stack_overflow() {
        let text = "[".repeat(100_000);
        let error = parse(&text).unwrap_err();
        assert_eq!(error.code(), "too_deep");
        let error = parse(&nested_arrays(100_000)).unwrap_err();
        assert_eq!(error.code(), "too_deep");
    }

    #[test]
    fn million_deep_mixed_nesting_is_too_deep_not_a_stack_overflow() {
        let text = "[{\"a\":".repeat(500_000);
        let error = parse(&text).unwrap_err();
        assert_eq!(error.code(), "too_deep");
        let error = parse(&"[".repeat(1_000_000)).unwrap_err();
        assert_eq!(error.code(), "too_deep");
    }

    #[test]
    fn a_document_over_max_bytes_is_refused_before_parsing() {
        let limits = Limits {
            max_bytes: 8,
            ..Limits::default()
        };
        assert!(parse_document(b"[1,2,30]", &limits).is_ok());
        // Not even JSON: the size check comes first.
        let error = parse_document(b"[1,2,30]\xFF", &limits).unwrap_err();
        assert_eq!(
            error,
            ParseError::TooLarge {
                limit: 8,
                actual: 9,
            }
        );
        assert_eq!(error.code(), "too_large");
        assert_eq!(
            error.to_string(),
            "the document is 9 bytes, more than the limit of 8 bytes"
        );
    }

    #[test]
    fn syntax_errors_report_line_and_column() {
        let error = parse("{\n  \"a\": 1,\n  \"b\" 2\n}").unwrap_err();
        assert_eq!(
            error,
            ParseError::Syntax {
                message: "expected `:`".to_owned(),
                line: 3,
                column: 7,
            }
        );
        assert_eq!(error.to_string(), "expected `:` at line 3, column 7");
    }
}
