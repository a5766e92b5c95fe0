//! jq transforms: programs compiled once with jaq and run on any thread, with exact numbers.
//!
//! Values are `jqval::Val` (a fork of jaq-json whose decimals stay exact), converted from and
//! to the engine's `Value` at the edges of a run. Output rule: a program must yield exactly one
//! value ([`OutputMode::One`], the default; zero or several is an error naming the count), or
//! every output is collected into an array ([`OutputMode::Collect`]).
//!
//! Most transforms reshape documents with paths, object construction, `//`, bindings and
//! arithmetic; those run on `direct`, an evaluator over the engine's own values that leaves
//! everything else, every error included, to jaq (see that module for why and how).
//!
//! Containment: a run has a wall-clock budget and a stack reserve (`jqval::budget`); a program
//! that exceeds either stops with [`TransformError::Timeout`] or
//! [`TransformError::TooDeep`] and the thread is free for the next document.

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jaq_core::data::{DataT, HasLut};
use jaq_core::load::{Arena, File, Loader, lex, parse};
use jaq_core::{Compiler, Ctx, Lut, Vars, compile, load};
use jqval::{Num, Val, budget};
use serde_json::{Map, Number};

use crate::Value;
use crate::doc::{Doc, DocRef};

mod direct;

type Filter = jaq_core::Filter<Budgeted>;

/// jaq's data type for our runs: plain values, and a lookup table whose every use (one per
/// evaluation step) counts against the run's budget.
struct Budgeted;

impl DataT for Budgeted {
    type V<'a> = Val;
    type Data<'a> = BudgetedLut<'a>;
}

#[derive(Clone)]
struct BudgetedLut<'a>(&'a Lut<Budgeted>);

impl<'a> HasLut<'a, Budgeted> for BudgetedLut<'a> {
    #[inline]
    fn lut(&self) -> &'a Lut<Budgeted> {
        budget::tick();
        self.0
    }
}

/// How a program's outputs become the transform's result.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// Exactly one output; zero or several is an error.
    #[default]
    One,
    /// All outputs, in order, as one array (possibly empty).
    Collect,
}

impl FromStr for OutputMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "one" => Ok(Self::One),
            "collect" => Ok(Self::Collect),
            _ => Err(format!(
                "unknown output mode {s:?}; use \"one\" or \"collect\""
            )),
        }
    }
}

/// A compiled jq program; cheap to clone and shared across threads.
#[derive(Clone)]
pub struct Transform {
    filter: Arc<Filter>,
    /// The same program for the direct evaluator, when it stays inside what that runs.
    direct: Option<Arc<direct::Program>>,
    source: Arc<str>,
    mode: OutputMode,
}

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transform")
            .field("source", &self.source)
            .field("mode", &self.mode)
            .field("direct", &self.direct.is_some())
            .finish()
    }
}

/// A program that does not compile, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jq program does not compile: {message} at line {line}, column {column}")]
pub struct CompileError {
    /// What is wrong.
    pub message: String,
    /// 1-based line of the first problem in the program.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

/// Why a run produced no result. A program's own `error(...)` is [`TransformError::Jq`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// jq raised an error; the message is jq's.
    #[error("{0}")]
    Jq(String),
    /// The program yielded zero or several outputs where exactly one is required.
    #[error(
        "transform yielded {0} outputs; exactly one is required (use collect mode to gather several)"
    )]
    OutputCount(usize),
    /// An output is not JSON (NaN, infinity, non-string object key, ...).
    #[error("transform output is not JSON: {0}")]
    NotJson(String),
    /// The run passed its time budget.
    #[error("transform exceeded its time limit of {0:?}")]
    Timeout(Duration),
    /// The program recursed too deeply.
    #[error("transform recursed too deeply")]
    TooDeep,
    /// jaq itself failed; a bug, reported rather than crashing the caller.
    #[error("transform failed internally: {0}")]
    Internal(String),
}

impl TransformError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Jq(_) => "transform_error",
            Self::OutputCount(_) => "transform_output_count",
            Self::NotJson(_) => "transform_not_json",
            Self::Timeout(_) => "transform_timeout",
            Self::TooDeep => "transform_too_deep",
            Self::Internal(_) => "transform_internal",
        }
    }
}

