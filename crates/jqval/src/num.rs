//! Integer / decimal numbers with exact decimal arithmetic.
//!
//! This is where the fork departs from jaq-json: upstream converts every decimal literal to
//! `f64` the moment it takes part in arithmetic, so `0.1 + 0.2` is `0.30000000000000004`.
//! Here a decimal literal stays a decimal: `+`, `-`, `*`, `%` and comparisons on integers and
//! decimals are exact, and `/` is exact to [`DIV_PRECISION`] significant digits. Only values
//! that are already binary floats (results of `sqrt`, `pow`, `log`, ...) use `f64`
//! arithmetic, and anything mixed with such a float becomes a float, as in IEEE 754.
//!
//! Decimal results keep the scale the arithmetic gives them, like SQL `NUMERIC`:
//! `2500000.00 * 1.08734` is `2718350.0000000` and `125.50 + 12.25` is `137.75`.
use super::Rc;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bigdecimal::{BigDecimal, RoundingMode};
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::str::FromStr;
use jaq_core::ops::Math;
use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{cast::ToPrimitive, Signed, Zero};

/// Significant digits of a quotient whose exact value does not terminate (`1 / 3`): 34, the
/// precision of IEEE 754 decimal128, rounded half to even.
pub const DIV_PRECISION: u64 = 34;

/// Largest difference of decimal exponents that arithmetic aligns. Adding `1e-100000` to `1`
/// would need 100,000 digits: a hostile literal must not make the engine allocate without
/// bound, so such operations fail instead of rounding silently.
const MAX_EXPONENT_SPREAD: i64 = 10_000;

/// Largest number of digits a decimal result may carry.
const MAX_DIGITS: u64 = 10_000;

/// Integer / decimal number.
///
/// Numbers are distinguished into integers, exact decimals and 64-bit floating-point numbers.
/// Integers index arrays; decimals carry the literal text they were read from, so that a
/// number that only passes through is written out byte for byte.
#[derive(Clone, Debug)]
pub enum Num {
    /// Machine-size integer
    Int(isize),
    /// Arbitrarily large integer
    BigInt(Rc<BigInt>),
    /// Floating-point number
    Float(f64),
    /// Exact decimal number, as JSON number text
    Dec(Rc<String>),
}

/// Why exact arithmetic refused to produce a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumError {
    /// The divisor of `/` or `%` was zero.
    DivisionByZero,
    /// The exact result would need more digits than the engine allows.
    OutOfRange,
}

impl fmt::Display for NumError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::DivisionByZero => f.write_str("division by zero"),
            Self::OutOfRange => write!(
                f,
                "exact decimal result out of range (more than {MAX_DIGITS} digits or exponents more than {MAX_EXPONENT_SPREAD} apart)"
            ),
        }
    }
}

/// Rounding modes accepted by `round_to`, named as in SQL and Java's `RoundingMode`.
pub fn rounding_mode(name: &str) -> Option<RoundingMode> {
    Some(match name {
        "half_even" => RoundingMode::HalfEven,
        "half_up" => RoundingMode::HalfUp,
        "half_down" => RoundingMode::HalfDown,
        "up" => RoundingMode::Up,
        "down" => RoundingMode::Down,
        "ceiling" => RoundingMode::Ceiling,
        "floor" => RoundingMode::Floor,
        _ => return None,
    })
}

/// The names [`rounding_mode`] accepts, for error messages.
pub const ROUNDING_MODES: &str = "half_even, half_up, half_down, up, down, ceiling, floor";

type NumR = Result<Num, NumError>;

// The arithmetic methods are named after the operators they implement but return `Result`:
// exact arithmetic can refuse (division by zero, results too large), where `std::ops` cannot.

#[allow(clippy::should_implement_trait)]
impl Num {
    /// Create a big integer.
    pub fn big_int(i: BigInt) -> Self {
        Self::BigInt(i.into())
    }

    /// A number from JSON number text: an integer when it is one, else a decimal that keeps
    /// the text byte for byte.
    pub fn from_literal(s: &str) -> Self {
        Self::from_str(s)
    }

    pub(crate) fn from_str(s: &str) -> Self {
        // `-0` is an integer to `isize`, but keep its sign as written.
        if s == "-0" {
            return Self::Dec(Rc::new(s.to_string()));
        }
        Self::from_str_radix(s, 10).unwrap_or_else(|| {
            // jq reads numbers more loosely than JSON (`+1.5`, `.5`, `1.`); a decimal keeps its
            // text only when that text is JSON, so that writing it back is always valid.
            if is_json_number(s) {
                Self::Dec(Rc::new(s.to_string()))
            } else {
                BigDecimal::from_str(s).map_or_else(
                    |_| Self::from_dec_str(s),
                    |d| {
                        let (m, scale) = d.into_bigint_and_exponent();
                        Self::Dec(Rc::new(format_decimal(&m, scale)))
                    },
                )
            }
        })
    }

    /// Convert from an integral type to a machine-sized or big integer.
    pub fn from_integral<T: Copy + TryInto<isize> + Into<BigInt>>(x: T) -> Self {
        x.try_into()
            .map_or_else(|_| Num::big_int(x.into()), Num::Int)
    }

