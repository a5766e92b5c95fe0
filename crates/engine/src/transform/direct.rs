//! A direct evaluator for the plain part of jq that document transforms are mostly made of,
//! run in place of jaq when a program stays inside it.
//!
//! Why it exists: jaq evaluates every term as a boxed iterator over its own value type, so a
//! transform first converts the whole document to `jqval::Val`, then allocates about a
//! thousand times for one 700-byte trade, then converts the result back (see
//! `docs/benchmarks.md`, "Where the time goes"). Reshaping a document (paths, object and array
//! construction, `//`, `as` bindings, arithmetic, a few builtins) needs none of that. This
//! module walks jaq's own parse tree (`jaq_core::load::parse::Term`, so the grammar is jaq's)
//! over the engine's `Value`, borrowing from the input instead of copying it. No crate offers
//! this: jaq has no evaluator over borrowed `serde_json` values, and the other jq
//! implementations in Rust are either jaq or bindings to C jq with float numbers.
//!
//! Correctness rests on three rules:
//! - **jaq stays the reference.** [`Program::compile`] accepts only terms listed in [`Node`];
//!   anything else (definitions, `reduce`, `try`, `@format` strings, assignment, other
//!   builtins, ...) leaves the whole program to jaq.
//! - **Only successes are answered here.** Whenever a run meets an error, or a case this module
//!   does not reproduce exactly, it returns [`Stop::Fallback`] and the caller runs jaq on the
//!   same document from the start. Programs have no side effects, so the rerun is safe, and every
//!   error a client sees is jaq's, with jaq's message.
//! - **Values are jaq's where they are computed.** Arithmetic, comparison, ordering, string
//!   conversion and number parsing go through `jqval` (the same `Val` operations jaq calls), so a
//!   number computed here has the digits jaq would give it. The differential tests of this
//!   module run every supported construct through both evaluators.
//!
//! A run counts its steps and reads the clock every [`CLOCK_EVERY`] of them, so a program that
//! multiplies its outputs (`[.[] as $a | .[] as $b | .[] | [$a, $b]]`) still ends at the
//! caller's deadline.

use std::borrow::Cow;
use std::time::Instant;

use jaq_core::ValT;
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Pattern, Term};
use jaq_core::ops::{Cmp, Math};
use jaq_core::path::{Opt, Part};
use jqval::Val;
use serde_json::{Map, Number};

use super::{from_val, to_val};
use crate::Value;
use crate::doc::{Builder, Doc, DocRef, Guess, Hints, Kind};

/// How deeply a program's terms may nest before it is left to jaq (the evaluator recurses on
/// the program, never on the data).
const MAX_DEPTH: usize = 64;
/// How often (in steps, a power of two) a run reads the clock.
const CLOCK_EVERY: u32 = 1024;

static NULL: Value = Value::Null;

/// A program this module can run, compiled from jaq's parse tree.
#[derive(Debug)]
pub(crate) struct Program {
    root: Node,
}

/// Why a run did not produce its outputs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Something this module leaves to jaq; run jaq on the same input.
    Fallback,
    /// The deadline passed.
    Timeout,
}

/// The terms the evaluator runs. Each mirrors what jaq compiles the same syntax to.
#[derive(Debug)]
enum Node {
    /// `.`
    Id,
    /// A literal, or `null`, `true`, `false`: computed once at compile time.
    Const(Value),
    /// `[f]`, or `[]` when `None`.
    Arr(Option<Box<Node>>),
    /// `{k: f, ...}` with constant keys, each once; each value must yield exactly one output.
    Obj(Vec<(String, Node)>),
    /// `-f`
    Neg(Box<Node>),
    /// `l | r`, or `l as $x | r`.
    Pipe(Box<Node>, Option<String>, Box<Node>),
    /// `l, r`
    Comma(Box<Node>, Box<Node>),
    /// `l // r`
    Alt(Box<Node>, Box<Node>),
    /// `l and r` (`stop` false) or `l or r` (`stop` true).
    Logic(Box<Node>, bool, Box<Node>),
    /// `l + r`, ...
    Math(Box<Node>, Math, Box<Node>),
    /// `l == r`, ...
    Cmp(Box<Node>, Cmp, Box<Node>),
    /// `if c then t else e end`
    If(Box<Node>, Box<Node>, Box<Node>),
    /// `$x`
    Var(String),
    /// `f.a[0][]?`
    Path(Box<Node>, Vec<(Step, Opt)>),
    /// `empty`
    Empty,
    /// `"a\(f)b"`: the pieces joined, each term's single output written by `tostring`.
    Interp(Vec<Piece>),
    /// A builtin of no arguments.
    Builtin(Builtin),
    /// A builtin of one argument whose single output it takes (`has(k)`, `startswith(s)`).
    Builtin1(Builtin1, Box<Node>),
    /// A term that yields at most one output whatever its input (see [`yields_at_most_one`]),
    /// marked at compile time so that [`Run::at_most_one`] evaluates it without collecting
    /// outputs into lists. Every such term is marked, except those `Run::single` answers.
    One(Box<Node>),
}

/// A piece of an interpolated string.
#[derive(Debug)]
enum Piece {
    Text(String),
    Term(Node),
}

/// One part of a path.
#[derive(Debug)]
enum Step {
    /// `.a`, `."a"`, `.["a"]`, and the member where this step found its key last.
    Key(String, Guess),
    /// `.[0]`, `.[-1]` (an integer literal; negative counts from the end)
    Index(isize),
    /// `.[]`
    Iter,
}

#[derive(Debug, Clone, Copy)]
enum Builtin {
    Not,
    Length,
    AsciiUpcase,
    AsciiDowncase,
    ToNumber,
    ToString,
    Sort,
    Add,
    Type,
    Keys,
    ToJson,
}

#[derive(Debug, Clone, Copy)]
enum Builtin1 {
    Has,
    StartsWith,
    EndsWith,
    LtrimStr,
    RtrimStr,
}

impl Program {
    /// Compiles `code` if every term of it is one this module runs; `None` leaves it to jaq.
    /// `code` must already compile with jaq (the caller compiles it there first).
    pub(crate) fn compile(code: &str) -> Option<Self> {
        let term = jaq_core::load::parse(code, |p| p.term())?;
        let mut scope = Vec::new();
        let root = node(&term, &mut scope, 0)?;
        Some(Self { root })
    }

    /// Runs the program on `input`; the outputs in jaq's order.
    pub(crate) fn run<'a>(
        &'a self,
        input: &'a Value,
        deadline: Instant,
    ) -> Result<Outputs<'a>, Stop> {
        self.run_on(V::Ref(input), deadline)
    }

    /// Runs the program on a document read as a [`Doc`], reading it in place.
    pub(crate) fn run_doc<'a>(
        &'a self,
        input: DocRef<'a, 'a>,
        deadline: Instant,
    ) -> Result<Outputs<'a>, Stop> {
        self.run_on(V::Doc(input), deadline)
    }

    fn run_on<'a>(&'a self, input: V<'a>, deadline: Instant) -> Result<Outputs<'a>, Stop> {
        let mut run = Run::new(deadline);
        let mut out = Vec::with_capacity(1);
        run.eval(&self.root, &input, &mut out)?;
        Ok(Outputs(out))
    }

    /// Whether the program yields at most one output on any input, so that
    /// [`Program::run_doc_one`] can write its output as it is computed.
    pub(crate) fn yields_at_most_one(&self) -> bool {
        matches!(self.root, Node::One(_)) || answered_alone(&self.root)
    }

    /// The single output of a program that [yields at most one](Program::yields_at_most_one),
    /// written into a document as it is computed: an object's members go into the document
    /// one by one rather than into a list first. No output is [`Stop::Fallback`], as jaq
    /// reports the count. The terms are evaluated in the order [`Program::run_doc`] evaluates
    /// them, so a run that stops part-way stops where that one would.
    pub(crate) fn run_doc_one<'a>(
        &'a self,
        input: DocRef<'a, 'a>,
        deadline: Instant,
    ) -> Result<Doc<'a>, Stop> {
        let mut run = Run::new(deadline);
        // Room for a typical result, as in `Outputs::into_doc`.
        let mut builder = Builder::with_capacity(64);
        if run.write(&self.root, &V::Doc(input), &mut builder)? {
            Ok(builder.finish())
        } else {
            Err(Stop::Fallback)
        }
    }
}

/// A run's outputs, in jaq's order, still borrowing from the input and the program.
#[derive(Debug)]
pub(crate) struct Outputs<'a>(Vec<V<'a>>);

impl<'a> Outputs<'a> {
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn into_values(self) -> Vec<Value> {
        self.0.into_iter().map(V::into_value).collect()
    }

    /// The outputs as one document: the first alone, or all of them as an array when
    /// `collect`. No [`Value`] is built: text is borrowed where it can be and moved where it
    /// was computed (a computed `Value`'s numbers and an escaped string of the input are
    /// copied).
    pub(crate) fn into_doc(mut self, collect: bool) -> Doc<'a> {
        // Room for a typical result; a larger one grows (counting the nodes first cost more
        // than the growth saves).
        let mut builder = Builder::with_capacity(64);
        if collect {
            builder.array(self.0, |b, v| v.build(b));
        } else if !self.0.is_empty() {
            self.0.swap_remove(0).build(&mut builder);
        }
        builder.finish()
    }
}