impl Transform {
    /// Compiles `code` with jq's core, standard and JSON definitions plus assay's exact
    /// rounding helpers. Modules (`import`, `include`) are not available.
    pub fn compile(code: &str, mode: OutputMode) -> Result<Self, CompileError> {
        // jaq-core has been seen to panic on some programs it cannot load (an unresolved
        // `import`); that must be a compile error, not a crash.
        let compiled = std::panic::catch_unwind(|| compile_filter(code));
        let filter = compiled.unwrap_or_else(|_| {
            Err(CompileError {
                message: "the program uses a feature assay does not support (modules?)".into(),
                line: 1,
                column: 1,
            })
        })?;
        // Only a program jaq accepted gets here, so the direct evaluator never decides what
        // compiles; a panic in it would be a bug, and leaves the program to jaq.
        let direct = std::panic::catch_unwind(|| direct::Program::compile(code))
            .ok()
            .flatten();
        Ok(Self {
            filter: Arc::new(filter),
            direct: direct.map(Arc::new),
            source: code.into(),
            mode,
        })
    }

    /// Whether runs take the direct evaluator (else jaq runs every document).
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The same program with every run left to jaq: the reference the direct evaluator is
    /// compared with in tests and benchmarks.
    pub fn jaq_only(mut self) -> Self {
        self.direct = None;
        self
    }

    /// The program text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The output rule.
    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    /// Runs the program on `input` within `timeout`.
    pub fn run(&self, input: &Value, timeout: Duration) -> Result<Value, TransformError> {
        self.run_input(Input::Value(input), timeout)
    }

    /// [`Transform::run`] on a document read as a [`Doc`]: the direct evaluator
    /// reads it in place; jaq, when it runs, gets it as a [`Value`].
    pub fn run_doc(
        &self,
        input: DocRef<'_, '_>,
        timeout: Duration,
    ) -> Result<Value, TransformError> {
        self.run_input(Input::Doc(input), timeout)
    }

