//! Output encodings: JSON, NDJSON, RFC 8785 canonical JSON (JCS), MessagePack and CBOR.
//!
//! Every encoder walks the [`Value`] itself and writes straight into the caller's buffer.
//! A generic serde serializer cannot be used: with serde_json's `arbitrary_precision` a number
//! serialises as a private one-field struct, which MessagePack and CBOR serializers would
//! faithfully write as a map.
//!
//! # Numbers never change value
//!
//! The product promise is that a number comes out exactly as it went in. JSON and NDJSON copy
//! each number's text as the [`Value`] holds it, byte for byte (`parse_document` keeps the
//! literal as written; serde_json's own parser would spell an exponent `e+`). The other encodings must turn a literal into a
//! format-specific number, and they do so only when that keeps its value:
//!
//! - **Integers** (literals with neither a fraction nor an exponent) go to MessagePack as
//!   integers when they fit `i64`/`u64`, and to CBOR as integers or, when wider than 64 bits,
//!   as bignums (tags 2 and 3). Wider integers in MessagePack follow the double rule below.
//!   A literal such as `2718350.0000000` is not an integer literal: it stays a non-integer, so
//!   a typed consumer sees the same kind of number whatever its digits happen to be.
//! - **Other numbers go through an IEEE-754 double, and only when the double is exact.**
//!   The rule, shared by JCS, MessagePack and CBOR: a literal is *exactly representable* iff
//!   its nearest double `d` (round-half-to-even, as `str::parse::<f64>` computes it) is finite
//!   and the ECMAScript `Number::toString(d)` — the shortest decimal that reads back as `d` —
//!   has the same numeric value as the literal, compared as exact decimals (sign, significant
//!   digits and scale), never as strings. So `0.1`, `1.08734`, `4.50` (as `4.5`),
//!   `2718350.0000000` (as `2718350`), `1E30` (as `1e+30`) and `-0` (as `0`) are accepted, and
//!   `9007199254740993`, `12345678901234567890`, `1.000000000000000000001`, `1e400` and
//!   `1e-400` are refused. The rule is deliberately not "the literal equals the double as a
//!   rational": under that one `0.1` could never be written, although every reader of the
//!   output reads `0.1` back.
//! - A number that fails the rule is an [`EncodeError::NotRepresentable`] naming the literal
//!   and its JSON Pointer in JCS and MessagePack (which has no decimal type). CBOR instead
//!   falls back to a decimal fraction (tag 4, `[exponent, mantissa]`, with a bignum mantissa
//!   when needed) that carries every significant digit; it fails only on an exponent beyond
//!   ±2^64, which no CBOR integer can hold.
//!
//! This is stricter than RFC 8785, which canonicalises any number through a double: the
//! RFC's own sample `333333333.33333329` becomes `333333333.3333333`, a different value, so
//! it is refused here (its canonical form `333333333.3333333` passes through unchanged).
//! Trailing zeros of a non-integer are not digits of its value: JCS, MessagePack and CBOR
//! drop them (CBOR's decimal fractions too, being normalised), as any double would.
//!
//! On error, `out` is truncated back to the length it had, so a failed value leaves nothing
//! behind in a batch buffer. Nesting is walked recursively on a stack that
//! [`stacker`] grows on demand, because values built by a transform are not bounded by the
//! parser's depth limit.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use num_bigint::BigUint;
use rmp::encode::ByteBuf;
use serde_json::Map;

use crate::Value;
use crate::doc::{DocRef, Kind, plain_run, short_and_plain};

/// An output format for a [`Value`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Compact JSON; numbers keep their literal text.
    #[default]
    Json,
    /// Compact JSON followed by a newline, one value per line.
    Ndjson,
    /// RFC 8785 JSON Canonicalization Scheme, for hashing and signing.
    #[serde(alias = "canonical")]
    Jcs,
    /// MessagePack.
    MsgPack,
    /// CBOR (RFC 8949).
    Cbor,
}

impl Encoding {
    /// Every encoding, in the order help texts list them.
    pub const ALL: [Encoding; 5] = [
        Encoding::Json,
        Encoding::Ndjson,
        Encoding::Jcs,
        Encoding::MsgPack,
        Encoding::Cbor,
    ];

    /// The lowercase name that [`FromStr`] and serde accept.
    pub const fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Ndjson => "ndjson",
            Encoding::Jcs => "jcs",
            Encoding::MsgPack => "msgpack",
            Encoding::Cbor => "cbor",
        }
    }

    /// The media type of a body in this encoding. Canonical JSON is still JSON to a client.
    pub const fn content_type(self) -> &'static str {
        match self {
            Encoding::Json | Encoding::Jcs => "application/json",
            Encoding::Ndjson => "application/x-ndjson",
            Encoding::MsgPack => "application/msgpack",
            Encoding::Cbor => "application/cbor",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Encoding {
    type Err = UnknownEncoding;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "json" => Ok(Encoding::Json),
            "ndjson" => Ok(Encoding::Ndjson),
            "jcs" | "canonical" => Ok(Encoding::Jcs),
            "msgpack" => Ok(Encoding::MsgPack),
            "cbor" => Ok(Encoding::Cbor),
            _ => Err(UnknownEncoding {
                name: name.to_owned(),
            }),
        }
    }
}

/// A name that is not an [`Encoding`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown encoding {name:?}: expected one of json, ndjson, jcs (or canonical), msgpack, cbor"
)]
pub struct UnknownEncoding {
    /// The name as given.
    pub name: String,
}

/// Why a value could not be encoded. The value itself is fine; the format cannot carry it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A number has no exact form in the encoding (see the module documentation).
    #[error(
        "{encoding} cannot represent the number {number} (at \"{pointer}\") without changing its value"
    )]
    NotRepresentable {
        /// The number's literal text.
        number: String,
        /// RFC 6901 JSON Pointer to the number; empty for the top-level value.
        pointer: String,
        /// The encoding that was asked for.
        encoding: Encoding,
    },
    /// A string, array or object is longer than the encoding's length field allows
    /// (MessagePack stops at 2^32 - 1).
    #[error("{encoding} cannot hold the value at \"{pointer}\": it is too long for the format")]
    TooLarge {
        /// RFC 6901 JSON Pointer to the value (for an object key, to its member).
        pointer: String,
        /// The encoding that was asked for.
        encoding: Encoding,
    },
}