    /// Try to parse an integer from a string with given radix.
    pub fn from_str_radix(i: &str, radix: u32) -> Option<Self> {
        let int = || isize::from_str_radix(i, radix).ok().map(Num::Int);
        let big = || bigint_from_str_radix(i, radix).map(Self::big_int);
        int().or_else(big)
    }

    /// Try to parse a decimal string to a [`Self::Float`], else return NaN.
    pub fn from_dec_str(n: &str) -> Self {
        n.parse().map_or(Self::Float(f64::NAN), Self::Float)
    }

    /// Make a number from an exact decimal: an integer when it has no fractional digits,
    /// else a decimal that keeps its scale.
    pub fn from_decimal(d: BigDecimal) -> Self {
        let (mantissa, scale) = d.into_bigint_and_exponent();
        // Small positive exponents become integers (`1e2 + 0` is `100`, usable as an index);
        // `1e400 * 2` stays `2e400` rather than 401 digits.
        if scale <= 0 && -scale <= 64 {
            let int = mantissa * BigInt::from(10u8).pow((-scale) as u32);
            return int.to_isize().map_or_else(|| Self::big_int(int), Self::Int);
        }
        Self::Dec(Rc::new(format_decimal(&mantissa, scale)))
    }

    /// The exact value of an integer or decimal; `None` for a float.
    pub fn to_decimal(&self) -> Option<BigDecimal> {
        match self {
            Self::Int(i) => Some(BigDecimal::from(*i as i64)),
            Self::BigInt(i) => Some(BigDecimal::from((**i).clone())),
            // A literal that does not parse (an exponent beyond `i64`) has no exact value we
            // can compute with; callers treat it like a float.
            Self::Dec(d) => BigDecimal::from_str(d).ok(),
            Self::Float(_) => None,
        }
    }

    pub(crate) fn is_int(&self) -> bool {
        matches!(self, Self::Int(_) | Self::BigInt(_))
    }

    /// If the value is a machine-sized integer, return it, else fail.
    pub fn as_isize(&self) -> Option<isize> {
        match self {
            Self::Int(i) => Some(*i),
            Self::BigInt(i) => i.to_isize(),
            _ => None,
        }
    }

    pub(crate) fn as_pos_usize(&self) -> Option<PosUsize> {
        match self {
            Self::Int(i) => Some(PosUsize(*i >= 0, i.unsigned_abs())),
            Self::BigInt(i) => i
                .magnitude()
                .to_usize()
                .map(|u| PosUsize(i.sign() != Sign::Minus, u)),
            _ => None,
        }
    }

    /// If the value is or can be converted to float, return it, else fail.
    pub(crate) fn as_f64(&self) -> f64 {
        match self {
            Self::Int(n) => *n as f64,
            Self::BigInt(n) => n.to_f64().unwrap(),
            Self::Float(n) => *n,
            Self::Dec(n) => n.parse().unwrap_or(f64::NAN),
        }
    }

    pub(crate) fn length(&self) -> Self {
        match self {
            Self::Int(i) => int_or_big(i.checked_abs(), [*i], |[i]| i.abs()),
            Self::BigInt(i) => Self::big_int(i.abs()),
            Self::Dec(n) => match n.strip_prefix('-') {
                Some(pos) => Self::Dec(pos.to_string().into()),
                None => Self::Dec(n.clone()),
            },
            Self::Float(f) => Self::Float(f.abs()),
        }
    }

    /// Round to `scale` fractional digits (negative: to tens, hundreds, ...) with `mode`.
    /// Floats are rounded through their exact binary value; NaN and infinities stay as they are.
    pub fn round_to(&self, scale: i64, mode: RoundingMode) -> NumR {
        if let Self::Float(f) = self {
            if !f.is_finite() {
                return Ok(self.clone());
            }
        }
        if scale.abs() > MAX_EXPONENT_SPREAD {
            return Err(NumError::OutOfRange);
        }
        let d = match self {
            Self::Float(f) => BigDecimal::try_from(*f).map_err(|_| NumError::OutOfRange)?,
            n => n.to_decimal().ok_or(NumError::OutOfRange)?,
        };
        check_spread(d.fractional_digit_count(), scale)?;
        let rounded = d.with_scale_round(scale, mode);
        // Keep the requested scale visible (`1.5 | round_to(2)` is `1.50`), except that a
        // non-positive scale yields an integer.
        if scale <= 0 {
            Ok(Self::from_decimal(rounded))
        } else {
            let (m, s) = rounded.into_bigint_and_exponent();
            Ok(Self::Dec(Rc::new(format_decimal(&m, s))))
        }
    }

    /// Exact sum; a float operand makes a float.
    pub fn add(self, rhs: Self) -> NumR {
        use Num::*;
        Ok(match (self, rhs) {
            (Int(x), Int(y)) => int_or_big(x.checked_add(y), [x, y], |[x, y]| x + y),
            (Int(i), BigInt(b)) | (BigInt(b), Int(i)) => {
                Self::big_int(&num_bigint::BigInt::from(i) + &*b)
            }
            (BigInt(x), BigInt(y)) => Self::big_int(&*x + &*y),
            (l, r) => match small_pair(&l, &r).and_then(|(x, y)| small::add(x, y)) {
                Some(n) => n,
                None => general_add(&l, &r)?,
            },
        })
    }