    /// [`Transform::run_doc`] with the result as a [`Doc`] when the direct evaluator answers:
    /// the result then borrows from `input` and from the program, and no [`Value`] is built.
    pub fn run_to_doc<'a>(
        &'a self,
        input: DocRef<'a, 'a>,
        timeout: Duration,
    ) -> Result<Output<'a>, TransformError> {
        let deadline = Instant::now() + timeout;
        let collect = self.mode == OutputMode::Collect;
        let direct = match &self.direct {
            // One output, written into the document as it is computed.
            Some(program) if !collect && program.yields_at_most_one() => {
                self.run_direct_one(program, input, deadline, timeout)
            }
            _ => self
                .run_direct(Input::Doc(input), deadline, timeout)
                .map(|outputs| outputs.map(|o| o.into_doc(collect))),
        };
        match direct {
            Some(doc) => doc.map(Output::Doc),
            None => self
                .run_jaq(Input::Doc(input), deadline, timeout)
                .map(Output::Value),
        }
    }

    /// [`Transform::run_direct`] for a program that yields at most one output, in
    /// [`OutputMode::One`], writing the output as a document.
    fn run_direct_one<'a>(
        &'a self,
        program: &'a direct::Program,
        input: DocRef<'a, 'a>,
        deadline: Instant,
        timeout: Duration,
    ) -> Option<Result<Doc<'a>, TransformError>> {
        // A panic in the direct evaluator would be its bug: jaq answers instead.
        let run = std::panic::catch_unwind(|| program.run_doc_one(input, deadline));
        answered(run.unwrap_or(Err(direct::Stop::Fallback)), timeout)
    }

    fn run_input(&self, input: Input<'_>, timeout: Duration) -> Result<Value, TransformError> {
        let deadline = Instant::now() + timeout;
        match self.run_direct(input, deadline, timeout) {
            Some(outputs) => outputs.map(|o| {
                let mut values = o.into_values();
                match self.mode {
                    OutputMode::Collect => Value::Array(values),
                    OutputMode::One => values.swap_remove(0),
                }
            }),
            None => self.run_jaq(input, deadline, timeout),
        }
    }

    /// The direct evaluator's run, when it answers: outputs that meet the output rule, or a
    /// timeout. `None` leaves the run to jaq.
    fn run_direct<'a>(
        &'a self,
        input: Input<'a>,
        deadline: Instant,
        timeout: Duration,
    ) -> Option<Result<direct::Outputs<'a>, TransformError>> {
        let direct = self.direct.as_ref()?;
        // A panic in the direct evaluator would be its bug: jaq answers instead.
        let run = std::panic::catch_unwind(|| match input {
            Input::Value(value) => direct.run(value, deadline),
            Input::Doc(doc) => direct.run_doc(doc, deadline),
        });
        match run.unwrap_or(Err(direct::Stop::Fallback)) {
            // The count error is jaq's to report.
            Ok(outputs) if self.mode == OutputMode::One && outputs.len() != 1 => None,
            run => answered(run, timeout),
        }
    }

    fn run_jaq(
        &self,
        input: Input<'_>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Value, TransformError> {
        let converted;
        let input = match input {
            Input::Value(value) => value,
            Input::Doc(doc) => {
                converted = doc.to_value();
                &converted
            }
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            budget::with_budget(deadline, || self.run_unbudgeted(input))
        }));
        match result {
            Ok(Ok(r)) => r,
            Ok(Err(budget::Exceeded::Time)) => Err(TransformError::Timeout(timeout)),
            Ok(Err(budget::Exceeded::Stack)) => Err(TransformError::TooDeep),
            Err(panic) => Err(TransformError::Internal(panic_message(&panic))),
        }
    }

    fn run_unbudgeted(&self, input: &Value) -> Result<Value, TransformError> {
        let ctx = Ctx::<Budgeted>::new(BudgetedLut(&self.filter.lut), Vars::new([]));
        let mut outputs = self
            .filter
            .id
            .run((ctx, to_val(input)))
            .map(jaq_core::unwrap_valr);
        match self.mode {
            OutputMode::One => {
                let first = outputs.next().ok_or(TransformError::OutputCount(0))?;
                let first = first.map_err(jq_error)?;
                if outputs.next().is_some() {
                    return Err(TransformError::OutputCount(2 + outputs.count()));
                }
                from_val(&first)
            }
            OutputMode::Collect => outputs
                .map(|v| from_val(&v.map_err(jq_error)?))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
        }
    }
}

/// What [`Transform::run_to_doc`] made: a document when the direct evaluator ran, a
/// [`Value`] when jaq did.
#[derive(Debug)]
pub enum Output<'a> {
    Doc(Doc<'a>),
    Value(Value),
}

/// A document to transform, as the caller read it.
#[derive(Clone, Copy)]
enum Input<'a> {
    Value(&'a Value),
    Doc(DocRef<'a, 'a>),
}

/// What a direct run's end means for the caller: its answer, a timeout, or `None` to run
/// jaq instead.
fn answered<T>(
    run: Result<T, direct::Stop>,
    timeout: Duration,
) -> Option<Result<T, TransformError>> {
    match run {
        Ok(answer) => Some(Ok(answer)),
        Err(direct::Stop::Timeout) => Some(Err(TransformError::Timeout(timeout))),
        Err(direct::Stop::Fallback) => None,
    }
}

fn compile_filter(code: &str) -> Result<Filter, CompileError> {
    let (defs, funs) = (jqval::prelude_defs(), jqval::prelude_funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(&arena, File { code, path: () })
        .map_err(|errs| load_error(code, errs))?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| undefined_error(code, errs))
}

fn load_error(code: &str, errs: load::Errors<&str, ()>) -> CompileError {
    let (at, message) = match errs.into_iter().next().map(|(_, e)| e) {
        Some(load::Error::Lex(es)) => es
            .first()
            .map(|(expect, at)| (*at, lex_expect(expect)))
            .unwrap_or((code, "invalid program".into())),
        Some(load::Error::Parse(es)) => es
            .first()
            .map(|(expect, at)| (*at, parse_expect(expect, at)))
            .unwrap_or((code, "invalid program".into())),
        Some(load::Error::Io(es)) => es
            .first()
            .map(|(at, msg)| (*at, format!("cannot load module: {msg}")))
            .unwrap_or((code, "cannot load module".into())),
        None => (code, "invalid program".into()),
    };
    located(code, at, message)
}