/// Translates one parse term, or `None` if any part of it is not supported.
fn node(t: &Term<&str>, scope: &mut Vec<String>, depth: usize) -> Option<Node> {
    if depth > MAX_DEPTH {
        return None;
    }
    let sub = |t: &Term<&str>, scope: &mut Vec<String>| node(t, scope, depth + 1).map(Box::new);
    Some(marked(match t {
        Term::Id => Node::Id,
        Term::Num(n) => Node::Const(literal_number(n)?),
        Term::Str(None, parts) => match literal_string(parts) {
            Some(s) => Node::Const(Value::String(s)),
            None => Node::Interp(
                parts
                    .iter()
                    .map(|part| match part {
                        StrPart::Str(text) => Some(Piece::Text((*text).to_owned())),
                        StrPart::Char(c) => Some(Piece::Text(c.to_string())),
                        StrPart::Term(t) => Some(Piece::Term(*sub(t, scope)?)),
                    })
                    .collect::<Option<_>>()?,
            ),
        },
        Term::Arr(None) => Node::Arr(None),
        Term::Arr(Some(f)) => Node::Arr(Some(sub(f, scope)?)),
        Term::Obj(entries) => {
            let mut fields = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let field = match (k, v) {
                    // `{$x}` is `{x: $x}`
                    (Term::Var(x), None) => {
                        let name = x.strip_prefix('$')?;
                        (name.to_owned(), *sub(k, scope)?)
                    }
                    (Term::Str(None, parts), v) => {
                        let key = literal_string(parts)?;
                        let value = match v {
                            Some(v) => *sub(v, scope)?,
                            // `{a}` is `{a: .a}`
                            None => Node::Path(
                                Box::new(Node::Id),
                                vec![(Step::Key(key.clone(), Guess::default()), Opt::Essential)],
                            ),
                        };
                        (key, value)
                    }
                    _ => return None,
                };
                // A repeated key keeps its first place and its last value: left to jaq, so
                // that a built object (`V::Obj`) has each key once.
                if fields.iter().any(|(k, _)| *k == field.0) {
                    return None;
                }
                fields.push(field);
            }
            Node::Obj(fields)
        }
        Term::Neg(f) => Node::Neg(sub(f, scope)?),
        Term::BinOp(l, op, r) => {
            let l = sub(l, scope)?;
            match op {
                BinaryOp::Pipe(None) => Node::Pipe(l, None, sub(r, scope)?),
                BinaryOp::Pipe(Some(Pattern::Var(x))) => {
                    scope.push((*x).to_owned());
                    let r = sub(r, scope);
                    scope.pop();
                    Node::Pipe(l, Some((*x).to_owned()), r?)
                }
                BinaryOp::Comma => Node::Comma(l, sub(r, scope)?),
                BinaryOp::Alt => Node::Alt(l, sub(r, scope)?),
                BinaryOp::Or => Node::Logic(l, true, sub(r, scope)?),
                BinaryOp::And => Node::Logic(l, false, sub(r, scope)?),
                BinaryOp::Math(op) => Node::Math(l, *op, sub(r, scope)?),
                BinaryOp::Cmp(op) => Node::Cmp(l, *op, sub(r, scope)?),
                _ => return None,
            }
        }
        Term::IfThenElse(branches, otherwise) => {
            let mut rest = match otherwise {
                Some(e) => *sub(e, scope)?,
                None => Node::Id,
            };
            for (cond, then) in branches.iter().rev() {
                rest = marked(Node::If(
                    sub(cond, scope)?,
                    sub(then, scope)?,
                    Box::new(rest),
                ));
            }
            rest
        }
        Term::Var(x) if scope.iter().any(|s| s == x) => Node::Var((*x).to_owned()),
        Term::Path(head, path) => {
            let head = sub(head, scope)?;
            let steps = path
                .0
                .iter()
                .map(|(part, opt)| Some((step(part)?, *opt)))
                .collect::<Option<Vec<_>>>()?;
            Node::Path(head, steps)
        }
        Term::Call(name, args) => call(name, args, scope, depth)?,
        _ => return None,
    }))
}

/// `node` as a [`Node::One`] if it yields at most one output and `Run::single` does not answer
/// it already. Its children must be marked already.
fn marked(node: Node) -> Node {
    if !answered_by_single(&node) && yields_at_most_one(&node) {
        Node::One(Box::new(node))
    } else {
        node
    }
}

/// The terms never marked: `Run::single` evaluates them itself (paths only when they yield at
/// most one output), and `empty` has no list to save.
fn answered_by_single(node: &Node) -> bool {
    matches!(
        node,
        Node::Id | Node::Const(_) | Node::Var(_) | Node::Empty | Node::Path(..) | Node::One(_)
    )
}

/// Whether `node` yields at most one output on any input, given that its children are
/// [`marked`]. Arrays, builtins and `empty` always do; the other terms do when each of their
/// parts does; `,` and `[]` do not.
fn yields_at_most_one(node: &Node) -> bool {
    let one = |n: &Node| match n {
        Node::One(_) => true,
        n => answered_by_single(n) && yields_at_most_one(n),
    };
    match node {
        Node::Id
        | Node::Const(_)
        | Node::Var(_)
        | Node::Empty
        | Node::Arr(_)
        | Node::Builtin(_)
        | Node::One(_) => true,
        Node::Path(head, steps) => one(head) && steps.iter().all(|(s, _)| !matches!(s, Step::Iter)),
        Node::Obj(fields) => fields.iter().all(|(_, f)| one(f)),
        Node::Neg(f) | Node::Builtin1(_, f) => one(f),
        Node::Pipe(l, _, r)
        | Node::Alt(l, r)
        | Node::Logic(l, _, r)
        | Node::Math(l, _, r)
        | Node::Cmp(l, _, r) => one(l) && one(r),
        Node::If(c, t, e) => one(c) && one(t) && one(e),
        Node::Interp(pieces) => pieces.iter().all(|p| match p {
            Piece::Text(_) => true,
            Piece::Term(f) => one(f),
        }),
        Node::Comma(..) => false,
    }
}

/// The builtins of jq's prelude this module reproduces, by name and arity. Programs cannot
/// redefine them here: a program with a `def` is left to jaq.
fn call(name: &str, args: &[Term<&str>], scope: &mut Vec<String>, depth: usize) -> Option<Node> {
    let builtin = |b| Some(Node::Builtin(b));
    match (name, args) {
        ("empty", []) => Some(Node::Empty),
        ("null", []) => Some(Node::Const(Value::Null)),
        ("true", []) => Some(Node::Const(Value::Bool(true))),
        ("false", []) => Some(Node::Const(Value::Bool(false))),
        ("not", []) => builtin(Builtin::Not),
        ("length", []) => builtin(Builtin::Length),
        ("ascii_upcase", []) => builtin(Builtin::AsciiUpcase),
        ("ascii_downcase", []) => builtin(Builtin::AsciiDowncase),
        ("tonumber", []) => builtin(Builtin::ToNumber),
        ("tostring", []) => builtin(Builtin::ToString),
        ("sort", []) => builtin(Builtin::Sort),
        ("add", []) => builtin(Builtin::Add),
        ("type", []) => builtin(Builtin::Type),
        ("keys", []) => builtin(Builtin::Keys),
        ("tojson", []) => builtin(Builtin::ToJson),
        ("has" | "startswith" | "endswith" | "ltrimstr" | "rtrimstr", [arg]) => {
            let b = match name {
                "has" => Builtin1::Has,
                "startswith" => Builtin1::StartsWith,
                "endswith" => Builtin1::EndsWith,
                "ltrimstr" => Builtin1::LtrimStr,
                _ => Builtin1::RtrimStr,
            };
            Some(Node::Builtin1(b, Box::new(node(arg, scope, depth + 1)?)))
        }
        // jq's definitions: `def map(f): [.[] | f];`, `def select(f): if f then . else empty end;`
        ("map", [f]) => {
            let f = node(f, scope, depth + 1)?;
            let each = Node::Path(Box::new(Node::Id), vec![(Step::Iter, Opt::Essential)]);
            Some(Node::Arr(Some(Box::new(Node::Pipe(
                Box::new(each),
                None,
                Box::new(f),
            )))))
        }
        ("select", [f]) => Some(Node::If(
            Box::new(node(f, scope, depth + 1)?),
            Box::new(Node::Id),
            Box::new(Node::Empty),
        )),
        _ => None,
    }
}

fn step(part: &Part<Term<&str>>) -> Option<Step> {
    match part {
        Part::Index(Term::Str(None, parts)) => {
            Some(Step::Key(literal_string(parts)?, Guess::default()))
        }
        // jaq compiles integer literals to `isize`; anything else is left to it.
        Part::Index(Term::Num(n)) => n.parse::<isize>().ok().map(Step::Index),
        Part::Index(Term::Neg(t)) => match &**t {
            Term::Num(n) => n.parse::<isize>().ok().map(|i| Step::Index(-i)),
            _ => None,
        },
        Part::Range(None, None) => Some(Step::Iter),
        _ => None,
    }
}

/// A number literal as jaq makes it: an integer if it fits `isize`, else jqval's decimal.
fn literal_number(n: &str) -> Option<Value> {
    let v = match n.parse::<isize>() {
        Ok(i) => Val::from(i),
        Err(_) => Val::from_num(n).ok()?,
    };
    from_val(&v).ok()
}

/// A string literal without interpolation or format.
fn literal_string(parts: &[StrPart<&str, Term<&str>>]) -> Option<String> {
    let mut s = String::new();
    for part in parts {
        match part {
            StrPart::Str(text) => s.push_str(text),
            StrPart::Char(c) => s.push(*c),
            StrPart::Term(_) => return None,
        }
    }
    Some(s)
}