    /// Exact difference; a float operand makes a float.
    pub fn sub(self, rhs: Self) -> NumR {
        use Num::*;
        Ok(match (self, rhs) {
            (Int(x), Int(y)) => int_or_big(x.checked_sub(y), [x, y], |[x, y]| x - y),
            (Int(i), BigInt(b)) => Self::big_int(&num_bigint::BigInt::from(i) - &*b),
            (BigInt(b), Int(i)) => Self::big_int(&*b - &num_bigint::BigInt::from(i)),
            (BigInt(x), BigInt(y)) => Self::big_int(&*x - &*y),
            (l, r) => match small_pair(&l, &r).and_then(|(x, y)| small::sub(x, y)) {
                Some(n) => n,
                None => general_sub(&l, &r)?,
            },
        })
    }

    /// `x + y`, `x - y` or `x * y` on two numbers given as JSON number text, as the text of
    /// the number [`Num::add`], [`Num::sub`] or [`Num::mul`] gives for them, when both are
    /// integers or decimals in plain notation of at most 18 digits. Computed in machine
    /// integers without making either `Num`: the path for money amounts kept as text outside
    /// jqval. `None` for any other operator or operand, and where the result would not fit.
    pub fn exact_text_op(op: Math, x: &str, y: &str) -> Option<String> {
        let (x, y) = (small::Small::parse(x)?, small::Small::parse(y)?);
        small::text(match op {
            Math::Add => small::sum(x, y, false)?,
            Math::Sub => small::sum(x, y, true)?,
            Math::Mul => small::product(x, y)?,
            _ => return None,
        })
    }

    /// The number text `tonumber` makes of a string that is exactly one JSON number (RFC 8259):
    /// the string itself, but `0` for `-0`, which the reader takes for an integer. `None`
    /// for any other string (surrounding whitespace, jq's looser forms): the reader decides.
    pub fn json_number_text(s: &str) -> Option<&str> {
        is_json_number(s).then_some(if s == "-0" { "0" } else { s })
    }

    /// Exact product; a float operand makes a float.
    pub fn mul(self, rhs: Self) -> NumR {
        use Num::*;
        Ok(match (self, rhs) {
            (Int(x), Int(y)) => int_or_big(x.checked_mul(y), [x, y], |[x, y]| x * y),
            (Int(i), BigInt(b)) | (BigInt(b), Int(i)) => {
                Self::big_int(&num_bigint::BigInt::from(i) * &*b)
            }
            (BigInt(x), BigInt(y)) => Self::big_int(&*x * &*y),
            (l, r) => match small_pair(&l, &r).and_then(|(x, y)| small::mul(x, y)) {
                Some(n) => n,
                None => general_mul(&l, &r)?,
            },
        })
    }

    /// Quotient: exact when it terminates within [`DIV_PRECISION`] significant digits, else
    /// rounded half to even to that many; a float operand makes a float.
    pub fn div(self, rhs: Self) -> NumR {
        match exact_pair(&self, &rhs) {
            Some((x, y)) => {
                if y.is_zero() {
                    return Err(NumError::DivisionByZero);
                }
                divide(&x, &y)
            }
            None => Ok(Self::Float(self.as_f64() / rhs.as_f64())),
        }
    }

    /// Remainder with the sign of the dividend (`x - y * trunc(x / y)`), exact for integers
    /// and decimals (`5.5 % 2` is `1.5`); a float operand makes a float.
    pub fn rem(self, rhs: Self) -> NumR {
        use Num::*;
        Ok(match (self, rhs) {
            (_, Int(0)) => return Err(NumError::DivisionByZero),
            // `isize::MIN % -1` overflows; its remainder is 0.
            (Int(x), Int(y)) => Int(x.checked_rem(y).unwrap_or(0)),
            (BigInt(x), BigInt(y)) => Num::big_int(&*x % &*y),
            (Int(i), BigInt(b)) => Num::big_int(&num_bigint::BigInt::from(i) % &*b),
            (BigInt(b), Int(i)) => Num::big_int(&*b % &num_bigint::BigInt::from(i)),
            (l, r) => match exact_pair(&l, &r) {
                Some((x, y)) => {
                    if y.is_zero() {
                        return Err(NumError::DivisionByZero);
                    }
                    check_spread(x.fractional_digit_count(), y.fractional_digit_count())?;
                    checked(x % y)?
                }
                None => Float(l.as_f64() % r.as_f64()),
            },
        })
    }

    /// Negation, exact for every kind of number.
    pub fn neg(self) -> Self {
        match self {
            Self::Int(x) => int_or_big(x.checked_neg(), [x], |[x]| -x),
            Self::BigInt(x) => Self::big_int(-&*x),
            Self::Float(x) => Self::Float(-x),
            Self::Dec(n) => match n.strip_prefix('-') {
                Some(pos) => Self::Dec(pos.to_string().into()),
                None => Self::Dec(format!("-{n}").into()),
            },
        }
    }
}