fn lex_expect(expect: &lex::Expect<&str>) -> String {
    format!("expected {}", expect.as_str())
}

fn parse_expect(expect: &parse::Expect<&str>, at: &str) -> String {
    let found = at.split_whitespace().next().unwrap_or("end of program");
    format!("expected {}, found {found:?}", expect.as_str())
}

fn undefined_error(code: &str, errs: compile::Errors<&str, ()>) -> CompileError {
    let first = errs.into_iter().flat_map(|(_, es)| es).next();
    match first {
        Some((name, undefined)) => {
            let mut message = format!("undefined {} {name}", undefined.as_str());
            if let compile::Undefined::Filter(arity) = undefined {
                let _ = write!(message, "/{arity}");
            }
            located(code, name, message)
        }
        None => located(code, code, "program does not compile".into()),
    }
}

/// Locates `at`, a slice of `code` as jaq reports it, as a line and column.
fn located(code: &str, at: &str, message: String) -> CompileError {
    let offset = (at.as_ptr() as usize)
        .checked_sub(code.as_ptr() as usize)
        .filter(|o| *o <= code.len())
        .unwrap_or(0);
    let before = &code[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    CompileError {
        message,
        line,
        column,
    }
}

fn jq_error(e: jaq_core::Error<Val>) -> TransformError {
    TransformError::Jq(e.to_string())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Converts a document to a jq value, keeping every number's literal text.
pub fn to_val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => Val::Num(Num::from_literal(n.as_str())),
        Value::String(s) => Val::utf8_str(s.clone().into_bytes()),
        Value::Array(a) => a.iter().map(to_val).collect(),
        Value::Object(o) => Val::obj(
            o.iter()
                .map(|(k, v)| (Val::utf8_str(k.clone().into_bytes()), to_val(v)))
                .collect(),
        ),
    }
}

/// Converts a jq value back to a document; fails on what JSON cannot hold.
pub fn from_val(v: &Val) -> Result<Value, TransformError> {
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => Value::Number(number(n)?),
        Val::TStr(s) | Val::BStr(s) => Value::String(String::from_utf8_lossy(s).into_owned()),
        Val::Arr(a) => Value::Array(a.iter().map(from_val).collect::<Result<_, _>>()?),
        Val::Obj(o) => {
            let mut map = Map::with_capacity(o.len());
            for (k, v) in o.iter() {
                let key = match k {
                    Val::TStr(s) | Val::BStr(s) => String::from_utf8_lossy(s).into_owned(),
                    other => {
                        return Err(TransformError::NotJson(format!(
                            "object key {other} is not a string"
                        )));
                    }
                };
                map.insert(key, from_val(v)?);
            }
            Value::Object(map)
        }
    })
}