impl EncodeError {
    /// A stable machine-readable code for the error, for API responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            EncodeError::NotRepresentable { .. } => "not_representable",
            EncodeError::TooLarge { .. } => "too_large",
        }
    }
}

/// Appends `value` to `out` in `encoding`. On error `out` is left as it was.
pub fn encode(value: &Value, encoding: Encoding, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let walked = match encoding {
        Encoding::Json => {
            write_json(value, out);
            Ok(())
        }
        Encoding::Ndjson => {
            // Compact JSON escapes every newline inside strings, so this one ends the record.
            write_json(value, out);
            out.push(b'\n');
            Ok(())
        }
        Encoding::Jcs => write_jcs(value, out),
        Encoding::MsgPack => {
            // rmp's writer for a plain Vec goes through io::Write and so returns io errors that
            // cannot happen; its ByteBuf has an uninhabited error type instead. Moving the Vec
            // in and out is a pointer copy.
            let mut buf = ByteBuf::from_vec(std::mem::take(out));
            let walked = write_msgpack(value, &mut buf);
            *out = buf.into_vec();
            walked
        }
        Encoding::Cbor => write_cbor(value, out),
    };
    walked.map_err(|failure| {
        out.truncate(start);
        failure.into_error(encoding)
    })
}

// ---------------------------------------------------------------------------------------------
// Failures and where they happened

/// One step from a container to a child, borrowed from the value being encoded.
#[derive(Debug)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Debug)]
enum Problem<'a> {
    Number(&'a str),
    TooLarge,
}

/// Why a walk stopped. The path is collected innermost first while the error unwinds, so the
/// successful walk never spends anything on knowing where it is.
#[derive(Debug)]
struct Failure<'a> {
    problem: Problem<'a>,
    path: Vec<Step<'a>>,
}

/// Boxed so that the `Ok(())` returned by every node stays one word wide.
type Walk<'a> = Result<(), Box<Failure<'a>>>;

impl<'a> Failure<'a> {
    #[cold]
    fn number(literal: &'a str) -> Box<Self> {
        Box::new(Failure {
            problem: Problem::Number(literal),
            path: Vec::new(),
        })
    }

    #[cold]
    fn too_large() -> Box<Self> {
        Box::new(Failure {
            problem: Problem::TooLarge,
            path: Vec::new(),
        })
    }

    fn into_error(self, encoding: Encoding) -> EncodeError {
        let pointer = json_pointer(&self.path);
        match self.problem {
            Problem::Number(number) => EncodeError::NotRepresentable {
                number: number.to_owned(),
                pointer,
                encoding,
            },
            Problem::TooLarge => EncodeError::TooLarge { pointer, encoding },
        }
    }
}

/// Records that `walked` happened under `step` of its parent.
fn inside<'a>(walked: Walk<'a>, step: Step<'a>) -> Walk<'a> {
    walked.map_err(|mut failure| {
        failure.path.push(step);
        failure
    })
}

/// Renders an innermost-first path as an RFC 6901 JSON Pointer.
fn json_pointer(path: &[Step<'_>]) -> String {
    let mut pointer = String::new();
    for step in path.iter().rev() {
        pointer.push('/');
        match step {
            Step::Key(key) => {
                for c in key.chars() {
                    match c {
                        '~' => pointer.push_str("~0"),
                        '/' => pointer.push_str("~1"),
                        c => pointer.push(c),
                    }
                }
            }
            Step::Index(index) => pointer.push_str(&index.to_string()),
        }
    }
    pointer
}

/// Runs one level of nesting, on a fresh stack segment if this one is nearly used up.
fn nested<R>(walk: impl FnOnce() -> R) -> R {
    const RED_ZONE: usize = 64 * 1024;
    const NEW_SEGMENT: usize = 1024 * 1024;
    stacker::maybe_grow(RED_ZONE, NEW_SEGMENT, walk)
}

// ---------------------------------------------------------------------------------------------
// Numbers

/// A JSON number literal taken apart, borrowing its digits:
/// value = (-1)^negative × `int`.`frac` × 10^exponent.
#[derive(Clone, Copy, Debug)]
struct Decimal<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    /// Clamped to ±2^80, far outside every range that matters below, so that absurd
    /// exponents cannot overflow the arithmetic.
    exponent: i128,
    /// Neither a fraction nor an exponent part was written.
    integer: bool,
}

/// The clamp on parsed exponents; see [`Decimal::exponent`].
const EXPONENT_CLAMP: i128 = 1 << 80;

impl<'a> Decimal<'a> {
    /// Parses the JSON number grammar (plus leading zeros and an explicit `+` exponent sign,
    /// which `Number::toString` output needs).
    fn parse(literal: &'a str) -> Option<Self> {
        fn digit_run(bytes: &[u8]) -> usize {
            bytes.iter().take_while(|b| b.is_ascii_digit()).count()
        }

        let bytes = literal.as_bytes();
        let (negative, rest) = match bytes {
            [b'-', rest @ ..] => (true, rest),
            _ => (false, bytes),
        };
        let (int, mut rest) = rest.split_at(digit_run(rest));
        if int.is_empty() {
            return None;
        }
        let mut frac: &[u8] = &[];
        let mut integer = true;
        if let [b'.', tail @ ..] = rest {
            (frac, rest) = tail.split_at(digit_run(tail));
            if frac.is_empty() {
                return None;
            }
            integer = false;
        }
        let mut exponent = 0;
        if let [b'e' | b'E', tail @ ..] = rest {
            let (exponent_negative, digits) = match tail {
                [b'-', digits @ ..] => (true, digits),
                [b'+', digits @ ..] => (false, digits),
                digits => (false, digits),
            };
            if digits.is_empty() || digit_run(digits) != digits.len() {
                return None;
            }
            let magnitude = digits.iter().fold(0i128, |acc, &d| {
                (acc * 10 + i128::from(d - b'0')).min(EXPONENT_CLAMP)
            });
            exponent = if exponent_negative {
                -magnitude
            } else {
                magnitude
            };
            integer = false;
            rest = &[];
        }
        rest.is_empty().then_some(Decimal {
            negative,
            int,
            frac,
            exponent,
            integer,
        })
    }