// `+`, `-` and `*` on decimals (or a decimal and an integer) in general: on the operands'
// mantissas and scales as big integers, with the scale rules of SQL `NUMERIC` (a sum has the
// larger scale of its operands, a product the sum of their scales). These are written out
// rather than left to `BigDecimal`'s operators, which shortcut a zero or one operand and then
// keep that operand's scale or the other's (`1.5 - 0.000` would be `1.5`, `1.00 * 2.5` would be
// `2.5`). The operators first try [`small`], which gives the same results in machine integers.

fn general_add(l: &Num, r: &Num) -> NumR {
    general_sum(l, r, false)
}

fn general_sub(l: &Num, r: &Num) -> NumR {
    general_sum(l, r, true)
}

fn general_sum(l: &Num, r: &Num, negate_r: bool) -> NumR {
    let Some((x, y)) = exact_pair(l, r) else {
        let (x, y) = (l.as_f64(), r.as_f64());
        return Ok(Num::Float(if negate_r { x - y } else { x + y }));
    };
    check_spread(x.fractional_digit_count(), y.fractional_digit_count())?;
    let ((xm, xs), (ym, ys)) = (x.into_bigint_and_exponent(), y.into_bigint_and_exponent());
    let scale = xs.max(ys);
    let align = |m: BigInt, s: i64| m * BigInt::from(10u8).pow((scale - s) as u32);
    let (xm, ym) = (align(xm, xs), align(ym, ys));
    checked(BigDecimal::new(
        if negate_r { xm - ym } else { xm + ym },
        scale,
    ))
}

fn general_mul(l: &Num, r: &Num) -> NumR {
    match exact_pair(l, r) {
        Some((x, y)) => {
            if x.digits() + y.digits() > MAX_DIGITS {
                return Err(NumError::OutOfRange);
            }
            let ((xm, xs), (ym, ys)) = (x.into_bigint_and_exponent(), y.into_bigint_and_exponent());
            checked(BigDecimal::new(xm * ym, xs + ys))
        }
        None => Ok(Num::Float(l.as_f64() * r.as_f64())),
    }
}

/// Both operands as [`small::Small`], when both are integers or decimals that fit.
fn small_pair(l: &Num, r: &Num) -> Option<(small::Small, small::Small)> {
    Some((small::Small::of(l)?, small::Small::of(r)?))
}

/// Exact arithmetic on decimals of at most [`small::MAX_DIGITS`] digits in plain notation
/// (`2500000.00`, `-0.125`, not `1e3`) in machine integers: a mantissa and a scale, as
/// `BigDecimal` keeps them, but without parsing into and printing from big integers. Money
/// amounts are such decimals, and this is what makes a transform's arithmetic cost tens of
/// nanoseconds rather than a microsecond. Every result is the one the general path gives,
/// which the tests check on generated operands; anything that does not
/// fit (an overflow, an exponent, a scale [`format_decimal`] would write with an exponent)
/// returns `None` and takes the general path.
mod small {
    use super::{Num, Rc};
    use alloc::string::String;

    /// Most digits an operand may have: the product of two such mantissas fits in `i128`.
    pub(super) const MAX_DIGITS: u32 = 18;