/// A value during a run: borrowed from the input (a `Value` or a `Doc`) or the program, or
/// computed. Arrays and objects the program builds hold their parts as they are (an object's
/// keys are the program's), so nothing is copied or hashed until a builtin needs a `Value` or
/// the run's outputs are made into a document.
///
/// A `V` is moved through every step of a run, so its size matters: a computed `Value` is
/// boxed (a `Value` is 72 bytes, a `V` 32).
#[derive(Debug, Clone)]
enum V<'a> {
    Ref(&'a Value),
    Doc(DocRef<'a, 'a>),
    Owned(Box<Value>),
    Bool(bool),
    /// A number as JSON number text: computed on its text, or the text of a string of the
    /// input or the program that `tonumber` read (borrowed, so copying it copies no text).
    Num(Cow<'a, str>),
    /// `[...]`
    Arr(Vec<V<'a>>),
    /// `{...}`, each key once (the compiler leaves objects that repeat a key to jaq).
    Obj(Vec<(&'a str, V<'a>)>),
}

impl<'a> V<'a> {
    fn owned(v: Value) -> Self {
        V::Owned(Box::new(v))
    }

    /// The value as a `Value`: borrowed where it is one, else converted.
    fn value(&self) -> Cow<'_, Value> {
        match self {
            V::Ref(v) => Cow::Borrowed(v),
            V::Owned(v) => Cow::Borrowed(v),
            _ => Cow::Owned(self.clone().into_value()),
        }
    }

    fn into_value(self) -> Value {
        match self {
            V::Ref(v) => v.clone(),
            V::Owned(v) => *v,
            V::Bool(b) => Value::Bool(b),
            V::Doc(d) => d.to_value(),
            V::Num(text) => Value::Number(Number::from_string_unchecked(text.into_owned())),
            V::Arr(items) => Value::Array(items.into_iter().map(V::into_value).collect()),
            V::Obj(members) => {
                let mut map = Map::with_capacity(members.len());
                for (key, value) in members {
                    map.insert(key.to_owned(), value.into_value());
                }
                Value::Object(map)
            }
        }
    }

    /// Writes the value into a document being built.
    fn build(self, builder: &mut Builder<'a>) {
        match self {
            V::Ref(v) => builder.borrowed(v),
            V::Doc(d) => builder.copy(d),
            V::Owned(v) => builder.owned(*v),
            V::Bool(b) => builder.bool(b),
            V::Num(text) => builder.number(text),
            V::Arr(items) => builder.array(items, |b, item| item.build(b)),
            V::Obj(members) => builder.object(members, |b, value| value.build(b)),
        }
    }

    /// jq's truth: everything but `null` and `false`.
    fn truthy(&self) -> bool {
        match self {
            V::Doc(d) => d.kind() != Kind::Null && d.as_bool() != Some(false),
            V::Ref(v) => truthy(v),
            V::Owned(v) => truthy(v),
            V::Bool(b) => *b,
            V::Num(_) | V::Arr(_) | V::Obj(_) => true,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            V::Doc(d) => d.kind(),
            V::Ref(v) => kind_of(v),
            V::Owned(v) => kind_of(v),
            V::Bool(_) => Kind::Bool,
            V::Num(_) => Kind::Number,
            V::Arr(_) => Kind::Array,
            V::Obj(_) => Kind::Object,
        }
    }

    /// A string's text, if this is a string.
    fn as_str(&self) -> Option<&str> {
        match self {
            V::Doc(d) => d.as_str(),
            V::Ref(v) => v.as_str(),
            V::Owned(v) => v.as_str(),
            _ => None,
        }
    }

    /// A number's text, if this is a number.
    fn number_text(&self) -> Option<&str> {
        match self {
            V::Doc(d) => d.number_text(),
            V::Ref(Value::Number(n)) => Some(n.as_str()),
            V::Owned(v) => v.as_number().map(Number::as_str),
            V::Num(text) => Some(text),
            _ => None,
        }
    }
}

/// See [`Run::operand`].
enum Operand<'a> {
    /// The index of a binding in [`Run::vars`].
    Bound(usize),
    Value(Option<V<'a>>),
}

struct Run<'a> {
    vars: Vec<(&'a str, V<'a>)>,
    steps: u32,
    deadline: Instant,
    /// Where member lookups in the input left off.
    hints: Hints,
}

impl<'a> Run<'a> {
    fn new(deadline: Instant) -> Self {
        Run {
            vars: Vec::new(),
            steps: 0,
            deadline,
            hints: Hints::default(),
        }
    }

    /// Writes the output of `node`, a term that yields at most one, into `builder`; `false`
    /// when it yields none. Objects are written member by member, each member's term
    /// evaluated as [`Run::object_of_one`] evaluates it; bindings and pipes whose right side makes
    /// the output are followed; any other term is evaluated by [`Run::at_most_one`] and then
    /// written.
    fn write(
        &mut self,
        node: &'a Node,
        input: &V<'a>,
        builder: &mut Builder<'a>,
    ) -> Result<bool, Stop> {
        let mut node = node;
        while let Node::One(inner) = node {
            node = inner;
        }
        match node {
            Node::Obj(fields) => {
                self.tick()?;
                builder.try_object(
                    fields.iter().map(|(key, f)| (key.as_str(), f)),
                    |builder, f| {
                        // A member that is itself a built object or a binding is written in
                        // place too; it must yield exactly one output, as `one` requires.
                        if matches!(f, Node::One(inner) if matches!(**inner, Node::Obj(_) | Node::Pipe(..)))
                        {
                            return match self.write(f, input, builder)? {
                                true => Ok(()),
                                false => Err(Stop::Fallback),
                            };
                        }
                        // Every member of an object written here yields at most one output
                        // (the object would not be marked otherwise), so `one` comes down to
                        // `at_most_one`; a member that did not would stop the run (left to
                        // jaq), never answer wrongly.
                        self.at_most_one(f, input)?
                            .ok_or(Stop::Fallback)?
                            .build(builder);
                        Ok(())
                    },
                )?;
                Ok(true)
            }
            Node::Pipe(l, None, r) => {
                self.tick()?;
                match self.at_most_one(l, input)? {
                    Some(y) => self.write(r, &y, builder),
                    None => Ok(false),
                }
            }
            Node::Pipe(l, Some(x), r) => {
                self.tick()?;
                match self.at_most_one(l, input)? {
                    Some(y) => {
                        self.vars.push((x, y));
                        let result = self.write(r, input, builder);
                        self.vars.pop();
                        result
                    }
                    None => Ok(false),
                }
            }
            node => Ok(match self.at_most_one(node, input)? {
                Some(v) => {
                    v.build(builder);
                    true
                }
                None => false,
            }),
        }
    }

    fn tick(&mut self) -> Result<(), Stop> {
        self.steps = self.steps.wrapping_add(1);
        if self.steps.is_multiple_of(CLOCK_EVERY) && Instant::now() >= self.deadline {
            return Err(Stop::Timeout);
        }
        Ok(())
    }

    /// Evaluates `node` on `input`, appending its outputs to `out`.
    fn eval(&mut self, node: &'a Node, input: &V<'a>, out: &mut Vec<V<'a>>) -> Result<(), Stop> {
        self.tick()?;
        if let Some(single) = self.single(node, input) {
            out.extend(single?);
            return Ok(());
        }
        match node {
            // `single` answered these above.
            Node::Id | Node::Const(_) | Node::Var(_) | Node::One(_) => {
                return Err(Stop::Fallback);
            }
            Node::Empty => {}
            Node::Arr(f) => out.push(self.array(f.as_deref(), input)?),
            Node::Obj(fields) => out.push(self.object(fields, input)?),
            Node::Neg(f) => {
                for x in self.all(f, input)? {
                    out.push(V::owned(computed(-to_val(&x.value()))?));
                }
            }
            Node::Pipe(l, None, r) => {
                for y in self.all(l, input)? {
                    self.eval(r, &y, out)?;
                }
            }
            Node::Pipe(l, Some(x), r) => {
                for y in self.all(l, input)? {
                    self.vars.push((x, y));
                    let result = self.eval(r, input, out);
                    self.vars.pop();
                    result?;
                }
            }
            Node::Comma(l, r) => {
                self.eval(l, input, out)?;
                self.eval(r, input, out)?;
            }
            Node::Alt(l, r) => {
                let before = out.len();
                for y in self.all(l, input)? {
                    if y.truthy() {
                        out.push(y);
                    }
                }
                if out.len() == before {
                    self.eval(r, input, out)?;
                }
            }
            Node::Logic(l, stop, r) => {
                for x in self.all(l, input)? {
                    if x.truthy() == *stop {
                        out.push(V::Bool(*stop));
                    } else {
                        for y in self.all(r, input)? {
                            out.push(V::Bool(y.truthy()));
                        }
                    }
                }
            }
            Node::Math(l, op, r) => {
                // jaq's order: for each output of `l`, every output of `r`.
                let ls = self.all(l, input)?;
                let rs = self.all(r, input)?;
                for x in &ls {
                    for y in &rs {
                        out.push(arith(*op, x, y)?);
                    }
                }
            }
            Node::Cmp(l, op, r) => {
                let ls = self.all(l, input)?;
                let rs = self.all(r, input)?;
                for x in &ls {
                    for y in &rs {
                        let holds = op.run(&to_val(&x.value()), &to_val(&y.value()));
                        out.push(V::Bool(holds));
                    }
                }
            }
            Node::If(cond, then, otherwise) => {
                for c in self.all(cond, input)? {
                    let branch = if c.truthy() { then } else { otherwise };
                    self.eval(branch, input, out)?;
                }
            }
            // Paths with `[]` (the others are `single`'s).
            Node::Path(head, steps) => match &**head {
                Node::Id => self.path(input.clone(), steps, out)?,
                head => {
                    for v in self.all(head, input)? {
                        self.path(v, steps, out)?;
                    }
                }
            },
            Node::Builtin(b) => out.push(builtin_on(*b, input)?),
            Node::Builtin1(b, arg) => {
                let arg = self.one(arg, input)?;
                out.push(V::owned(builtin1(*b, &input.value(), &arg.value())?));
            }
            Node::Interp(pieces) => out.push(V::owned(self.interp(pieces, input)?)),
        }
        Ok(())
    }