    fn digits(&self) -> impl DoubleEndedIterator<Item = u8> + Clone + 'a {
        self.int.iter().chain(self.frac).copied()
    }

    /// The value as significant digits and a power of ten, for exact comparison.
    fn normalize(&self) -> Normal<'a> {
        let total = self.int.len() + self.frac.len();
        let leading = self.digits().take_while(|&d| d == b'0').count();
        let trailing = if leading == total {
            0
        } else {
            self.digits().rev().take_while(|&d| d == b'0').count()
        };
        // Lengths fit i128 with room to spare; the casts cannot truncate.
        let scale = self.exponent - self.frac.len() as i128 + trailing as i128;
        Normal {
            decimal: *self,
            skip: leading,
            len: total - leading - trailing,
            scale,
        }
    }

    /// The digits to write for a JCS integer that needs no conversion: below 10^15 every
    /// integer is exact as a double (2^53 > 10^15) and `Number::toString` prints integers
    /// below 10^21 as plain digits without leading zeros.
    fn plain_small_integer(&self) -> Option<&'a [u8]> {
        let canonical = self.int.len() == 1 || self.int[0] != b'0';
        (self.integer && canonical && self.int.len() <= 15).then_some(self.int)
    }
}

/// A decimal as (-1)^negative × significant × 10^scale, with no leading or trailing zeros in
/// `significant`; zero has no significant digits.
#[derive(Clone, Copy, Debug)]
struct Normal<'a> {
    decimal: Decimal<'a>,
    skip: usize,
    len: usize,
    scale: i128,
}

impl Normal<'_> {
    fn significant(&self) -> impl Iterator<Item = u8> + Clone + '_ {
        self.decimal.digits().skip(self.skip).take(self.len)
    }

    fn same_value(&self, other: &Normal<'_>) -> bool {
        if self.len == 0 || other.len == 0 {
            // Zero equals zero whatever its sign or exponent.
            return self.len == other.len;
        }
        self.decimal.negative == other.decimal.negative
            && self.scale == other.scale
            && self.len == other.len
            && self.significant().eq(other.significant())
    }
}

/// The double that `literal` denotes and its ECMAScript text, if printing that double gives
/// back the literal's exact value (the rule in the module documentation).
fn exact_double<'b>(
    literal: &str,
    decimal: &Decimal<'_>,
    buffer: &'b mut ryu_js::Buffer,
) -> Option<(f64, &'b str)> {
    let double: f64 = literal.parse().ok()?;
    if !double.is_finite() {
        return None;
    }
    let text = buffer.format_finite(double);
    let printed = Decimal::parse(text)?;
    decimal
        .normalize()
        .same_value(&printed.normalize())
        .then_some((double, text))
}

// ---------------------------------------------------------------------------------------------
// JSON and JCS

/// For each byte, 0 when it is written as is, else the character after the backslash
/// (`u` for a `\u00XX` escape). JSON.stringify (and so RFC 8785) and serde_json escape exactly
/// this set, with lowercase hex; everything else, U+007F and U+2028 included, stays literal.
const ESCAPE: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// [`encode`] for a document read as a [`Doc`](crate::Doc): JSON and NDJSON are written from it
/// directly, byte for byte as from the same document as a [`Value`]; the other encodings
/// take it as a `Value`.
pub fn encode_doc(
    doc: DocRef<'_, '_>,
    encoding: Encoding,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    match encoding {
        Encoding::Json => write_doc_json(doc, out),
        Encoding::Ndjson => {
            write_doc_json(doc, out);
            out.push(b'\n');
        }
        _ => return encode(&doc.to_value(), encoding, out),
    }
    Ok(())
}

/// [`write_json`] for a [`Doc`].
fn write_doc_json(doc: DocRef<'_, '_>, out: &mut Vec<u8>) {
    match doc.kind() {
        Kind::Null => out.extend_from_slice(b"null"),
        Kind::Bool if doc.as_bool() == Some(true) => out.extend_from_slice(b"true"),
        Kind::Bool => out.extend_from_slice(b"false"),
        Kind::Number => out.extend_from_slice(doc.number_text().unwrap_or("null").as_bytes()),
        Kind::String => write_json_string(doc.as_str().unwrap_or_default(), out),
        Kind::Array => nested(|| {
            out.push(b'[');
            for (i, item) in doc.elements().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_doc_json(item, out);
            }
            out.push(b']');
        }),
        Kind::Object => nested(|| {
            out.push(b'{');
            for (i, (key, item)) in doc.members().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(key, out);
                out.push(b':');
                write_doc_json(item, out);
            }
            out.push(b'}');
        }),
    }
}

fn write_json_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most strings are short and need no escape: checked a word at a time and copied whole.
    if short_and_plain(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    loop {
        // The bytes that need escaping are the ones a JSON reader stops at, so the reader's
        // eight-bytes-at-a-time scan finds them.
        let stop = plain_run(bytes, start);
        out.extend_from_slice(&bytes[start..stop]);
        let Some(&byte) = bytes.get(stop) else {
            break;
        };
        let escape = ESCAPE[usize::from(byte)];
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = stop + 1;
    }
    out.push(b'"');
}

fn write_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => out.extend_from_slice(number.as_str().as_bytes()),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => nested(|| {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out);
            }
            out.push(b']');
        }),
        Value::Object(members) => nested(|| {
            out.push(b'{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(key, out);
                out.push(b':');
                write_json(item, out);
            }
            out.push(b'}');
        }),
    }
}

/// Orders strings by their UTF-16 code units, as RFC 8785 sorts keys.
///
/// UTF-8 byte order is code point order, which agrees with UTF-16 order except between
/// U+E000..=U+FFFF and the supplementary planes (stored as surrogates, U+D800..U+DFFF, so
/// first in UTF-16). Only the first differing character decides, so it alone is compared
/// by its first UTF-16 unit; ties there are two supplementary characters with the same
/// high surrogate, which order by code point like their low surrogates.
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    let common = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    // The equal prefix may end inside a character; step back to where it starts. The bytes
    // before are equal, so that is a character boundary of `b` as well.
    let start = (0..=common)
        .rev()
        .find(|&i| a.is_char_boundary(i))
        .unwrap_or(0);
    let first_unit = |c: char| (c.encode_utf16(&mut [0; 2])[0], c);
    match (a[start..].chars().next(), b[start..].chars().next()) {
        (Some(x), Some(y)) => first_unit(x).cmp(&first_unit(y)),
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}