    /// `mantissa / 10^scale`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct Small {
        pub(super) mantissa: i128,
        pub(super) scale: u32,
    }

    impl Small {
        /// An integer, or a decimal written as JSON without an exponent, of at most
        /// [`MAX_DIGITS`] digits (leading zeros included).
        pub(super) fn of(n: &Num) -> Option<Self> {
            match n {
                Num::Int(i) => Some(Self {
                    mantissa: *i as i128,
                    scale: 0,
                }),
                Num::Dec(text) => Self::parse(text),
                _ => None,
            }
        }

        /// Reads JSON number text (an integer, or a decimal without an exponent): digits
        /// with at most one point after the first digit, in one pass over the bytes.
        pub(super) fn parse(text: &str) -> Option<Self> {
            let (negative, digits) = match text.as_bytes() {
                [b'-', rest @ ..] => (true, rest),
                bytes => (false, bytes),
            };
            // Digits and at most one point: beyond this there are too many digits. (Up to
            // 19 digits cannot overflow the `u64` below; the count is checked after.)
            if digits.len() > MAX_DIGITS as usize + 1 {
                return None;
            }
            let mut mantissa: u64 = 0;
            let mut point = None;
            for (at, &b) in digits.iter().enumerate() {
                match b {
                    b'0'..=b'9' => mantissa = mantissa * 10 + u64::from(b - b'0'),
                    b'.' if point.is_none() && at > 0 => point = Some(at),
                    _ => return None,
                }
            }
            let scale = point.map_or(0, |at| digits.len() - at - 1);
            let count = digits.len() - usize::from(point.is_some());
            if count == 0 || count > MAX_DIGITS as usize {
                return None;
            }
            let mantissa = i128::from(mantissa);
            Some(Self {
                mantissa: if negative { -mantissa } else { mantissa },
                scale: scale as u32,
            })
        }

        /// The mantissa at a larger `scale`.
        fn at(self, scale: u32) -> Option<i128> {
            self.mantissa
                .checked_mul(10i128.checked_pow(scale - self.scale)?)
        }
    }

    pub(super) fn add(x: Small, y: Small) -> Option<Num> {
        number(sum(x, y, false)?)
    }

    pub(super) fn sub(x: Small, y: Small) -> Option<Num> {
        number(sum(x, y, true)?)
    }

    pub(super) fn mul(x: Small, y: Small) -> Option<Num> {
        number(product(x, y)?)
    }

    pub(super) fn sum(x: Small, y: Small, negate_y: bool) -> Option<Small> {
        let scale = x.scale.max(y.scale);
        let (xm, ym) = (x.at(scale)?, y.at(scale)?);
        let mantissa = if negate_y {
            xm.checked_sub(ym)?
        } else {
            xm.checked_add(ym)?
        };
        Some(Small { mantissa, scale })
    }

    pub(super) fn product(x: Small, y: Small) -> Option<Small> {
        Some(Small {
            mantissa: x.mantissa.checked_mul(y.mantissa)?,
            scale: x.scale + y.scale,
        })
    }

    /// What `Num::from_decimal` makes of `mantissa / 10^scale`.
    fn number(n: Small) -> Option<Num> {
        if n.scale == 0 {
            return Some(
                isize::try_from(n.mantissa)
                    .map_or_else(|_| Num::big_int(n.mantissa.into()), Num::Int),
            );
        }
        Some(Num::Dec(Rc::new(text(n)?)))
    }

    /// How [`number`]'s result is written: the digits of an integer, or a decimal point
    /// `scale` digits from the right. `None` where [`number`] gives up too.
    pub(super) fn text(n: Small) -> Option<String> {
        if n.scale > 64 {
            return None;
        }
        let negative = n.mantissa < 0;
        // `itoa` writes on the stack (and `u64`s with 64-bit divisions); `Display` would
        // allocate a string only to be copied into the result.
        let mut buf = itoa::Buffer::new();
        let magnitude = n.mantissa.unsigned_abs();
        let digits = match u64::try_from(magnitude) {
            Ok(m) => buf.format(m),
            Err(_) => buf.format(magnitude),
        };
        Some(super::point(negative, digits, n.scale))
    }
}

/// Both operands as exact decimals, unless one of them is a float.
fn exact_pair(l: &Num, r: &Num) -> Option<(BigDecimal, BigDecimal)> {
    Some((l.to_decimal()?, r.to_decimal()?))
}

fn check_spread(x: i64, y: i64) -> Result<(), NumError> {
    if x.abs_diff(y) > MAX_EXPONENT_SPREAD as u64 {
        Err(NumError::OutOfRange)
    } else {
        Ok(())
    }
}

fn checked(d: BigDecimal) -> NumR {
    if d.digits() > MAX_DIGITS {
        Err(NumError::OutOfRange)
    } else {
        Ok(Num::from_decimal(d))
    }
}

/// Long division of exact decimals to [`DIV_PRECISION`] significant digits, half to even.
/// An exact quotient drops its trailing zeros (`1 / 4` is `0.25`, `6 / 3` is `2`).
fn divide(x: &BigDecimal, y: &BigDecimal) -> NumR {
    let (xm, xs) = x.as_bigint_and_exponent();
    let (ym, ys) = y.as_bigint_and_exponent();
    // Scale the dividend so that the integer quotient has at least DIV_PRECISION + 1 digits:
    // digits(a / b) >= digits(a) - digits(b).
    let (xd, yd) = (x.digits() as i64, y.digits() as i64);
    let shift = (DIV_PRECISION as i64 + 1 + yd - xd).max(0);
    let scale = xs - ys + shift;
    if scale.abs() > MAX_EXPONENT_SPREAD {
        return Err(NumError::OutOfRange);
    }
    let numerator = xm * BigInt::from(10u8).pow(shift as u32);
    let (q, r) = (&numerator / &ym, &numerator % &ym);
    let exact = BigDecimal::new(q.clone(), scale);
    if r.is_zero() && exact.digits() <= DIV_PRECISION {
        return Ok(Num::from_decimal(strip_zeros(exact)));
    }
    // A non-zero remainder becomes a sticky last digit, so that rounding sees "more than
    // half" even when the truncated digits read exactly ...5.
    let sticky = if r.is_zero() {
        0
    } else {
        q.signum().to_i32().unwrap_or(0)
    };
    let d = BigDecimal::new(q * 10 + sticky, scale + 1);
    let target = scale + 1 - (d.digits() as i64 - DIV_PRECISION as i64);
    Ok(Num::from_decimal(strip_zeros(
        d.with_scale_round(target, RoundingMode::HalfEven),
    )))
}

fn strip_zeros(d: BigDecimal) -> BigDecimal {
    let (mut m, mut s) = d.into_bigint_and_exponent();
    let ten = BigInt::from(10u8);
    while s > 0 && !m.is_zero() && (&m % &ten).is_zero() {
        m /= &ten;
        s -= 1;
    }
    BigDecimal::new(m, s)
}