    /// The outputs of `steps` applied to `v`, in jq's order: each output of a step goes
    /// through the rest of the steps before the next one, so no step's outputs are collected
    /// (for a `[]` over an array of the input, not even the elements). Steps that yield one
    /// value are followed in a loop; only `[]` recurses, once per level of the data it
    /// iterates, so a long path does not deepen the stack.
    fn path(
        &mut self,
        mut v: V<'a>,
        mut steps: &'a [(Step, Opt)],
        out: &mut Vec<V<'a>>,
    ) -> Result<(), Stop> {
        loop {
            let Some(((step, opt), rest)) = steps.split_first() else {
                out.push(v);
                return Ok(());
            };
            self.tick()?;
            let applied = match (step, v) {
                (Step::Key(..) | Step::Index(_), value) if !rest.is_empty() => {
                    match index(step, value, &mut self.hints) {
                        Some(next) => {
                            (v, steps) = (next, rest);
                            continue;
                        }
                        None => false,
                    }
                }
                (Step::Iter, V::Doc(d)) if !rest.is_empty() && d.kind() == Kind::Array => {
                    for element in d.elements() {
                        self.path(V::Doc(element), rest, out)?;
                    }
                    true
                }
                (step, value) => {
                    let from = out.len();
                    let applied = apply(step, value, out, &mut self.hints);
                    if applied && !rest.is_empty() {
                        for next in out.split_off(from) {
                            self.path(next, rest, out)?;
                        }
                    }
                    applied
                }
            };
            if !applied && matches!(opt, Opt::Essential) {
                return Err(Stop::Fallback);
            }
            return Ok(());
        }
    }

    /// `[f]`, or `[]` when `f` is `None`.
    fn array(&mut self, f: Option<&'a Node>, input: &V<'a>) -> Result<V<'a>, Stop> {
        let mut items = Vec::new();
        if let Some(f) = f {
            self.eval(f, input, &mut items)?;
        }
        Ok(V::Arr(items))
    }

    /// `{k: f, ...}`, each value the single output of its term.
    fn object(&mut self, fields: &'a [(String, Node)], input: &V<'a>) -> Result<V<'a>, Stop> {
        let mut members = Vec::with_capacity(fields.len());
        for (key, f) in fields {
            members.push((key.as_str(), self.one(f, input)?));
        }
        Ok(V::Obj(members))
    }

    /// [`Run::object`] for a marked object, whose members each yield at most one output:
    /// each evaluated by [`Run::at_most_one`] (one with none stops the run, as in `object`;
    /// one with several, were it here, would stop it too, never answer wrongly).
    fn object_of_one(
        &mut self,
        fields: &'a [(String, Node)],
        input: &V<'a>,
    ) -> Result<V<'a>, Stop> {
        let mut members = Vec::with_capacity(fields.len());
        for (key, f) in fields {
            let v = self.at_most_one(f, input)?.ok_or(Stop::Fallback)?;
            members.push((key.as_str(), v));
        }
        Ok(V::Obj(members))
    }

    /// `"a\(f)b"`, each term's single output written by `tostring`.
    fn interp(&mut self, pieces: &'a [Piece], input: &V<'a>) -> Result<Value, Stop> {
        let mut s = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(text) => s.push_str(text),
                Piece::Term(f) => match builtin(Builtin::ToString, &self.one(f, input)?.value())? {
                    Value::String(text) => s.push_str(&text),
                    _ => return Err(Stop::Fallback),
                },
            }
        }
        Ok(Value::String(s))
    }

    /// The output of a term that yields at most one ([`Node::One`]), with jaq's semantics for
    /// that case, computed without collecting outputs. Each branch evaluates the same parts in
    /// the same order as the corresponding branch of `eval`, so errors (left to jaq) arise
    /// alike.
    ///
    /// It also answers the terms [`Run::single`] names, in the same match: one dispatch a term.
    fn at_most_one(&mut self, node: &'a Node, input: &V<'a>) -> Result<Option<V<'a>>, Stop> {
        self.tick()?;
        // A marked term is answered here as its inner term, without another call.
        let mut node = node;
        while let Node::One(inner) = node {
            node = inner;
        }
        let owned = |v: Value| Some(V::owned(v));
        Ok(match node {
            Node::Id => Some(input.clone()),
            Node::Const(c) => Some(V::Ref(c)),
            Node::One(_) => unreachable!("unwrapped above"),
            Node::Var(x) => match self.vars.iter().rev().find(|(name, _)| name == x) {
                Some((_, v)) => Some(v.clone()),
                None => return Err(Stop::Fallback),
            },
            // A path with `[]` is never marked (it may yield several); here `index` refuses
            // the step.
            Node::Path(head, steps) => {
                let mut steps = &steps[..];
                let mut v = match (&**head, input) {
                    // `.a.b` on the input document, the commonest path: members looked up
                    // on the `DocRef` itself, without a `V` made and dropped at each step.
                    (Node::Id, V::Doc(d)) => {
                        let mut d = *d;
                        loop {
                            let Some(((Step::Key(k, guess), _), rest)) = steps.split_first() else {
                                break V::Doc(d);
                            };
                            if d.kind() != Kind::Object {
                                break V::Doc(d);
                            }
                            steps = rest;
                            match d.get_guessed(k, guess, &mut self.hints) {
                                Some(member) => d = member,
                                None => break V::Ref(&NULL),
                            }
                        }
                    }
                    (Node::Id, _) => input.clone(),
                    (head, _) => match self.at_most_one(head, input)? {
                        Some(v) => v,
                        None => return Ok(None),
                    },
                };
                for (step, opt) in steps {
                    let next = match (step, v) {
                        // A member of an input object after another head (`$x.a`,
                        // `(.a // .b).c`), without `index`'s match (and with `v` moved, so
                        // nothing is dropped).
                        (Step::Key(k, guess), V::Doc(d)) if d.kind() == Kind::Object => Some(
                            d.get_guessed(k, guess, &mut self.hints)
                                .map_or(V::Ref(&NULL), V::Doc),
                        ),
                        (step, v) => index(step, v, &mut self.hints),
                    };
                    v = match (next, opt) {
                        (Some(v), _) => v,
                        (None, Opt::Optional) => return Ok(None),
                        (None, Opt::Essential) => return Err(Stop::Fallback),
                    };
                }
                Some(v)
            }
            Node::Empty => None,
            Node::Arr(f) => Some(self.array(f.as_deref(), input)?),
            Node::Obj(fields) => Some(self.object_of_one(fields, input)?),
            Node::Interp(pieces) => owned(self.interp(pieces, input)?),
            Node::Builtin(b) => Some(builtin_on(*b, input)?),
            Node::Builtin1(b, arg) => {
                let arg = self.one(arg, input)?;
                owned(builtin1(*b, &input.value(), &arg.value())?)
            }
            Node::Neg(f) => match self.at_most_one(f, input)? {
                Some(x) => owned(computed(-to_val(&x.value()))?),
                None => None,
            },
            Node::Pipe(l, None, r) => match self.at_most_one(l, input)? {
                Some(y) => self.at_most_one(r, &y)?,
                None => None,
            },
            Node::Pipe(l, Some(x), r) => match self.at_most_one(l, input)? {
                Some(y) => {
                    self.vars.push((x, y));
                    let result = self.at_most_one(r, input);
                    self.vars.pop();
                    result?
                }
                None => None,
            },
            Node::Alt(l, r) => match self.at_most_one(l, input)? {
                Some(y) if y.truthy() => Some(y),
                _ => self.at_most_one(r, input)?,
            },
            Node::Logic(l, stop, r) => match self.at_most_one(l, input)? {
                None => None,
                Some(x) if x.truthy() == *stop => Some(V::Bool(*stop)),
                Some(_) => self.at_most_one(r, input)?.map(|y| V::Bool(y.truthy())),
            },
            // Both sides are evaluated before either is used, as in `eval`.
            Node::Math(l, op, r) => {
                // A variable operand is read where it is bound rather than copied out
                // (`$qty * .price`: a computed number would be a string copy).
                let (x, y) = (self.operand(l, input)?, self.operand(r, input)?);
                match (self.resolve(&x), self.resolve(&y)) {
                    (Some(x), Some(y)) => Some(arith(*op, x, y)?),
                    _ => None,
                }
            }
            Node::Cmp(l, op, r) => {
                let (x, y) = (self.at_most_one(l, input)?, self.at_most_one(r, input)?);
                match (x, y) {
                    (Some(x), Some(y)) => {
                        Some(V::Bool(op.run(&to_val(&x.value()), &to_val(&y.value()))))
                    }
                    _ => None,
                }
            }
            Node::If(cond, then, otherwise) => match self.at_most_one(cond, input)? {
                Some(c) => self.at_most_one(if c.truthy() { then } else { otherwise }, input)?,
                None => None,
            },
            // `,` is never marked.
            Node::Comma(..) => return Err(Stop::Fallback),
        })
    }

    /// The output of a term that yields at most one value (`.`, a literal, a variable, a marked
    /// term, a path without `[]` from one of these), computed by [`Run::at_most_one`] without
    /// collecting; `None` for every other term.
    fn single(&mut self, node: &'a Node, input: &V<'a>) -> Option<Result<Option<V<'a>>, Stop>> {
        answered_alone(node).then(|| self.at_most_one(node, input))
    }

    /// An operand: a bound variable's place, or the value of any other term that yields at
    /// most one.
    fn operand(&mut self, node: &'a Node, input: &V<'a>) -> Result<Operand<'a>, Stop> {
        if let Node::Var(x) = node {
            self.tick()?;
            return match self.vars.iter().rposition(|(name, _)| name == x) {
                Some(at) => Ok(Operand::Bound(at)),
                None => Err(Stop::Fallback),
            };
        }
        self.at_most_one(node, input).map(Operand::Value)
    }

    fn resolve<'o>(&'o self, operand: &'o Operand<'a>) -> Option<&'o V<'a>> {
        match operand {
            Operand::Bound(at) => Some(&self.vars[*at].1),
            Operand::Value(v) => v.as_ref(),
        }
    }

    fn all(&mut self, node: &'a Node, input: &V<'a>) -> Result<Vec<V<'a>>, Stop> {
        let mut out = Vec::new();
        self.eval(node, input, &mut out)?;
        Ok(out)
    }

    /// The single output of `node`; zero or several are left to jaq.
    fn one(&mut self, node: &'a Node, input: &V<'a>) -> Result<V<'a>, Stop> {
        if let Some(single) = self.single(node, input) {
            return single?.ok_or(Stop::Fallback);
        }
        let mut out = self.all(node, input)?;
        match out.len() {
            1 => Ok(out.pop().unwrap_or(V::Ref(&NULL))),
            _ => Err(Stop::Fallback),
        }
    }
}