fn write_jcs<'a>(value: &'a Value, out: &mut Vec<u8>) -> Walk<'a> {
    match value {
        Value::Number(number) => write_jcs_number(number.as_str(), out),
        Value::Array(items) => nested(|| {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                inside(write_jcs(item, out), Step::Index(i))?;
            }
            out.push(b']');
            Ok(())
        }),
        Value::Object(members) => nested(|| {
            // Documents built by a canonicaliser are often sorted already; skip the
            // allocation then.
            if members.keys().is_sorted_by(|a, b| utf16_cmp(a, b).is_le()) {
                write_jcs_members(members.iter(), out)
            } else {
                let mut sorted: Vec<_> = members.iter().collect();
                sorted.sort_unstable_by(|(a, _), (b, _)| utf16_cmp(a, b));
                write_jcs_members(sorted.into_iter(), out)
            }
        }),
        // Literals and strings are written the same way in both forms.
        Value::Null | Value::Bool(_) | Value::String(_) => {
            write_json(value, out);
            Ok(())
        }
    }
}

fn write_jcs_members<'a>(
    members: impl Iterator<Item = (&'a String, &'a Value)>,
    out: &mut Vec<u8>,
) -> Walk<'a> {
    out.push(b'{');
    for (i, (key, item)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(key, out);
        out.push(b':');
        inside(write_jcs(item, out), Step::Key(key))?;
    }
    out.push(b'}');
    Ok(())
}

fn write_jcs_number<'a>(literal: &'a str, out: &mut Vec<u8>) -> Walk<'a> {
    let Some(decimal) = Decimal::parse(literal) else {
        return Err(Failure::number(literal));
    };
    if let Some(digits) = decimal.plain_small_integer() {
        // `-0` is zero, which Number::toString writes as `0`.
        if decimal.negative && digits != b"0" {
            out.push(b'-');
        }
        out.extend_from_slice(digits);
        return Ok(());
    }
    let mut buffer = ryu_js::Buffer::new();
    match exact_double(literal, &decimal, &mut buffer) {
        Some((_, text)) => {
            out.extend_from_slice(text.as_bytes());
            Ok(())
        }
        None => Err(Failure::number(literal)),
    }
}

// ---------------------------------------------------------------------------------------------
// MessagePack

fn msgpack_len<'a>(len: usize) -> Result<u32, Box<Failure<'a>>> {
    u32::try_from(len).map_err(|_| Failure::too_large())
}

fn write_msgpack_str<'a>(s: &str, out: &mut ByteBuf) -> Walk<'a> {
    let Ok(_) = rmp::encode::write_str_len(out, msgpack_len(s.len())?);
    out.as_mut().extend_from_slice(s.as_bytes());
    Ok(())
}

fn write_msgpack<'a>(value: &'a Value, out: &mut ByteBuf) -> Walk<'a> {
    match value {
        Value::Null => {
            let Ok(()) = rmp::encode::write_nil(out);
        }
        Value::Bool(b) => {
            let Ok(()) = rmp::encode::write_bool(out, *b);
        }
        Value::Number(number) => write_msgpack_number(number.as_str(), out)?,
        Value::String(s) => write_msgpack_str(s, out)?,
        Value::Array(items) => nested(|| {
            let Ok(_) = rmp::encode::write_array_len(out, msgpack_len(items.len())?);
            for (i, item) in items.iter().enumerate() {
                inside(write_msgpack(item, out), Step::Index(i))?;
            }
            Ok::<_, Box<Failure<'a>>>(())
        })?,
        Value::Object(members) => nested(|| write_msgpack_map(members, out))?,
    }
    Ok(())
}

fn write_msgpack_map<'a>(members: &'a Map<String, Value>, out: &mut ByteBuf) -> Walk<'a> {
    let Ok(_) = rmp::encode::write_map_len(out, msgpack_len(members.len())?);
    for (key, item) in members {
        inside(write_msgpack_str(key, out), Step::Key(key))?;
        inside(write_msgpack(item, out), Step::Key(key))?;
    }
    Ok(())
}

fn write_msgpack_number<'a>(literal: &'a str, out: &mut ByteBuf) -> Walk<'a> {
    let Some(decimal) = Decimal::parse(literal) else {
        return Err(Failure::number(literal));
    };
    if decimal.integer {
        // rmp picks the smallest integer form for the value.
        if decimal.negative {
            if let Ok(n) = literal.parse::<i64>() {
                let Ok(_) = rmp::encode::write_sint(out, n);
                return Ok(());
            }
        } else if let Ok(n) = literal.parse::<u64>() {
            let Ok(_) = rmp::encode::write_uint(out, n);
            return Ok(());
        }
    }
    let mut buffer = ryu_js::Buffer::new();
    match exact_double(literal, &decimal, &mut buffer) {
        Some((double, _)) => {
            let Ok(()) = rmp::encode::write_f64(out, double);
            Ok(())
        }
        None => Err(Failure::number(literal)),
    }
}

// ---------------------------------------------------------------------------------------------
// CBOR

const CBOR_UNSIGNED: u8 = 0;
const CBOR_NEGATIVE: u8 = 1;
const CBOR_BYTES: u8 = 2;
const CBOR_TEXT: u8 = 3;
const CBOR_ARRAY: u8 = 4;
const CBOR_MAP: u8 = 5;
const CBOR_TAG: u8 = 6;
const CBOR_FALSE: u8 = 0xf4;
const CBOR_TRUE: u8 = 0xf5;
const CBOR_NULL: u8 = 0xf6;
const CBOR_FLOAT64: u8 = 0xfb;
const TAG_BIGNUM: u64 = 2;
const TAG_NEGATIVE_BIGNUM: u64 = 3;
const TAG_DECIMAL_FRACTION: u64 = 4;