/// Whether `s` is a number in JSON's grammar (RFC 8259, section 6).
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// JSON number text for `mantissa * 10^-scale`: plain digits for a moderate scale, else
/// exponent notation so that `1e-5000` does not turn into 5,000 characters.
fn format_decimal(mantissa: &BigInt, scale: i64) -> String {
    if !(0..=64).contains(&scale) {
        return format!("{mantissa}e{}", -scale);
    }
    point(
        mantissa.sign() == Sign::Minus,
        &mantissa.magnitude().to_string(),
        scale as u32,
    )
}

/// The decimal text of `digits / 10^scale` (`scale` at most 64), negated when `negative`.
fn point(negative: bool, digits: &str, scale: u32) -> String {
    let scale = scale as usize;
    let mut text = String::with_capacity(digits.len() + scale + 3);
    if negative {
        text.push('-');
    }
    if scale == 0 {
        text.push_str(digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        text.push_str(int);
        text.push('.');
        text.push_str(frac);
    } else {
        text.push_str("0.");
        text.extend(core::iter::repeat_n('0', scale - digits.len()));
        text.push_str(digits);
    }
    text
}

#[derive(Copy, Clone)]
pub(crate) struct PosUsize(pub(crate) bool, pub(crate) usize);

impl PosUsize {
    pub fn wrap(&self, len: usize) -> Option<usize> {
        self.0.then_some(self.1).or_else(|| len.checked_sub(self.1))
    }
}

fn int_or_big<const N: usize>(
    i: Option<isize>,
    x: [isize; N],
    f: fn([BigInt; N]) -> BigInt,
) -> Num {
    i.map_or_else(|| Num::big_int(f(x.map(BigInt::from))), Num::Int)
}

// Do not use `BigInt::parse_bytes`, because it accepts arbitrary underscores between digits.
// https://github.com/rust-num/num-bigint/issues/340
fn bigint_from_str_radix(s: &str, radix: u32) -> Option<BigInt> {
    use num_bigint::Sign::{Minus, Plus};
    let f = |c, sign| s.strip_prefix(c).map(|s| (sign, s));
    let (sign, num) = f('-', Minus).or_else(|| f('+', Plus)).unwrap_or((Plus, s));
    biguint_from_str_radix(num, radix).map(|bu| BigInt::from_biguint(sign, bu))
}

fn biguint_from_str_radix(s: &str, radix: u32) -> Option<BigUint> {
    assert!((2..=36).contains(&radix));
    if s.is_empty() {
        return None;
    }

    // normalize all characters to plain digit values
    let digits = s.bytes().map(|b| {
        Some(match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'z' => b - b'a' + 10,
            b'A'..=b'Z' => b - b'A' + 10,
            _ => return None,
        })
        .filter(|d| *d < radix as u8)
    });
    BigUint::from_radix_be(&digits.collect::<Option<Vec<_>>>()?, radix)
}

/// The exact value of a number for comparison: finite numbers as decimals, and the
/// non-finite floats ordered as jq orders them (NaN below everything, then -inf, ..., +inf).
enum Key {
    NaN,
    NegInf,
    Finite(BigDecimal),
    PosInf,
}

impl Num {
    fn key(&self) -> Key {
        match self {
            Self::Float(f) if f.is_nan() => Key::NaN,
            Self::Float(f) if *f == f64::INFINITY => Key::PosInf,
            Self::Float(f) if *f == f64::NEG_INFINITY => Key::NegInf,
            Self::Float(f) => Key::Finite(BigDecimal::try_from(*f).unwrap_or_default()),
            n => match n.to_decimal() {
                Some(d) => Key::Finite(d),
                // An unparsable literal (exponent beyond i64) is huge or tiny: order it as
                // the float it rounds to.
                None => Self::Float(n.as_f64()).key(),
            },
        }
    }
}

impl Hash for Num {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal numbers must hash equally across kinds (`1`, `1.0`, `1.00` and the float 1),
        // so finite numbers hash their normalised exact value.
        // `Val::hash` assumes that this starts with `state.write_u8(n)` where `n < 2`.
        match self {
            Self::Int(i) => {
                state.write_u8(1);
                let (mut m, mut e) = (*i as i128, 0i64);
                while m != 0 && m % 10 == 0 {
                    m /= 10;
                    e += 1;
                }
                BigInt::from(m).hash(state);
                e.hash(state);
            }
            n => match n.key() {
                Key::Finite(d) => {
                    state.write_u8(1);
                    let (m, s) = d.normalized().into_bigint_and_exponent();
                    m.hash(state);
                    (-s).hash(state);
                }
                _ => state.write_u8(0),
            },
        }
    }
}

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Num {}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        use Ordering::*;
        match (self, other) {
            (Self::Int(x), Self::Int(y)) => x.cmp(y),
            (Self::Int(x), Self::BigInt(y)) => BigInt::from(*x).cmp(y),
            (Self::BigInt(x), Self::Int(y)) => (**x).cmp(&BigInt::from(*y)),
            (Self::BigInt(x), Self::BigInt(y)) => x.cmp(y),
            (Self::Float(x), Self::Float(y)) => float_cmp(*x, *y),
            (Self::Dec(x), Self::Dec(y)) if Rc::ptr_eq(x, y) => Equal,
            _ => match (self.key(), other.key()) {
                (Key::Finite(x), Key::Finite(y)) => x.cmp(&y),
                (x, y) => rank(&x).cmp(&rank(&y)),
            },
        }
    }
}