/// Whether [`Run::single`] answers `node`.
fn answered_alone(node: &Node) -> bool {
    match node {
        Node::Id | Node::Const(_) | Node::Var(_) | Node::One(_) => true,
        Node::Path(head, steps) => {
            steps.iter().all(|(s, _)| !matches!(s, Step::Iter)) && answered_alone(head)
        }
        _ => false,
    }
}

/// A key or index step applied to `v`; `None` if `v` cannot take it (or the step is `[]`).
fn index<'a>(step: &Step, v: V<'a>, hints: &mut Hints) -> Option<V<'a>> {
    Some(match (step, v) {
        (Step::Key(k, _), V::Ref(Value::Object(m))) => V::Ref(member(m, k).unwrap_or(&NULL)),
        (Step::Key(k, _), V::Owned(v)) if v.is_object() => V::owned(
            v.as_object()
                .and_then(|m| member(m, k))
                .cloned()
                .unwrap_or(Value::Null),
        ),
        (Step::Key(k, guess), V::Doc(d)) if d.kind() == Kind::Object => {
            d.get_guessed(k, guess, hints).map_or(V::Ref(&NULL), V::Doc)
        }
        (Step::Key(k, _), V::Obj(members)) => members
            .into_iter()
            .find_map(|(name, v)| (name == k).then_some(v))
            .unwrap_or(V::Ref(&NULL)),
        (Step::Index(i), V::Ref(Value::Array(a))) => {
            V::Ref(position(*i, a.len()).map_or(&NULL, |i| &a[i]))
        }
        (Step::Index(i), V::Owned(v)) if v.is_array() => {
            let mut items = match *v {
                Value::Array(items) => items,
                _ => return None,
            };
            match position(*i, items.len()) {
                Some(i) => V::owned(items.swap_remove(i)),
                None => V::Ref(&NULL),
            }
        }
        (Step::Index(i), V::Arr(mut items)) => match position(*i, items.len()) {
            Some(i) => items.swap_remove(i),
            None => V::Ref(&NULL),
        },
        (Step::Index(i), V::Doc(d)) if d.kind() == Kind::Array => {
            match position(*i, d.count().unwrap_or(0)) {
                Some(i) => V::Doc(d.elements().nth(i)?),
                None => V::Ref(&NULL),
            }
        }
        // jqval: indexing `null` with anything yields `null`, and so does looking a number up
        // in an object (whose keys are all strings).
        (Step::Key(..) | Step::Index(_), v) if v.kind() == Kind::Null => V::Ref(&NULL),
        (Step::Index(_), v) if v.kind() == Kind::Object => V::Ref(&NULL),
        _ => return None,
    })
}

/// Objects up to this many members are searched key by key rather than through their hash
/// table: serde_json's maps each have their own random SipHash keys, so a key's hash cannot
/// be computed once, and hashing it costs more than comparing lengths, then bytes, member by
/// member. Measured (2026-11-30, AMD EPYC, the trade's key names): a lookup that finds its key
/// takes 11.6 to 11.9 ns through the hash table at any size, 2.2 ns by scanning 4 members,
/// 5.2 ns for 16, 7.2 ns for 24, 8.9 ns for 32; a miss scans them all (about 14 ns for 24).
const SCAN_MEMBERS: usize = 24;

/// The value of member `key` of `m`.
fn member<'m>(m: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    if m.len() <= SCAN_MEMBERS {
        m.iter().find_map(|(k, v)| (k == key).then_some(v))
    } else {
        m.get(key)
    }
}

/// Where index `i` points in an array of `len` (jaq: negative counts from the end), if inside.
fn position(i: isize, len: usize) -> Option<usize> {
    let at = if i >= 0 {
        i.unsigned_abs()
    } else {
        len.checked_sub(i.unsigned_abs())?
    };
    (at < len).then_some(at)
}

/// Applies one path step to `v`, appending what it yields; `false` if `v` cannot take it.
fn apply<'a>(step: &Step, v: V<'a>, out: &mut Vec<V<'a>>, hints: &mut Hints) -> bool {
    match (step, v) {
        (Step::Key(..) | Step::Index(_), v) => match index(step, v, hints) {
            Some(v) => out.push(v),
            None => return false,
        },
        (Step::Iter, V::Ref(Value::Array(a))) => out.extend(a.iter().map(V::Ref)),
        (Step::Iter, V::Ref(Value::Object(m))) => out.extend(m.values().map(V::Ref)),
        (Step::Iter, V::Owned(v)) => match *v {
            Value::Array(items) => out.extend(items.into_iter().map(V::owned)),
            Value::Object(members) => out.extend(members.into_iter().map(|(_, v)| V::owned(v))),
            _ => return false,
        },
        (Step::Iter, V::Arr(items)) => out.extend(items),
        (Step::Iter, V::Obj(members)) => out.extend(members.into_iter().map(|(_, v)| v)),
        (Step::Iter, V::Doc(d)) if d.kind() == Kind::Array => out.extend(d.elements().map(V::Doc)),
        (Step::Iter, V::Doc(d)) if d.kind() == Kind::Object => {
            out.extend(d.members().map(|(_, v)| V::Doc(v)));
        }
        _ => return false,
    }
    true
}

/// A builtin on a run's value: `add` of numbers on their text wherever they are, every other
/// case on the value as a `Value`.
fn builtin_on<'a>(b: Builtin, input: &V<'a>) -> Result<V<'a>, Stop> {
    // `tonumber` on a string that is one JSON number: its text, without a `Value` between.
    // Borrowed where the string is the input's or the program's, copied otherwise.
    if let Builtin::ToNumber = b {
        let number = match input {
            V::Doc(d) => d
                .as_str()
                .and_then(jqval::Num::json_number_text)
                .map(Cow::Borrowed),
            V::Ref(Value::String(s)) => jqval::Num::json_number_text(s).map(Cow::Borrowed),
            other => other
                .as_str()
                .and_then(jqval::Num::json_number_text)
                .map(|n| Cow::Owned(n.to_owned())),
        };
        if let Some(number) = number {
            return Ok(V::Num(number));
        }
    }
    // Case changes of a string of the input, without converting it first.
    if let (Builtin::AsciiUpcase | Builtin::AsciiDowncase, V::Doc(d)) = (b, input)
        && let Some(text) = d.as_str()
    {
        return Ok(V::owned(Value::String(match b {
            Builtin::AsciiUpcase => text.to_ascii_uppercase(),
            _ => text.to_ascii_lowercase(),
        })));
    }
    // `sort` of strings of the input: its nodes in byte order (how jqval orders strings),
    // without converting them.
    if let (Builtin::Sort, V::Doc(d)) = (b, input)
        && d.kind() == Kind::Array
        && d.elements().all(|e| e.kind() == Kind::String)
    {
        let mut items: Vec<V<'a>> = d.elements().map(V::Doc).collect();
        items.sort_by(|a, b| {
            a.as_str()
                .map(str::as_bytes)
                .cmp(&b.as_str().map(str::as_bytes))
        });
        return Ok(V::Arr(items));
    }
    if let Builtin::Add = b {
        let sum = match input {
            V::Arr(items) => text_sum(items.iter().map(V::number_text)),
            V::Doc(d) if d.kind() == Kind::Array => text_sum(d.elements().map(|e| e.number_text())),
            _ => None,
        };
        if let Some(sum) = sum {
            return Ok(V::Num(Cow::Owned(sum)));
        }
    }
    builtin(b, &input.value()).map(V::owned)
}