/// Writes a data item head with its argument in the shortest form (RFC 8949 §4.2.1).
fn cbor_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    if argument < 24 {
        out.push(major | argument as u8);
    } else if let Ok(argument) = u8::try_from(argument) {
        out.extend_from_slice(&[major | 24, argument]);
    } else if let Ok(argument) = u16::try_from(argument) {
        out.push(major | 25);
        out.extend_from_slice(&argument.to_be_bytes());
    } else if let Ok(argument) = u32::try_from(argument) {
        out.push(major | 26);
        out.extend_from_slice(&argument.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&argument.to_be_bytes());
    }
}

/// A length as a head argument: usize is at most 64 bits on every target Rust supports.
fn cbor_len(out: &mut Vec<u8>, major: u8, len: usize) {
    cbor_head(out, major, len as u64);
}

fn cbor_bignum(out: &mut Vec<u8>, negative: bool, magnitude_bytes: &[u8]) {
    let tag = if negative {
        TAG_NEGATIVE_BIGNUM
    } else {
        TAG_BIGNUM
    };
    cbor_head(out, CBOR_TAG, tag);
    cbor_len(out, CBOR_BYTES, magnitude_bytes.len());
    out.extend_from_slice(magnitude_bytes);
}

/// Writes the integer with the given sign and ASCII decimal digits: major type 0 or 1 when
/// it fits (down to -2^64), else a bignum whose bytes hold the magnitude, less one when
/// negative, as RFC 8949 §3.4.3 defines. The digits come from a parsed [`Decimal`]; the
/// error exists only because the bignum parser reports non-digits.
fn cbor_integer<'a>(
    out: &mut Vec<u8>,
    negative: bool,
    digits: impl Iterator<Item = u8> + Clone,
    literal: &'a str,
) -> Walk<'a> {
    let small = digits.clone().try_fold(0u128, |acc, d| {
        acc.checked_mul(10)?
            .checked_add(u128::from(d.wrapping_sub(b'0')))
    });
    if let Some(magnitude) = small {
        // CBOR encodes -1 - n for a negative integer; -0 is plain zero.
        let (major, n) = if negative && magnitude > 0 {
            (CBOR_NEGATIVE, magnitude - 1)
        } else {
            (CBOR_UNSIGNED, magnitude)
        };
        match u64::try_from(n) {
            Ok(n) => cbor_head(out, major, n),
            Err(_) => {
                let bytes = n.to_be_bytes();
                let leading = (n.leading_zeros() / 8) as usize;
                cbor_bignum(out, major == CBOR_NEGATIVE, &bytes[leading..]);
            }
        }
        return Ok(());
    }
    // Wider than u128: a slow path taken only by numbers of 39 digits or more.
    let values: Vec<u8> = digits.map(|d| d.wrapping_sub(b'0')).collect();
    let Some(mut n) = BigUint::from_radix_be(&values, 10) else {
        return Err(Failure::number(literal));
    };
    if negative {
        n -= 1u32;
    }
    cbor_bignum(out, negative, &n.to_bytes_be());
    Ok(())
}