fn number(n: &Num) -> Result<Number, TransformError> {
    match n {
        Num::Int(i) => Ok(Number::from(*i as i64)),
        Num::Float(f) if !f.is_finite() => {
            Err(TransformError::NotJson(format!("{n} is not a JSON number")))
        }
        // `Display` writes JSON number text for every other kind: the literal a decimal was
        // read from, digits for big integers, `jqval`'s own formatting for computed decimals
        // and ryu's for floats. `from_string_unchecked` keeps that spelling (serde_json's
        // `FromStr` would rewrite `1e400` as `1e+400`); see `parse.rs` for why it is used.
        other => Ok(Number::from_string_unchecked(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: &str, input: &str) -> Result<String, TransformError> {
        let t = Transform::compile(code, OutputMode::One).unwrap();
        let input = crate::parse_document(input.as_bytes(), &crate::Limits::default()).unwrap();
        t.run(&input, Duration::from_secs(1))
            .map(|v| serde_json::to_string(&v).unwrap())
    }

    #[test]
    fn decimal_arithmetic_is_exact() {
        assert_eq!(run("0.1 + 0.2", "null").unwrap(), "0.3");
        assert_eq!(run("0.1 + 0.2 == 0.3", "null").unwrap(), "true");
        assert_eq!(run("3.3 * 1.1", "null").unwrap(), "3.63");
        assert_eq!(
            run(".a * .b", r#"{"a":2500000.00,"b":1.08734}"#).unwrap(),
            "2718350.0000000"
        );
        assert_eq!(
            run(". + 1", "9007199254740992").unwrap(),
            "9007199254740993"
        );
        assert_eq!(
            run("1.000000000000000000001 - 1", "null").unwrap(),
            "0.000000000000000000001"
        );
        assert_eq!(
            run("[.[] | . * 2]", "[1.5, 0.25, -0.1]").unwrap(),
            "[3.0,0.50,-0.2]"
        );
    }

    #[test]
    fn numbers_pass_through_byte_for_byte() {
        let doc = r#"[12345678901234567890,9007199254740993,0.1,1.000000000000000000001,1234567890123456789012345678901234567890,1e400,2718350.0000000,-0]"#;
        assert_eq!(run(".", doc).unwrap(), doc);
        assert_eq!(run("map(.)", doc).unwrap(), doc);
    }

    #[test]
    fn division_is_exact_or_rounded_to_34_digits() {
        assert_eq!(run("1 / 4", "null").unwrap(), "0.25");
        assert_eq!(run("6 / 3", "null").unwrap(), "2");
        assert_eq!(
            run("1 / 3", "null").unwrap(),
            "0.3333333333333333333333333333333333"
        );
        assert_eq!(
            run("2 / 3", "null").unwrap(),
            "0.6666666666666666666666666666666667"
        );
        assert_eq!(
            run("-2 / 3", "null").unwrap(),
            "-0.6666666666666666666666666666666667"
        );
        assert!(matches!(run("1 / 0", "null"), Err(TransformError::Jq(_))));
        assert!(matches!(
            run("1.5 / 0.0", "null"),
            Err(TransformError::Jq(_))
        ));
    }

    #[test]
    fn comparisons_are_exact() {
        assert_eq!(run("0.30000000000000001 > 0.3", "null").unwrap(), "true");
        assert_eq!(
            run("100000000000000000001 > 100000000000000000000", "null").unwrap(),
            "true"
        );
        assert_eq!(run("1.0 == 1", "null").unwrap(), "true");
        assert_eq!(run("[1.10, 1.1, 1] | unique", "null").unwrap(), "[1,1.10]");
        assert_eq!(
            run("[3, 0.5, 12345678901234567890, -1e400] | sort", "null").unwrap(),
            "[-1e400,0.5,3,12345678901234567890]"
        );
        assert_eq!(run("{\"a\":1.0} == {\"a\":1}", "null").unwrap(), "true");
    }

    #[test]
    fn rounding_helpers() {
        assert_eq!(run("2.345 | round_to(2)", "null").unwrap(), "2.34");
        assert_eq!(
            run("2.345 | round_to(2; \"half_up\")", "null").unwrap(),
            "2.35"
        );
        assert_eq!(run("1.5 | round_to(2)", "null").unwrap(), "1.50");
        assert_eq!(run("-2.5 | round", "null").unwrap(), "-3");
        assert_eq!(
            run("12345678901234567890.5 | floor", "null").unwrap(),
            "12345678901234567890"
        );
        assert_eq!(run("2.1 | ceil", "null").unwrap(), "3");
        assert!(
            run("1 | round_to(2; \"sideways\")", "null")
                .unwrap_err()
                .to_string()
                .contains("half_even")
        );
    }

    #[test]
    fn tonumber_keeps_digits() {
        assert_eq!(
            run("\"2500000.00\" | tonumber", "null").unwrap(),
            "2500000.00"
        );
        assert_eq!(
            run("\"12345678901234567890\" | tonumber", "null").unwrap(),
            "12345678901234567890"
        );
    }

    #[test]
    fn hostile_exponents_fail_instead_of_allocating() {
        let err = run("1e-100000 + 1", "null").unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        assert_eq!(
            run("1e400 * 2", "null")
                .unwrap()
                .to_ascii_lowercase()
                .replace("e+", "e"),
            "2e400"
        );
    }

    /// Found by the direct evaluator's generated tests: `"s" * n` allocated `n` copies up front,
    /// and a large `n` aborted the whole process on a failed allocation.
    #[test]
    fn string_repetition_fails_instead_of_aborting() {
        assert_eq!(
            run(r#"["ab" * 3, 2 * "c", "x" * 0]"#, "null").unwrap(),
            r#"["ababab","cc",null]"#
        );
        for program in [
            r#""<x>" * 9007199254740993"#,
            r#""x" * 100000000"#,
            r#". * "x""#,
        ] {
            let err = run(program, "9007199254740993").unwrap_err();
            assert!(
                err.to_string().contains("string repetition too long"),
                "{program}: {err}"
            );
        }
    }

    #[test]
    fn object_addition_keeps_jq_order_and_right_values() {
        assert_eq!(
            run("{a:1,b:2} + {b:3,c:4}", "null").unwrap(),
            r#"{"a":1,"b":3,"c":4}"#
        );
        assert_eq!(
            run("{b:3,c:4,d:5} + {a:1,c:2}", "null").unwrap(),
            r#"{"b":3,"c":2,"d":5,"a":1}"#
        );
        assert_eq!(
            run("{x:1} + {y:2,x:3,z:4}", "null").unwrap(),
            r#"{"x":3,"y":2,"z":4}"#
        );
        assert_eq!(
            run(". as $o | {k:1} + $o | [., $o]", r#"{"a":1,"k":2}"#).unwrap(),
            r#"[{"k":2,"a":1},{"a":1,"k":2}]"#
        );
        assert_eq!(
            run("{id: .a, book: .b, n: 1}", r#"{"a":"x","b":"y"}"#).unwrap(),
            r#"{"id":"x","book":"y","n":1}"#
        );
    }

    #[test]
    fn output_rule() {
        let err = run(".[]", "[1,2,3]").unwrap_err();
        assert_eq!(err, TransformError::OutputCount(3));
        assert_eq!(
            run("empty", "null").unwrap_err(),
            TransformError::OutputCount(0)
        );
        let t = Transform::compile(".[]", OutputMode::Collect).unwrap();
        let v = t
            .run(
                &serde_json::from_str("[1,2]").unwrap(),
                Duration::from_secs(1),
            )
            .unwrap();
        assert_eq!(v.to_string(), "[1,2]");
    }

    #[test]
    fn jq_errors_carry_the_message() {
        let err = run("error(\"bad trade\")", "null").unwrap_err();
        assert!(err.to_string().contains("bad trade"), "{err}");
        assert!(matches!(
            run("nan", "null"),
            Err(TransformError::NotJson(_))
        ));
    }

    #[test]
    fn compile_errors_carry_the_location() {
        let err = Transform::compile(".a |\n  .b | (", OutputMode::One).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        let err = Transform::compile(".a | nosuchfn(1)", OutputMode::One).unwrap_err();
        assert!(err.message.contains("nosuchfn"), "{err}");
        assert_eq!((err.line, err.column), (1, 6));
        assert!(Transform::compile("import \"x\" as x; .", OutputMode::One).is_err());
    }

    #[test]
    fn runaway_programs_stop_and_the_thread_keeps_serving() {
        let limit = Duration::from_millis(200);
        for code in [
            "last(range(1e15))",
            "until(false; .)",
            "[limit(1e12; repeat(1))] | length",
            "reduce range(1e15) as $i (0; . + $i)",
            "def f: [f]; f",
            "def f: f + 1; f",
        ] {
            let t = Transform::compile(code, OutputMode::One).unwrap();
            let err = t.run(&Value::Null, limit).unwrap_err();
            assert!(
                matches!(err, TransformError::Timeout(_) | TransformError::TooDeep),
                "{code}: {err}"
            );
        }
        assert_eq!(run("1 + 1", "null").unwrap(), "2");
    }
}