fn builtin(b: Builtin, input: &Value) -> Result<Value, Stop> {
    Ok(match (b, input) {
        (Builtin::Not, v) => Value::Bool(!truthy(v)),
        (Builtin::Length, Value::Array(a)) => Value::from(a.len()),
        (Builtin::Length, Value::Object(m)) => Value::from(m.len()),
        (Builtin::Length, v) => computed(to_val(v).length())?,
        // jq: `def keys: keys_unsorted | sort;`
        (Builtin::Keys, v) => {
            let mut keys = to_val(v)
                .key_values()
                .map(|kv| kv.map(|(k, _)| k))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| Stop::Fallback)?;
            keys.sort();
            computed(Ok(keys.into_iter().collect()))?
        }
        (Builtin::ToJson, v) => computed(Ok(Val::utf8_str(to_val(v).to_json())))?,
        (Builtin::AsciiUpcase, Value::String(s)) => Value::String(s.to_ascii_uppercase()),
        (Builtin::AsciiDowncase, Value::String(s)) => Value::String(s.to_ascii_lowercase()),
        (Builtin::ToNumber, Value::Number(_)) => input.clone(),
        // jqval: `tonumber` on a string is `fromjson` checked to be a number.
        (Builtin::ToNumber, Value::String(s)) => {
            if let Some(text) = jqval::Num::json_number_text(s) {
                return Ok(Value::Number(Number::from_string_unchecked(
                    text.to_owned(),
                )));
            }
            let mut vals = jqval::read::parse_many(s.as_bytes());
            match (vals.next(), vals.next()) {
                (Some(Ok(n @ Val::Num(_))), None) => computed(Ok(n))?,
                _ => return Err(Stop::Fallback),
            }
        }
        (Builtin::ToString, Value::String(_)) => input.clone(),
        (Builtin::ToString, v) => computed(Ok(to_val(v).into_string()))?,
        // Strings order by their UTF-8 bytes, as jqval orders them; no `Val`s needed.
        (Builtin::Sort, Value::Array(a)) if a.iter().all(Value::is_string) => {
            let mut sorted: Vec<&Value> = a.iter().collect();
            sorted.sort_by_key(|v| v.as_str().map(str::as_bytes));
            Value::Array(sorted.into_iter().cloned().collect())
        }
        (Builtin::Sort, Value::Array(a)) => {
            // jaq sorts `Val`s with a stable sort; sort the same keys, keep the originals.
            let mut keyed: Vec<(Val, &Value)> = a.iter().map(|v| (to_val(v), v)).collect();
            keyed.sort_by(|x, y| x.0.cmp(&y.0));
            Value::Array(keyed.into_iter().map(|(_, v)| v.clone()).collect())
        }
        // jq: `def add: reduce .[] as $x (null; . + $x);`
        (Builtin::Add, Value::Array(_) | Value::Object(_)) => {
            if let Some(sum) = number_sum(input) {
                return Ok(sum);
            }
            let items: Box<dyn Iterator<Item = &Value>> = match input {
                Value::Array(a) => Box::new(a.iter()),
                Value::Object(m) => Box::new(m.values()),
                _ => return Err(Stop::Fallback),
            };
            let mut sum = Val::Null;
            for x in items {
                sum = (sum + to_val(x)).map_err(|_| Stop::Fallback)?;
            }
            computed(Ok(sum))?
        }
        (Builtin::Type, v) => Value::String(
            match v {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            }
            .to_owned(),
        ),
        _ => return Err(Stop::Fallback),
    })
}

/// `input | name(arg)` as jaq's natives compute it, for one output of `arg`.
fn builtin1(b: Builtin1, input: &Value, arg: &Value) -> Result<Value, Stop> {
    Ok(match (b, input, arg) {
        (Builtin1::Has, _, _) => computed(
            to_val(input)
                .index_opt(&to_val(arg))
                .map(|o| Val::from(o.is_some())),
        )?,
        // jaq-std's natives read both sides as strings and fail on anything else.
        (Builtin1::StartsWith, Value::String(s), Value::String(x)) => {
            Value::Bool(s.starts_with(x.as_str()))
        }
        (Builtin1::EndsWith, Value::String(s), Value::String(x)) => {
            Value::Bool(s.ends_with(x.as_str()))
        }
        (Builtin1::LtrimStr, Value::String(s), Value::String(x)) => {
            Value::String(s.strip_prefix(x.as_str()).unwrap_or(s).to_owned())
        }
        (Builtin1::RtrimStr, Value::String(s), Value::String(x)) => {
            Value::String(s.strip_suffix(x.as_str()).unwrap_or(s).to_owned())
        }
        _ => return Err(Stop::Fallback),
    })
}

/// `add` on an array of numbers that [`arith`] can sum on their text, if `input` is one.
fn number_sum(input: &Value) -> Option<Value> {
    let Value::Array(items) = input else {
        return None;
    };
    let sum = text_sum(items.iter().map(|v| match v {
        Value::Number(n) => Some(n.as_str()),
        _ => None,
    }))?;
    Some(Value::Number(Number::from_string_unchecked(sum)))
}

/// The sum of number texts as `add` computes it, if there is at least one and every item is
/// a number [`arith`] can add on its text. (`null + x` is `x` itself, so the first number is
/// taken as it is.)
fn text_sum<'t>(mut numbers: impl Iterator<Item = Option<&'t str>>) -> Option<String> {
    let mut sum = numbers.next()??.to_owned();
    for n in numbers {
        sum = jqval::Num::exact_text_op(Math::Add, &sum, n?)?;
    }
    Some(sum)
}

/// `x op y` as jaq computes it. Sums, differences and products of two numbers of up to 18
/// digits (money amounts) are worked out on their text, which is what jqval gives for them
/// (`Num::exact_text_op`) without converting either side to a `Val` and the result back.
fn arith<'a>(op: Math, x: &V<'_>, y: &V<'_>) -> Result<V<'a>, Stop> {
    if let (Some(a), Some(b)) = (x.number_text(), y.number_text())
        && let Some(text) = jqval::Num::exact_text_op(op, a, b)
    {
        // Digits and at most one point, so JSON number text.
        return Ok(V::Num(Cow::Owned(text)));
    }
    computed(op.run(to_val(&x.value()), to_val(&y.value()))).map(V::owned)
}