fn rank(k: &Key) -> u8 {
    match k {
        Key::NaN => 0,
        Key::NegInf => 1,
        Key::Finite(_) => 2,
        Key::PosInf => 3,
    }
}

fn float_cmp(left: f64, right: f64) -> Ordering {
    if left == 0. && right == 0. {
        // consider negative and positive 0 as equal
        Ordering::Equal
    } else if left.is_nan() {
        // there are more than 50 shades of NaN, and which of these
        // you strike when you perform a calculation is not deterministic (!),
        // therefore `total_cmp` may yield different results for the same calculation
        // so we bite the bullet and handle this like in jq
        Ordering::Less
    } else if right.is_nan() {
        Ordering::Greater
    } else {
        f64::total_cmp(&left, &right)
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::BigInt(i) => write!(f, "{i}"),
            Self::Float(x) if x.is_nan() => write!(f, "NaN"),
            Self::Float(f64::INFINITY) => write!(f, "Infinity"),
            Self::Float(f64::NEG_INFINITY) => write!(f, "-Infinity"),
            Self::Float(x) => ryu::Buffer::new().format_finite(*x).fmt(f),
            Self::Dec(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Num {
        Num::from_literal(text)
    }

    /// The operands of the differential test: decimals of every length up to the small path's
    /// limit and a little past it, integers up to `isize`'s bounds, zeros of every sign and scale.
    fn operands() -> Vec<Num> {
        let mut out: Vec<Num> = [
            "0",
            "-0",
            "0.0",
            "-0.000",
            "1",
            "-1",
            "0.1",
            "0.2",
            "0.3",
            "125.50",
            "12.25",
            "2500000.00",
            "1.08734",
            "999999999999999999",
            "-999999999999999999",
            "99999999999999999.9",
            "0.000000000000000001",
            "1234567890123456789",
            "12345678901234567.89",
            "1e3",
            "1.5E-2",
        ]
        .iter()
        .map(|t| dec(t))
        .collect();
        out.extend([isize::MAX, isize::MIN, isize::MAX / 7, -3, 10].map(Num::Int));
        // A fixed linear congruential sequence: the same operands on every run.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        for _ in 0..120 {
            let int_digits = 1 + next(12) as usize;
            let frac_digits = next(9) as usize;
            let mut text = String::new();
            if next(3) == 0 {
                text.push('-');
            }
            for i in 0..int_digits {
                let d = next(10);
                // JSON has no leading zeros.
                text.push(char::from(
                    b'0' + if i == 0 && int_digits > 1 {
                        1 + d % 9
                    } else {
                        d
                    } as u8,
                ));
            }
            if frac_digits > 0 {
                text.push('.');
                (0..frac_digits).for_each(|_| text.push(char::from(b'0' + next(10) as u8)));
            }
            out.push(dec(&text));
        }
        out
    }

    fn shown(r: NumR) -> String {
        format!("{r:?}")
    }

    #[test]
    fn small_parse_reads_what_a_split_at_the_point_reads() {
        // The one-pass reader against the plain one it replaced.
        fn split_reader(text: &str) -> Option<small::Small> {
            let (negative, rest) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text),
            };
            let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
            if int.is_empty() || int.len() + frac.len() > small::MAX_DIGITS as usize {
                return None;
            }
            let mut mantissa: i128 = 0;
            for b in int.bytes().chain(frac.bytes()) {
                if !b.is_ascii_digit() {
                    return None;
                }
                mantissa = mantissa * 10 + i128::from(b - b'0');
            }
            Some(small::Small {
                mantissa: if negative { -mantissa } else { mantissa },
                scale: frac.len() as u32,
            })
        }
        let mut texts: Vec<String> = [
            "",
            "-",
            ".",
            "-.",
            ".5",
            "-.5",
            "5.",
            "-5.",
            "0",
            "-0",
            "007",
            "1.2.3",
            "1..2",
            "1e3",
            "1E3",
            "+1",
            " 1",
            "1 ",
            "0.50",
            "-0.000",
            "2500000.00",
            "1.08734",
            "123456789012345678",
            "1234567890123456789",
            "12345678901234567.8",
            "1234567890123456789.0",
            "-999999999999999999",
            "99999999999999999999",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        texts.extend(operands().iter().map(Num::to_string));
        for text in &texts {
            assert_eq!(small::Small::parse(text), split_reader(text), "{text:?}");
        }
    }

    #[test]
    fn the_small_path_gives_what_bigdecimal_gives() {
        let ops = operands();
        let (mut small_runs, mut all) = (0, 0);
        for l in &ops {
            for r in &ops {
                all += 1;
                if small_pair(l, r).is_some() {
                    small_runs += 1;
                }
                assert_eq!(
                    shown(l.clone().add(r.clone())),
                    shown(general_add(l, r)),
                    "{l:?} + {r:?}"
                );
                assert_eq!(
                    shown(l.clone().sub(r.clone())),
                    shown(general_sub(l, r)),
                    "{l:?} - {r:?}"
                );
                assert_eq!(
                    shown(l.clone().mul(r.clone())),
                    shown(general_mul(l, r)),
                    "{l:?} * {r:?}"
                );
            }
        }
        // The comparison above means something only if most pairs took the small path.
        assert!(
            small_runs * 10 > all * 8,
            "{small_runs} of {all} pairs were small"
        );
    }

    #[test]
    fn arithmetic_on_text_gives_what_the_operators_give() {
        let texts: Vec<String> = operands().iter().map(Num::to_string).collect();
        let (mut answered, mut all) = (0, 0);
        for l in &texts {
            for r in &texts {
                for op in [Math::Add, Math::Sub, Math::Mul] {
                    all += 1;
                    let Some(text) = Num::exact_text_op(op, l, r) else {
                        continue;
                    };
                    answered += 1;
                    let (x, y) = (Num::from_literal(l), Num::from_literal(r));
                    let expected = match op {
                        Math::Add => x.add(y),
                        Math::Sub => x.sub(y),
                        _ => x.mul(y),
                    };
                    assert_eq!(Ok(text), expected.map(|n| n.to_string()), "{l} {op:?} {r}");
                }
            }
        }
        assert!(answered * 10 > all * 7, "{answered} of {all} answered");
        // Exponents, other operators and results past the digit limit are not its to answer.
        assert_eq!(Num::exact_text_op(Math::Add, "1e3", "1"), None);
        assert_eq!(Num::exact_text_op(Math::Div, "1", "4"), None);
        let nines = "999999999999999999";
        assert_eq!(
            Num::exact_text_op(Math::Add, "0.1", "0.2").as_deref(),
            Some("0.3")
        );
        assert!(Num::exact_text_op(Math::Mul, nines, nines).is_some());
        assert_eq!(
            Num::exact_text_op(Math::Add, "-0", "-0").as_deref(),
            Some("0")
        );
    }

    #[test]
    fn money_arithmetic_takes_the_small_path() {
        let (qty, price) = (dec("2500000.00"), dec("1.08734"));
        let (x, y) = small_pair(&qty, &price).unwrap();
        assert_eq!(
            shown(Ok(small::mul(x, y).unwrap())),
            shown(Ok(dec("2718350.0000000")))
        );
        let (x, y) = small_pair(&dec("0.1"), &dec("0.2")).unwrap();
        assert_eq!(shown(Ok(small::add(x, y).unwrap())), shown(Ok(dec("0.3"))));
        let (x, y) = small_pair(&dec("125.50"), &Num::Int(-125)).unwrap();
        assert_eq!(
            shown(Ok(small::sub(x, y).unwrap())),
            shown(Ok(dec("250.50")))
        );
        // Whole results are integers, as `Num::from_decimal` makes them.
        let (x, y) = small_pair(&dec("0.5"), &dec("0.5")).unwrap();
        assert!(matches!(small::add(x, y), Some(Num::Dec(_))));
        let (x, y) = small_pair(&Num::Int(isize::MAX), &Num::Int(2)).unwrap();
        assert!(matches!(small::mul(x, y), Some(Num::BigInt(_))));
    }

    #[test]
    fn zero_and_one_operands_keep_the_sql_scale() {
        // `BigDecimal`'s operators shortcut these and would give `1.5` and `2.5`.
        let big = dec("1234567890123456789012345.5");
        assert_eq!(
            shown(general_sub(&big, &dec("0.000"))),
            shown(Ok(dec("1234567890123456789012345.500")))
        );
        assert_eq!(
            shown(general_mul(&dec("1.00"), &big)),
            shown(Ok(dec("1234567890123456789012345.500")))
        );
        assert_eq!(shown(dec("1.5").sub(dec("0.000"))), shown(Ok(dec("1.500"))));
        assert_eq!(shown(dec("1.00").mul(dec("2.5"))), shown(Ok(dec("2.500"))));
        assert_eq!(shown(dec("0.0").add(Num::Int(0))), shown(Ok(dec("0.0"))));
    }

    #[test]
    fn what_does_not_fit_takes_the_general_path() {
        assert!(small::Small::of(&dec("1e3")).is_none());
        assert!(small::Small::of(&dec("1234567890123456789.5")).is_none());
        assert!(small::Small::of(&Num::Float(0.5)).is_none());
        // The widest operands still fit: the sum and product below cannot overflow `i128`.
        let big = Num::Int(isize::MAX);
        let (x, y) = small_pair(&big, &dec("0.00000000000000001")).unwrap();
        assert!(small::add(x, y).is_some());
        let (x, y) = small_pair(&dec("999999999999999999"), &dec("999999999999999999")).unwrap();
        assert!(small::mul(x, y).is_some());
        let (x, y) = small_pair(&big, &big).unwrap();
        assert!(small::mul(x, y).is_some());
    }
}