fn write_cbor<'a>(value: &'a Value, out: &mut Vec<u8>) -> Walk<'a> {
    match value {
        Value::Null => out.push(CBOR_NULL),
        Value::Bool(true) => out.push(CBOR_TRUE),
        Value::Bool(false) => out.push(CBOR_FALSE),
        Value::Number(number) => write_cbor_number(number.as_str(), out)?,
        Value::String(s) => {
            cbor_len(out, CBOR_TEXT, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => nested(|| {
            cbor_len(out, CBOR_ARRAY, items.len());
            for (i, item) in items.iter().enumerate() {
                inside(write_cbor(item, out), Step::Index(i))?;
            }
            Ok::<_, Box<Failure<'a>>>(())
        })?,
        Value::Object(members) => nested(|| {
            cbor_len(out, CBOR_MAP, members.len());
            for (key, item) in members {
                cbor_len(out, CBOR_TEXT, key.len());
                out.extend_from_slice(key.as_bytes());
                inside(write_cbor(item, out), Step::Key(key))?;
            }
            Ok::<_, Box<Failure<'a>>>(())
        })?,
    }
    Ok(())
}

fn write_cbor_number<'a>(literal: &'a str, out: &mut Vec<u8>) -> Walk<'a> {
    let Some(decimal) = Decimal::parse(literal) else {
        return Err(Failure::number(literal));
    };
    if decimal.integer {
        return cbor_integer(out, decimal.negative, decimal.int.iter().copied(), literal);
    }
    let mut buffer = ryu_js::Buffer::new();
    if let Some((double, _)) = exact_double(literal, &decimal, &mut buffer) {
        out.push(CBOR_FLOAT64);
        out.extend_from_slice(&double.to_be_bytes());
        return Ok(());
    }
    // A decimal fraction (RFC 8949 §3.4.4): [exponent, mantissa]. Zero is always an exact
    // double, so the mantissa here has significant digits. The exponent must be a major
    // type 0 or 1 integer, which stops at ±2^64.
    let normal = decimal.normalize();
    let exponent = normal.scale;
    let (major, argument) = if exponent >= 0 {
        (CBOR_UNSIGNED, u64::try_from(exponent))
    } else {
        (CBOR_NEGATIVE, u64::try_from(-1 - exponent))
    };
    let Ok(argument) = argument else {
        return Err(Failure::number(literal));
    };
    cbor_head(out, CBOR_TAG, TAG_DECIMAL_FRACTION);
    cbor_head(out, CBOR_ARRAY, 2);
    cbor_head(out, major, argument);
    cbor_integer(out, decimal.negative, normal.significant(), literal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Value {
        serde_json::from_str(json).expect("test input is valid JSON")
    }

    fn encoded(json: &str, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        encode(&parse(json), encoding, &mut out).map(|()| out)
    }

    fn text(json: &str, encoding: Encoding) -> String {
        String::from_utf8(encoded(json, encoding).expect("encodes")).expect("UTF-8 output")
    }

    fn not_representable(number: &str, pointer: &str, encoding: Encoding) -> EncodeError {
        EncodeError::NotRepresentable {
            number: number.to_owned(),
            pointer: pointer.to_owned(),
            encoding,
        }
    }

    #[test]
    fn encoding_names_parse_print_and_serialize() {
        for encoding in Encoding::ALL {
            assert_eq!(encoding.as_str().parse::<Encoding>(), Ok(encoding));
            assert_eq!(encoding.to_string(), encoding.as_str());
            let json = serde_json::to_string(&encoding).unwrap();
            assert_eq!(json, format!("\"{}\"", encoding.as_str()));
            assert_eq!(serde_json::from_str::<Encoding>(&json).unwrap(), encoding);
        }
        assert_eq!("canonical".parse::<Encoding>(), Ok(Encoding::Jcs));
        assert_eq!(
            serde_json::from_str::<Encoding>("\"canonical\"").unwrap(),
            Encoding::Jcs
        );
        assert_eq!(Encoding::default(), Encoding::Json);
        let content_types = Encoding::ALL.map(Encoding::content_type);
        assert_eq!(
            content_types,
            [
                "application/json",
                "application/x-ndjson",
                "application/json",
                "application/msgpack",
                "application/cbor",
            ]
        );
        let error = "xml".parse::<Encoding>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown encoding \"xml\": expected one of json, ndjson, jcs (or canonical), msgpack, cbor"
        );
        assert!("JSON".parse::<Encoding>().is_err());
    }

    #[test]
    fn json_keeps_number_literals_byte_for_byte() {
        let input = r#"{"a":2718350.0000000,"b":12345678901234567890,"c":1.000000000000000000001}"#;
        assert_eq!(text(input, Encoding::Json), input);
        assert_eq!(text(input, Encoding::Ndjson), format!("{input}\n"));
    }

    #[test]
    fn json_is_byte_identical_to_serde_json() {
        let input = r#"{"z":[1,-0,1e400,0.10,{"":null}],"a":"\u0000\u001f\b\t\n\f\r\"\\/\u007f\u2028\u20ac😀",
            "nested":{"b":[[],{}],"a":[true,false]}, "\u00e9\n":"x"}"#;
        let value = parse(input);
        let mut out = Vec::new();
        encode(&value, Encoding::Json, &mut out).unwrap();
        assert_eq!(out, serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them_at_every_offset() {
        // Each ASCII character and a few others, at every offset of the eight-byte scan and
        // with runs after it, written from a `Value` and from a `Doc`.
        let mut specials: Vec<char> = (0u8..0x80).map(char::from).collect();
        specials.extend(['\u{7f}', 'é', '\u{2028}', '😀']);
        for c in specials {
            for offset in 0..20 {
                let s = format!("{}{c}{}{c}", "a".repeat(offset), "b".repeat(offset % 9));
                let value = Value::String(s);
                let expected = serde_json::to_vec(&value).unwrap();
                let mut out = Vec::new();
                encode(&value, Encoding::Json, &mut out).unwrap();
                assert_eq!(out, expected, "{value}");
                let source = String::from_utf8(expected.clone()).unwrap();
                let doc = crate::Doc::parse(&source, &crate::Limits::default()).unwrap();
                let mut out = Vec::new();
                encode_doc(doc.root(), Encoding::Json, &mut out).unwrap();
                assert_eq!(out, expected, "{value}, from a Doc");
            }
        }
    }

    #[test]
    fn encode_appends_and_restores_on_error() {
        for encoding in Encoding::ALL {
            let mut out = b"prefix".to_vec();
            encode(&parse("[1]"), encoding, &mut out).unwrap();
            assert!(out.starts_with(b"prefix") && out.len() > 6, "{encoding}");
        }
        for encoding in [Encoding::Jcs, Encoding::MsgPack] {
            let mut out = b"prefix".to_vec();
            let value = parse(r#"{"ok":[1,2,3],"bad":1e400}"#);
            assert!(encode(&value, encoding, &mut out).is_err());
            assert_eq!(out, b"prefix", "{encoding}");
        }
    }

    /// RFC 8785 §3.2.2's sample, with its first number replaced by that number's canonical
    /// form: the original is refused (next test) because canonicalising it changes its value.
    #[test]
    fn jcs_rfc8785_sample() {
        let input = r#"{
            "numbers": [333333333.3333333, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        assert_eq!(
            text(input, Encoding::Jcs),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn jcs_refuses_what_a_double_would_round() {
        let rfc_sample = r#"{"numbers":[333333333.33333329,1E30]}"#;
        assert_eq!(
            encoded(rfc_sample, Encoding::Jcs),
            Err(not_representable(
                "333333333.33333329",
                "/numbers/0",
                Encoding::Jcs
            ))
        );
        // The ECMAScript formatting itself matches the RFC for that double.
        assert_eq!(
            ryu_js::Buffer::new().format_finite("333333333.33333329".parse::<f64>().unwrap()),
            "333333333.3333333"
        );

        let nested = r#"{"a":[1,{"b~/c":9007199254740993}]}"#;
        let error = encoded(nested, Encoding::Jcs).unwrap_err();
        assert_eq!(
            error,
            not_representable("9007199254740993", "/a/1/b~0~1c", Encoding::Jcs)
        );
        assert_eq!(error.code(), "not_representable");
        assert_eq!(
            error.to_string(),
            "jcs cannot represent the number 9007199254740993 (at \"/a/1/b~0~1c\") without changing its value"
        );
        // serde_json stores an exponent as `e+`/`e-`; these are written in that form so that
        // the error quotes them back verbatim.
        for number in [
            "12345678901234567890",
            "1.000000000000000000001",
            "1e+400",
            "-1e+400",
            "1e-400",
            "0.30000000000000001",
        ] {
            assert_eq!(
                encoded(number, Encoding::Jcs),
                Err(not_representable(number, "", Encoding::Jcs))
            );
        }
    }

    #[test]
    fn jcs_numbers_in_ecmascript_form() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0e5", "0"),
            ("0.1", "0.1"),
            ("1.08734", "1.08734"),
            ("2718350.0000000", "2718350"),
            ("-42", "-42"),
            ("999999999999999", "999999999999999"),
            ("9007199254740992", "9007199254740992"),
            ("100000000000000000000", "100000000000000000000"),
            ("1e21", "1e+21"),
            ("0.000001", "0.000001"),
            ("1E-7", "1e-7"),
            ("-1.5e300", "-1.5e+300"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input, Encoding::Jcs), expected, "{input}");
        }
    }

    #[test]
    fn jcs_rfc8785_key_sorting() {
        // RFC 8785 §3.2.3: keys in UTF-16 order, so the emoji (a surrogate pair) sorts before
        // U+FB33 although its code point is larger.
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        assert_eq!(
            text(input, Encoding::Jcs),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
        assert_eq!(
            text(r#"{"b":{"y":1,"x":[{"d":1,"c":2}]},"a":0}"#, Encoding::Jcs),
            r#"{"a":0,"b":{"x":[{"c":2,"d":1}],"y":1}}"#
        );
    }

    #[test]
    fn utf16_order_matches_encode_utf16() {
        let keys = [
            "",
            "a",
            "ab",
            "b",
            "\u{7f}",
            "\u{80}",
            "é",
            "\u{d7ff}",
            "\u{e000}",
            "\u{fb33}",
            "\u{ffff}",
            "\u{10000}",
            "\u{1f600}",
            "\u{1f600}a",
            "\u{1f601}",
            "\u{10ffff}",
            "a\u{ffff}",
            "a\u{10000}",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(
                    utf16_cmp(a, b),
                    a.encode_utf16().cmp(b.encode_utf16()),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn exactness_rule() {
        let exact = |literal: &str| {
            let decimal = Decimal::parse(literal).expect("valid literal");
            exact_double(literal, &decimal, &mut ryu_js::Buffer::new()).is_some()
        };
        for literal in [
            "0.1",
            "2718350.0000000",
            "1.08734",
            "1E30",
            "4.50",
            "-0",
            "2e-3",
        ] {
            assert!(exact(literal), "{literal}");
        }
        for literal in [
            "9007199254740993",
            "12345678901234567890",
            "1.000000000000000000001",
            "1e400",
            "1e-400",
            "333333333.33333329",
            "1e99999999999999999999999999",
        ] {
            assert!(!exact(literal), "{literal}");
        }
        assert!(Decimal::parse("1.").is_none());
        assert!(Decimal::parse("-").is_none());
        assert!(Decimal::parse("1e").is_none());
        assert!(Decimal::parse("1x").is_none());
    }

    fn msgpack(json: &str) -> rmpv::Value {
        let bytes = encoded(json, Encoding::MsgPack).expect("encodes");
        let mut reader = bytes.as_slice();
        let value = rmpv::decode::read_value(&mut reader).expect("valid MessagePack");
        assert!(reader.is_empty(), "trailing bytes after {json}");
        value
    }

    #[test]
    fn msgpack_round_trip() {
        use rmpv::Value as M;
        let value = msgpack(
            r#"{"z":0,"a":-1,"m":18446744073709551615,"min":-9223372036854775808,
                "price":2718350.0000000,"tenth":0.1,"wide":100000000000000000000,
                "nested":{"y":[null,true,false],"x":"€ 😀 ü"}}"#,
        );
        let expected = M::Map(vec![
            (M::from("z"), M::from(0u64)),
            (M::from("a"), M::from(-1i64)),
            (M::from("m"), M::from(u64::MAX)),
            (M::from("min"), M::from(i64::MIN)),
            (M::from("price"), M::F64(2718350.0)),
            (M::from("tenth"), M::F64(0.1)),
            (M::from("wide"), M::F64(1e20)),
            (
                M::from("nested"),
                M::Map(vec![
                    (
                        M::from("y"),
                        M::Array(vec![M::Nil, M::Boolean(true), M::Boolean(false)]),
                    ),
                    (M::from("x"), M::from("€ 😀 ü")),
                ]),
            ),
        ]);
        assert_eq!(value, expected);
    }

    #[test]
    fn msgpack_integers_take_the_smallest_form() {
        let cases: [(&str, &[u8]); 7] = [
            ("1", &[0x01]),
            ("-1", &[0xff]),
            ("-0", &[0x00]),
            ("200", &[0xcc, 200]),
            ("-100", &[0xd0, 0x9c]),
            ("65536", &[0xce, 0, 1, 0, 0]),
            ("0.5", &[0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0]),
        ];
        for (json, bytes) in cases {
            assert_eq!(encoded(json, Encoding::MsgPack).unwrap(), bytes, "{json}");
        }
    }

    #[test]
    fn msgpack_refuses_numbers_it_cannot_carry() {
        let error = encoded(
            r#"{"rows":[{"amount":12345678901234567890123}]}"#,
            Encoding::MsgPack,
        )
        .unwrap_err();
        assert_eq!(
            error,
            not_representable(
                "12345678901234567890123",
                "/rows/0/amount",
                Encoding::MsgPack
            )
        );
        assert!(encoded("1.000000000000000000001", Encoding::MsgPack).is_err());
    }

    /// A CBOR data item as ciborium-ll reads it off the wire, tags and all.
    #[derive(Debug, PartialEq)]
    enum Cbor {
        Unsigned(u64),
        /// -1 - n.
        Negative(u64),
        Bytes(Vec<u8>),
        Text(String),
        Array(Vec<Cbor>),
        Map(Vec<(Cbor, Cbor)>),
        Tag(u64, Box<Cbor>),
        Float(f64),
        Simple(u8),
    }

    fn read_cbor(decoder: &mut ciborium_ll::Decoder<&[u8]>) -> Cbor {
        use ciborium_ll::Header;
        let mut chunk = [0; 64];
        match decoder.pull().expect("a CBOR head") {
            Header::Positive(n) => Cbor::Unsigned(n),
            Header::Negative(n) => Cbor::Negative(n),
            Header::Float(f) => Cbor::Float(f),
            Header::Simple(s) => Cbor::Simple(s),
            Header::Tag(tag) => Cbor::Tag(tag, Box::new(read_cbor(decoder))),
            Header::Bytes(len @ Some(_)) => {
                let mut bytes = Vec::new();
                let mut segments = decoder.bytes(len);
                while let Some(mut segment) = segments.pull().unwrap() {
                    while let Some(part) = segment.pull(&mut chunk).unwrap() {
                        bytes.extend_from_slice(part);
                    }
                }
                Cbor::Bytes(bytes)
            }
            Header::Text(len @ Some(_)) => {
                let mut text = String::new();
                let mut segments = decoder.text(len);
                while let Some(mut segment) = segments.pull().unwrap() {
                    while let Some(part) = segment.pull(&mut chunk).unwrap() {
                        text.push_str(part);
                    }
                }
                Cbor::Text(text)
            }
            Header::Array(Some(len)) => Cbor::Array((0..len).map(|_| read_cbor(decoder)).collect()),
            Header::Map(Some(len)) => Cbor::Map(
                (0..len)
                    .map(|_| (read_cbor(decoder), read_cbor(decoder)))
                    .collect(),
            ),
            other => panic!("this encoder never writes {other:?}"),
        }
    }

    fn cbor(json: &str) -> Cbor {
        let bytes = encoded(json, Encoding::Cbor).expect("encodes");
        let mut decoder = ciborium_ll::Decoder::from(bytes.as_slice());
        let item = read_cbor(&mut decoder);
        assert_eq!(decoder.offset(), bytes.len(), "trailing bytes after {json}");
        item
    }

    fn text_item(s: &str) -> Cbor {
        Cbor::Text(s.to_owned())
    }

    fn big_endian(n: &BigUint) -> Cbor {
        Cbor::Bytes(n.to_bytes_be())
    }

    #[test]
    fn cbor_integers_and_bignums() {
        use Cbor::*;
        let two_to_64 = BigUint::from(1u8) << 64;
        let huge: BigUint = "123456789012345678901234567890123456789012345"
            .parse()
            .unwrap();
        let item = cbor(
            r#"[0,23,24,-1,-0,18446744073709551615,-18446744073709551616,
                18446744073709551616,-18446744073709551617,
                123456789012345678901234567890123456789012345,
                -123456789012345678901234567890123456789012345]"#,
        );
        let expected = Array(vec![
            Unsigned(0),
            Unsigned(23),
            Unsigned(24),
            Negative(0),
            Unsigned(0),
            Unsigned(u64::MAX),
            Negative(u64::MAX),
            Tag(2, Box::new(big_endian(&two_to_64))),
            Tag(3, Box::new(big_endian(&two_to_64))),
            Tag(2, Box::new(big_endian(&huge))),
            Tag(3, Box::new(big_endian(&(huge - 1u8)))),
        ]);
        assert_eq!(item, expected);
        // Heads take their shortest form.
        assert_eq!(encoded("23", Encoding::Cbor).unwrap(), [0x17]);
        assert_eq!(encoded("24", Encoding::Cbor).unwrap(), [0x18, 24]);
        assert_eq!(encoded("500", Encoding::Cbor).unwrap(), [0x19, 0x01, 0xf4]);
        assert_eq!(encoded("-500", Encoding::Cbor).unwrap(), [0x39, 0x01, 0xf3]);
    }

    #[test]
    fn cbor_decimals_keep_every_digit() {
        use Cbor::*;
        let mantissa: BigUint = "1000000000000000000001".parse().unwrap();
        let item = cbor(
            r#"[1.000000000000000000001,-1.000000000000000000001,1e400,-2.50e-400,
                123456789.123456789,0.1,2718350.0000000]"#,
        );
        let expected = Array(vec![
            Tag(
                4,
                Box::new(Array(vec![
                    Negative(20),
                    Tag(2, Box::new(big_endian(&mantissa))),
                ])),
            ),
            Tag(
                4,
                Box::new(Array(vec![
                    Negative(20),
                    Tag(3, Box::new(big_endian(&(mantissa - 1u8)))),
                ])),
            ),
            Tag(4, Box::new(Array(vec![Unsigned(400), Unsigned(1)]))),
            Tag(4, Box::new(Array(vec![Negative(400), Negative(24)]))),
            Tag(
                4,
                Box::new(Array(vec![Negative(8), Unsigned(123456789123456789)])),
            ),
            Float(0.1),
            Float(2718350.0),
        ]);
        assert_eq!(item, expected);
        // Doubles are always written as float64.
        let mut float = vec![0xfb];
        float.extend_from_slice(&0.5f64.to_be_bytes());
        assert_eq!(encoded("0.5", Encoding::Cbor).unwrap(), float);
    }

    #[test]
    fn cbor_maps_keep_order_and_strings_are_text() {
        use Cbor::*;
        let item = cbor(r#"{"z":{"b":null,"a":[true,false]},"é":"€ 😀","":{}}"#);
        let expected = Map(vec![
            (
                text_item("z"),
                Map(vec![
                    (text_item("b"), Simple(22)),
                    (text_item("a"), Array(vec![Simple(21), Simple(20)])),
                ]),
            ),
            (text_item("é"), text_item("€ 😀")),
            (text_item(""), Map(vec![])),
        ]);
        assert_eq!(item, expected);
    }

    #[test]
    fn cbor_reads_back_with_ciborium() {
        let bytes = encoded(
            r#"{"id":12345678901234567890,"amount":1.000000000000000000001,"tags":["a","b"]}"#,
            Encoding::Cbor,
        )
        .unwrap();
        let value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
        let map = value.as_map().expect("a map");
        let keys: Vec<_> = map.iter().map(|(k, _)| k.as_text().unwrap()).collect();
        assert_eq!(keys, ["id", "amount", "tags"]);
        assert_eq!(
            map[0].1,
            ciborium::Value::Integer(12345678901234567890u64.into())
        );
        let (tag, fraction) = map[1].1.as_tag().expect("a decimal fraction");
        assert_eq!(tag, 4);
        let parts = fraction.as_array().unwrap();
        assert_eq!(parts[0], ciborium::Value::Integer((-21i64).into()));
        // Wider than 64 bits, so ciborium keeps it as the bignum it is.
        assert_eq!(parts[1], ciborium::Value::from(1000000000000000000001u128));
        assert!(matches!(parts[1], ciborium::Value::Tag(2, _)));
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // Built directly: the parser refuses this depth, a transform may not.
        let mut value = Value::Null;
        for _ in 0..100_000 {
            value = Value::Array(vec![value]);
        }
        for encoding in Encoding::ALL {
            let mut out = Vec::new();
            encode(&value, encoding, &mut out).unwrap();
            assert!(out.len() >= 100_000);
        }
        // serde_json drops nested values recursively; unwind by hand.
        while let Value::Array(mut items) = value {
            value = items.pop().unwrap_or(Value::Null);
        }
    }
}