/// A value jqval computed, as a document; any error is jaq's to report.
fn computed(v: Result<Val, jaq_core::Error<Val>>) -> Result<Value, Stop> {
    v.ok().and_then(|v| from_val(&v).ok()).ok_or(Stop::Fallback)
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

/// jq's truth: everything but `null` and `false`.
fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

#[cfg(test)]
mod tests {
    //! Differential tests: every program below runs on every document through this module and
    //! through jaq, and wherever this module answers, jaq must give the same outputs, byte for
    //! byte once written as JSON. The lists are the module's contract: each supported construct
    //! with the inputs that make it take each of its branches.

    use std::time::Duration;

    use super::*;
    use crate::transform::{OutputMode, Transform};

    #[test]
    fn member_lookup_agrees_with_the_hash_table_on_both_sides_of_the_scan_limit() {
        for len in 0..=SCAN_MEMBERS + 8 {
            let mut m = Map::new();
            for i in 0..len {
                // Keys of equal length and a shared prefix, so that the scan compares bytes.
                m.insert(format!("k{i:03}"), Value::from(i));
            }
            for probe in 0..=len + 1 {
                for key in [format!("k{probe:03}"), format!("k{probe}"), String::new()] {
                    assert_eq!(member(&m, &key), m.get(&key), "{len} members, key {key:?}");
                }
            }
        }
    }

    const TRADE: &str = include_str!("../../../../examples/trade/trade.json");
    const TRADE_JQ: &str = include_str!("../../../../examples/trade/transform.jq");

    const DOCS: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "-12.50",
        "1e400",
        "9007199254740993",
        "123456789012345678901234567890.000000000000000000001",
        r#""""#,
        r#""Straße ümlaut 𝄞""#,
        r#""12.50""#,
        r#"" 7 ""#,
        r#""1 2""#,
        r#""abc""#,
        "[]",
        "[3, 1, 2]",
        r#"[1, "a", null, true, [0], {"a": 1}, 1.0, 1.00, false, "A"]"#,
        r#"["b", "a", "B", "ä", "a"]"#,
        r#"["x", "y"]"#,
        "[[1, 2], [3]]",
        "[0.1, 0.2, 0.3]",
        // `add` takes a lone number as it is, and sums money amounts on their text.
        "[-0]",
        "[1e400]",
        "[-0.0, 2.50, -1]",
        "[999999999999999999, 999999999999999999]",
        r#"[{"a": 1}, {"b": 2}, {"a": 3}]"#,
        "{}",
        r#"{"a": 1, "b": [1, 2, {"c": "d"}], "n": null, "f": false, "s": "Hi", "x": 0.1, "y": 0.2}"#,
        r#"{"a": {"b": {"c": 9007199254740993}}, "key with space": 1, "tags": null}"#,
        r#"{"quantity": "1e3", "price": 1.5E+2, "fees": [], "tags": ["b", "a"]}"#,
        r#"{"quantity": 3, "price": "oops", "fees": [{"amount": "1"}]}"#,
        r#"{"fees": [{"amount": 1}, {"no": 2}, {"amount": 0.25}], "side": "sell"}"#,
        r#"{"fees": {"a": {"amount": 1}}, "side": 5}"#,
        TRADE,
    ];

    const PROGRAMS: &[&str] = &[
        ".",
        "1, 1.0, 1.50, 1e2, -3, 100000000000000000000, 0.1 + 0.2",
        r#""lit", "esc\n\"\u00e9", null, true, false, [], {}"#,
        ".a",
        ".a.b.c",
        r#"."key with space", .["a"], .a?"#,
        ".b[0], .b[2].c, .b[7], .[0]",
        ".[]",
        ".[]?",
        ".b[]?.c?",
        ".fees[]?.amount",
        "[.fees[]?.amount]",
        "[.fees[]?.amount] | add // 0",
        "[.[]?]",
        "{a, n: .n, s: .s, \"q r\": 1}",
        ". as $d | {$d}",
        ". as $x | [$x, $x]",
        ".a as $a | .b as $b | {a: $a, b: $b}",
        ".a as $x | (.s as $x | $x), $x",
        "-.a, -.x",
        ".x + .y, .x - .y, .x * .y, .a + 1, .s + \"!\", .b + [9], .n + 1",
        "{a: 1} + {b: 2} + {a: 3}",
        ". * 2, . + .",
        ". / 3",
        ". % 2",
        ".a == 1, .a != 1, .a < .x, .s >= \"H\", .n == null, [1] < {}",
        ".a // 5, .n // 5, .f // 5, (.n, .a) // 6, empty // 7",
        ".f or .a, .f and .a, .n or .f, (true, false) and (true, false)",
        "if .a then \"yes\" elif .n then \"n\" else \"no\" end, if .f then 1 end",
        "if (true, false) then 1 else 2 end",
        "not, length, type",
        "keys, tojson, has(\"a\"), has(0), has(.s)",
        "startswith(\"S\"), endswith(\"é\"), ltrimstr(\"1\"), rtrimstr(\"5\"), ltrimstr(1)",
        "ascii_upcase, ascii_downcase",
        "tonumber",
        "tostring",
        "sort",
        "add",
        "map(. + 1)",
        "map(select(. != null))",
        "[.[] | select(type == \"number\")]",
        "select(.a == 1) | .s",
        ".quantity | tonumber",
        "(.quantity | tonumber) * .price",
        "(.tags // []) | sort",
        ".[-1], .[-2], .[-11], .b[-1], .b[-3].c?",
        r#""id: \(.a) / \(.s) / \(.n) / \(.b) / \(.) \u00e9""#,
        r#""\(.x + .y)-\(.f)", "\(.[0]?)""#,
        // Arrays and objects the program builds, indexed, iterated, summed and nested with
        // whole subtrees of the input (a `Doc` copies them with their links shifted).
        "{a: .a, b: [.b, 1]} | .b[1], .a, .c",
        "[.a, 2, {x: 3}] | .[2].x, .[0], .[-1], .[5], .[1]",
        "{a: 1, b: 2} | .[], .[0]?",
        "[.[]?, 9] | .[]",
        "{x: ., y: [., {z: .}], n: null} | ., .y[1].z",
        ".[]? | {k: ., again: [.]}",
        "[1, 2.50, .x] | add",
        "[] | add",
        "[.a] | add",
        "[.fees[]?.amount, 0.1] | add",
        // Programs of one output at most, which `Program::run_doc_one` writes as it computes
        // them: members that are objects and bindings themselves, members and bindings that
        // yield nothing (no answer: jaq reports the count).
        "{a: {b: .a, c: {d: .s}}, e: (.a as $x | {y: $x, z: [$x]})}",
        "{a: (.a | select(. == 1)), s: .s}",
        "{a: (.a as $x | empty)}",
        "{x: .s.t?, y: 1}",
        "{x: empty}",
        "[{x: .s.t?}, {y: (.a | select(. == 1))}]",
        "{a: (.a as $x | {b: ($x | select(. == 1))})}",
        "(.a | select(. == 1)) as $x | {x: $x}",
        "{a: .a, n: 1} | {b: .a, m: .n}",
        ".a as $x | {p: (.s as $x | {y: $x}), q: $x}",
        ".s as $s | .a as $a | {s: $s, a: $a, both: [$s, $a]} | .both",
        TRADE_JQ,
    ];

    /// jaq's outputs for `program` on `doc`, gathered as one array, or its error.
    fn jaq(program: &str, doc: &Value) -> Result<Value, String> {
        Transform::compile(program, OutputMode::Collect)
            .expect("compiles with jaq")
            .jaq_only()
            .run(doc, Duration::from_secs(10))
            .map_err(|e| e.to_string())
    }

    /// The direct evaluator's answer for `doc`, which must be the same whether the document
    /// is a `Value` or is read as a `Doc`, and whether the outputs are made into `Value`s or
    /// into one `Doc` (every differential test below checks all of these).
    fn direct(program: &str, doc: &Value) -> Option<Result<Vec<Value>, Stop>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let program = Program::compile(program)?;
        let on_value = program.run(doc, deadline).map(Outputs::into_values);
        let source = text(doc);
        let read = crate::Doc::parse(&source, &crate::Limits::default()).expect("Doc reads it");
        for collect in [true, false] {
            let Ok(outputs) = program.run_doc(read.root(), deadline) else {
                continue;
            };
            let Ok(values) = &on_value else {
                panic!("the Doc run answered where the Value run did not, on {source}");
            };
            let expected = match (collect, values.first()) {
                (true, _) => Value::Array(values.clone()),
                (false, Some(first)) => first.clone(),
                // Nothing to make a document of (the output rule refuses this case).
                (false, None) => continue,
            };
            let as_doc = outputs.into_doc(collect).to_value();
            assert_eq!(text(&as_doc), text(&expected), "as one Doc, on {source}");
        }
        let on_doc = program
            .run_doc(read.root(), deadline)
            .map(Outputs::into_values);
        let texts = |r: &Result<Vec<Value>, Stop>| {
            r.as_ref()
                .map(|outputs| outputs.iter().map(text).collect::<Vec<_>>())
                .map_err(|stop| format!("{stop:?}"))
        };
        assert_eq!(texts(&on_doc), texts(&on_value), "on {source}");
        // Written as it is computed: the one output, or no answer where there is none.
        if program.yields_at_most_one() {
            let written = program
                .run_doc_one(read.root(), deadline)
                .map(|doc| vec![doc.to_value()]);
            let expected = match &on_doc {
                Ok(outputs) if outputs.is_empty() => Err(Stop::Fallback),
                Ok(outputs) => {
                    assert_eq!(outputs.len(), 1, "at most one output, on {source}");
                    Ok(outputs.clone())
                }
                Err(Stop::Fallback) => Err(Stop::Fallback),
                Err(Stop::Timeout) => Err(Stop::Timeout),
            };
            assert_eq!(texts(&written), texts(&expected), "written, on {source}");
        }
        Some(on_value)
    }

    fn text(v: &Value) -> String {
        serde_json::to_string(v).expect("serialises")
    }

    #[test]
    fn every_supported_program_agrees_with_jaq_on_every_document() {
        let mut answered = 0;
        for program in PROGRAMS {
            for doc_text in DOCS {
                let doc: Value = serde_json::from_str(doc_text).expect("test document parses");
                let reference = jaq(program, &doc);
                match direct(program, &doc) {
                    None => panic!("{program:?} does not compile for the direct evaluator"),
                    Some(Ok(outputs)) => {
                        answered += 1;
                        let ours = text(&Value::Array(outputs));
                        let theirs = reference.as_ref().map(text);
                        assert_eq!(
                            Ok(&ours),
                            theirs.as_ref(),
                            "{program:?} on {doc_text}: direct {ours}, jaq {theirs:?}"
                        );
                    }
                    Some(Err(Stop::Fallback)) => {}
                    Some(Err(Stop::Timeout)) => panic!("{program:?} on {doc_text} timed out"),
                }
            }
        }
        // Without this the test would pass if every run fell back to jaq. Many pairs are meant
        // to fail (`.a` on a number, `tonumber` on "abc"), so not all are answered.
        let runs = PROGRAMS.len() * DOCS.len();
        assert!(
            answered * 5 > runs * 2,
            "direct evaluator answered {answered} of {runs} runs"
        );
    }

    #[test]
    fn tonumber_on_strings_agrees_with_jaq() {
        // A string that is one JSON number on its own is read here; the rest go to jqval.
        let strings = [
            "0",
            "-0",
            "-0.0",
            "-0.50",
            "12.50",
            "1E400",
            "-1e-7",
            "9007199254740993",
            "123456789012345678901234567890",
            "007",
            "1.",
            ".5",
            "+1",
            " 7",
            "1 2",
            "0x10",
            "",
        ];
        let mut answered = 0;
        for s in strings {
            let doc = Value::String(s.to_owned());
            let theirs = jaq("tonumber", &doc).map(|v| text(&v));
            match direct("tonumber", &doc) {
                Some(Ok(outputs)) => {
                    answered += 1;
                    assert_eq!(
                        Ok(text(&Value::Array(outputs))),
                        theirs,
                        "tonumber on {s:?}"
                    );
                }
                Some(Err(Stop::Fallback)) => {}
                other => panic!("tonumber on {s:?}: {other:?}"),
            }
        }
        assert!(answered >= 9, "{answered} answered");
    }

    /// A small deterministic generator (xorshift) of programs from the supported grammar and of
    /// documents made of the keys and number spellings those programs read.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            crate::testing::xorshift(&mut self.0)
        }

        fn pick<'s>(&mut self, choices: &[&'s str]) -> &'s str {
            choices[(self.next() % choices.len() as u64) as usize]
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn program(&mut self, depth: u32, vars: &mut Vec<String>) -> String {
            const BUILTINS: &[&str] = &[
                "not",
                "length",
                "sort",
                "add",
                "tostring",
                "type",
                "tonumber",
                "ascii_upcase",
                "ascii_downcase",
                "keys",
                "tojson",
                "has(\"a\")",
                "has(0)",
                "has(.a)",
                "startswith(\"a\")",
                "endswith(\"y\")",
                "ltrimstr(\"a\")",
                "rtrimstr(\"y\")",
            ];
            const LEAVES: &[&str] = &[
                ".", ".a", ".b", ".s", ".n", ".x", ".t", ".b[]?", ".t[]?", ".[0]?", ".[-1]?",
                ".a.b?", "0", "1.50", "-2", "1e2", "\"s\"", "null", "true", "false", "[]", "{}",
            ];
            if depth == 0 || self.below(4) == 0 {
                if !vars.is_empty() && self.below(3) == 0 {
                    return vars[self.below(vars.len() as u64) as usize].clone();
                }
                return self.pick(LEAVES).to_owned();
            }
            let d = depth - 1;
            match self.below(16) {
                0 => {
                    let op = self.pick(&["+", "-", "*", "/", "%"]);
                    format!("({} {op} {})", self.program(d, vars), self.program(d, vars))
                }
                1 => {
                    let op = self.pick(&["==", "!=", "<", "<=", ">", ">="]);
                    format!("({} {op} {})", self.program(d, vars), self.program(d, vars))
                }
                2 => {
                    let op = self.pick(&["//", "and", "or", ",", "|"]);
                    format!("({} {op} {})", self.program(d, vars), self.program(d, vars))
                }
                3 => format!("[{}]", self.program(d, vars)),
                4 => format!(
                    "{{a: {}, \"b c\": {}}}",
                    self.program(d, vars),
                    self.program(d, vars)
                ),
                5 => {
                    let name = format!("$v{}", vars.len());
                    let bound = self.program(d, vars);
                    vars.push(name.clone());
                    let body = self.program(d, vars);
                    vars.pop();
                    format!("({bound} as {name} | {body})")
                }
                6 => format!(
                    "(if {} then {} else {} end)",
                    self.program(d, vars),
                    self.program(d, vars),
                    self.program(d, vars)
                ),
                7 => format!("({} | {})", self.program(d, vars), self.pick(BUILTINS)),
                8 => format!("map({})", self.program(d, vars)),
                9 => format!("select({})", self.program(d, vars)),
                10 => format!("\"<\\({})>\"", self.program(d, vars)),
                11 => format!("(-{})", self.program(d, vars)),
                12 => format!("({})[]?", self.program(d, vars)),
                13 => format!("({}).a?", self.program(d, vars)),
                _ => self.pick(LEAVES).to_owned(),
            }
        }

        fn document(&mut self, depth: u32) -> String {
            const SCALARS: &[&str] = &[
                "null",
                "true",
                "false",
                "0",
                "-1",
                "2.50",
                "0.1",
                "1e3",
                "9007199254740993",
                "\"\"",
                "\"a\"",
                "\"Bé\"",
                "\"12.5\"",
                "\"x y\"",
            ];
            if depth == 0 || self.below(3) == 0 {
                return self.pick(SCALARS).to_owned();
            }
            match self.below(2) {
                0 => {
                    let n = self.below(4);
                    let items: Vec<_> = (0..n).map(|_| self.document(depth - 1)).collect();
                    format!("[{}]", items.join(", "))
                }
                _ => {
                    let mut fields = Vec::new();
                    for key in ["a", "b", "s", "n", "x", "t"] {
                        if self.below(3) != 0 {
                            fields.push(format!("\"{key}\": {}", self.document(depth - 1)));
                        }
                    }
                    format!("{{{}}}", fields.join(", "))
                }
            }
        }
    }

    #[test]
    fn generated_programs_agree_with_jaq_on_generated_documents() {
        // More cases or another seed: DIRECT_CASES=20000 DIRECT_SEED=7 cargo test --release ...
        let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let mut g = Gen(0x9E37_79B9_7F4A_7C15 ^ env("DIRECT_SEED").unwrap_or(0));
        let (mut runs, mut answered) = (0, 0);
        for _ in 0..env("DIRECT_CASES").unwrap_or(400) {
            let program = g.program(4, &mut Vec::new());
            assert!(
                Program::compile(&program).is_some(),
                "{program:?} does not compile for the direct evaluator"
            );
            for _ in 0..5 {
                let doc_text = g.document(3);
                let doc: Value = serde_json::from_str(&doc_text).expect("generated JSON");
                runs += 1;
                if let Some(Ok(outputs)) = direct(&program, &doc) {
                    answered += 1;
                    let ours = text(&Value::Array(outputs));
                    let theirs = jaq(&program, &doc).map(|v| text(&v));
                    assert_eq!(Ok(&ours), theirs.as_ref(), "{program} on {doc_text}");
                }
            }
        }
        assert!(
            answered * 4 > runs,
            "direct evaluator answered {answered} of {runs} runs"
        );
    }

    #[test]
    fn the_trade_transform_runs_directly() {
        let doc: Value = serde_json::from_str(TRADE).expect("trade parses");
        let outputs = direct(TRADE_JQ, &doc).expect("compiles").expect("runs");
        assert_eq!(outputs.len(), 1);
        let expected = jaq(TRADE_JQ, &doc).expect("jaq runs it");
        assert_eq!(text(&Value::Array(outputs)), text(&expected));
    }

    #[test]
    fn paths_through_iterations_are_answered_here_in_order() {
        // Each answered directly (no fallback to jaq), on a `Value` and on a `Doc` alike.
        for (program, doc, expected) in [
            (".a[].b", r#"{"a": [{"b": 1}, {"b": 2}]}"#, "[1,2]"),
            (".a[][]", r#"{"a": [[1, 2], [], [3]]}"#, "[1,2,3]"),
            (".a[]?.b", r#"{"a": 1}"#, "[]"),
            (".a[]?[]?", r#"{"a": [1, [2], {"x": 3}]}"#, "[2,3]"),
            (".[].a[1]", r#"[{"a": [1, 2]}, {"a": [3]}]"#, "[2,null]"),
            (".a.b[]", r#"{"a": {"b": {"x": 1, "y": 2}}}"#, "[1,2]"),
        ] {
            let doc: Value = serde_json::from_str(doc).expect("a document");
            let outputs = direct(program, &doc)
                .expect("compiles")
                .unwrap_or_else(|stop| panic!("{program}: {stop:?}"));
            assert_eq!(text(&Value::Array(outputs)), expected, "{program}");
            assert_eq!(
                text(&jaq(program, &doc).unwrap()),
                expected,
                "jaq: {program}"
            );
        }
    }

    #[test]
    fn a_long_path_after_an_iteration_does_not_deepen_the_stack() {
        // 30,000 member steps after `[]`, each on `null`: one frame, not one a step (a
        // frame a step overflowed a 2 MiB stack).
        let program = format!("[.[]{}]", ".a".repeat(30_000));
        let answered = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let program = Program::compile(&program).expect("compiles");
                let doc: Value = serde_json::from_str("[{}, {}]").expect("a document");
                let deadline = Instant::now() + Duration::from_secs(10);
                program.run(&doc, deadline).map(Outputs::into_values)
            })
            .expect("a thread")
            .join()
            .expect("no overflow");
        assert_eq!(answered, Ok(vec![serde_json::json!([null, null])]));
    }

    #[test]
    fn trade_variants_agree_with_jaq() {
        let base: Value = serde_json::from_str(TRADE).expect("trade parses");
        let quantities = [
            r#""2500000.00""#,
            r#""1e3""#,
            r#""-0.000001""#,
            r#""1234567890123456789.5""#,
            r#""x""#,
            "7",
        ];
        let prices = ["1.08734", "100", "1e-3", "12.5E+3", "null"];
        let fees = [
            "null",
            "[]",
            r#"[{"amount": 0.1}, {"amount": 0.2}]"#,
            r#"[{"amount": "x"}]"#,
            r#"{"a": {"amount": 1}}"#,
        ];
        let tags = ["null", "[]", r#"["b", "a", "B", "a"]"#, r#"[2, "a", 1]"#];
        let mut runs = 0;
        for q in quantities {
            for p in prices {
                for f in fees {
                    for t in tags {
                        let mut doc = base.clone();
                        for (field, spelling) in
                            [("quantity", q), ("price", p), ("fees", f), ("tags", t)]
                        {
                            doc[field] = serde_json::from_str(spelling).expect("variant parses");
                        }
                        let reference = jaq(TRADE_JQ, &doc).map(|v| text(&v));
                        if let Some(Ok(outputs)) = direct(TRADE_JQ, &doc) {
                            runs += 1;
                            assert_eq!(Ok(text(&Value::Array(outputs))), reference, "on {doc}");
                        }
                    }
                }
            }
        }
        assert!(runs > 200, "only {runs} variants ran directly");
    }

    #[test]
    fn terms_with_at_most_one_output_are_marked() {
        let root = |code: &str| Program::compile(code).expect(code).root;
        for code in [
            ".a // .b",
            ".a as $x | $x + 1",
            "[.[] | .x]",
            "select(.a)",
            "if .a then 1 elif .b then 2 else 3 end",
            "{a: (.x // 0), b: (.y | tostring)}",
            "\"<\\(.a + 1)>\"",
            TRADE_JQ,
        ] {
            assert!(
                matches!(root(code), Node::One(_)),
                "{code} yields at most one output"
            );
        }
        for code in [
            ".a, .b",
            ".b[]?",
            "if .a then 1 else (2, 3) end",
            "{a: (1, 2)}",
            "(.a, .b) // 1",
        ] {
            assert!(
                !matches!(root(code), Node::One(_)),
                "{code} may yield several"
            );
        }
        // Paths and literals are `single`'s, never marked; a path's head may be.
        for code in [".", ".a.b[0]?", "1"] {
            assert!(!matches!(root(code), Node::One(_)), "{code}");
        }
        let Node::Path(head, _) = root("(.a // .b).c") else {
            panic!("a path")
        };
        assert!(matches!(*head, Node::One(_)));
    }

    #[test]
    fn other_programs_are_left_to_jaq() {
        for program in [
            "def f: .; f",
            "reduce .[] as $x (0; . + $x)",
            "try error(\"x\")",
            "@text \"\\(.a)\"",
            ".[-.a]",
            ".[1:2]",
            ".a = 1",
            ".a |= 1",
            "..",
            "$ENV",
            "$__loc__",
            ". as [$a] | $a",
            "{(.a): 1}",
            // A repeated key: first place, last value.
            "{x: .a, x: .s}",
            "{a: 1, b: 2, a: 3}",
            "keys_unsorted",
            "map(.)?",
            "@base64",
            "range(10)",
            "input",
            "label $out | 1",
        ] {
            assert!(
                Program::compile(program).is_none(),
                "{program:?} should be left to jaq"
            );
        }
    }

    #[test]
    fn a_run_that_multiplies_its_outputs_stops_at_the_deadline() {
        let doc = Value::Array((0..200).map(Value::from).collect());
        let program = Program::compile("[.[] as $a | .[] as $b | .[] as $c | [$a, $b, $c]]")
            .expect("compiles");
        let started = Instant::now();
        let result = program.run(&doc, started + Duration::from_millis(50));
        assert_eq!(result.err(), Some(Stop::Timeout));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_public_run_falls_back_to_jaq_for_errors_and_output_counts() {
        let t = Transform::compile(".a", OutputMode::One).expect("compiles");
        assert!(t.is_direct());
        let err = t.run(&Value::from(1), Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.to_string(), jaq(".a", &Value::from(1)).unwrap_err());

        let t = Transform::compile(".[]", OutputMode::One).expect("compiles");
        let doc: Value = serde_json::from_str("[1, 2]").unwrap();
        assert_eq!(
            t.run(&doc, Duration::from_secs(1)),
            Err(crate::transform::TransformError::OutputCount(2))
        );
        let t = Transform::compile(".[]", OutputMode::Collect).expect("compiles");
        assert_eq!(text(&t.run(&doc, Duration::from_secs(1)).unwrap()), "[1,2]");
    }
}
