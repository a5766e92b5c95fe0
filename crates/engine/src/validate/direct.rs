//! A direct proof that a [`Doc`](crate::Doc) is valid, for schemas written in the keywords
//! most schemas are made of (`type`, `properties`, `required`, `additionalProperties`,
//! `items`, `enum`, `const`, lengths and counts, `pattern`, numeric bounds, the `date` and
//! `date-time` formats), composed with `allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`,
//! `dependentRequired`, `dependentSchemas` (and draft 7's `dependencies`) and references to
//! definitions in the same schema (`$ref` to `#/$defs/...`).
//!
//! jsonschema stays the judge. A [`Proof`] only ever answers "valid, certainly" or "not
//! proven"; [`Schema::is_valid_doc`](super::Schema::is_valid_doc) asks jsonschema whenever the
//! proof does not hold, so a document the proof cannot place (an invalid one, a number written
//! with an exponent, an array of objects under `uniqueItems`) costs one more pass and gets
//! jsonschema's answer. What must hold, and what the tests check against jsonschema, is
//! soundness: whatever a proof accepts, jsonschema accepts. Every check here is therefore
//! jsonschema's own or stricter, and a schema with anything outside the subset (a reference
//! to another document, an anchor or a recursive one, a keyword not listed above, a format
//! other than the two, a pattern the `regex` crate cannot run) has no proof at all.
//!
//! `oneOf`, `not` and `else` need subschemas shown to fail, which a proof of validity cannot
//! give; [`Shape::refutes`] is the part of a subschema whose failure is certain and cheap
//! to see.
//!
//! Why by hand: the trade's two validations took 17k instructions through jsonschema's
//! general machinery (a hash lookup per member, a dynamic call per keyword, the number
//! conversions of its arbitrary-precision support), more than a quarter of a request's
//! engine time; the proof walks the members once against the properties in order.

use std::cmp::Ordering;

use regex::Regex;
use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, Input};

use crate::Value;
use crate::doc::{DocRef, Kind, same_key};
use crate::validate::Draft;

/// A compiled proof of validity for one schema.
#[derive(Debug)]
pub(crate) struct Proof {
    root: Shape,
}

impl Proof {
    /// The proof for `schema`, or `None` when the schema uses anything outside the subset.
    /// `formats` says whether `format` is asserted (as [`SchemaOptions::validate_formats`]).
    ///
    /// [`SchemaOptions::validate_formats`]: super::SchemaOptions::validate_formats
    pub(crate) fn compile(schema: &Value, formats: bool) -> Option<Proof> {
        let mut compiler = Compiler::new(schema, formats);
        Some(Proof {
            root: compiler.shape(schema, true)?,
        })
    }

    /// Whether `doc` is certainly valid; `false` when it is not, or not proven to be.
    pub(crate) fn holds(&self, doc: DocRef<'_, '_>) -> bool {
        self.root.holds(doc)
    }
}

/// What one subschema requires. The keywords of each type are apart, so that a value meets
/// only those of its own type.
#[derive(Debug, Default)]
struct Shape {
    /// `type`, as a set of [`Types`] bits; `None` allows every type.
    types: Option<u8>,
    /// `enum` and `const` (a list of one): the value must be one of each list.
    values: Vec<Vec<Value>>,
    string: Option<Box<StringShape>>,
    /// Numeric bounds, each with its limit.
    bounds: Vec<(Bound, Limit)>,
    array: Option<Box<ArrayShape>>,
    object: Option<Box<ObjectShape>>,
    /// The schema `false`, and the subschemas applied to the same value (`$ref`, `allOf`,
    /// `anyOf`, `oneOf`, `not`, `if`, the dependencies): boxed, as most subschemas have none,
    /// so that checking one costs a single test.
    rest: Option<Box<Rest>>,
}

/// The rarer parts of a subschema: the schema `false`, and the subschemas it applies to the
/// same value.
#[derive(Debug, Default)]
struct Rest {
    /// The schema `false`.
    never: bool,
    /// The subschema a local `$ref` names. Drafts 4 to 7 ignore the keywords beside a
    /// `$ref`, so when there is one, only it refutes (see [`Shape::refutes`]).
    reference: Option<Shape>,
    /// `allOf`: each must hold.
    all: Vec<Shape>,
    /// Each `anyOf`: one of its subschemas must hold.
    any: Vec<Vec<Shape>>,
    /// Each `oneOf`: one of its subschemas must hold and every other be refuted.
    one: Vec<Vec<Shape>>,
    /// `not`: each must be refuted.
    not: Vec<Shape>,
    /// `if`, `then`, `else` (the last two `None` when absent).
    conditional: Option<(Shape, Option<Shape>, Option<Shape>)>,
    /// `dependentRequired` (and draft 7's `dependencies` of names): when the object has the
    /// property, it must have the others too.
    dependent_required: Vec<(String, Vec<String>)>,
    /// `dependentSchemas` (and draft 7's `dependencies` of schemas): when the object has the
    /// property, the object must hold to the subschema.
    dependent_schemas: Vec<(String, Shape)>,
}

#[derive(Debug, Default)]
struct StringShape {
    min_length: Option<u64>,
    max_length: Option<u64>,
    patterns: Vec<Pattern>,
    format: Option<Format>,
}

#[derive(Debug, Default)]
struct ArrayShape {
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    items: Option<Shape>,
}

/// `type` bits.
struct Types;

impl Types {
    const NULL: u8 = 1;
    const BOOLEAN: u8 = 2;
    const NUMBER: u8 = 4;
    const INTEGER: u8 = 8;
    const STRING: u8 = 16;
    const ARRAY: u8 = 32;
    const OBJECT: u8 = 64;

    fn named(name: &str) -> Option<u8> {
        Some(match name {
            "null" => Types::NULL,
            "boolean" => Types::BOOLEAN,
            "number" => Types::NUMBER,
            "integer" => Types::INTEGER,
            "string" => Types::STRING,
            "array" => Types::ARRAY,
            "object" => Types::OBJECT,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Date,
    DateTime,
}

#[derive(Debug, Clone, Copy)]
enum Bound {
    Minimum,
    Maximum,
    ExclusiveMinimum,
    ExclusiveMaximum,
}

/// The object keywords of one subschema.
#[derive(Debug, Default)]
struct ObjectShape {
    /// `properties`, then the `required` names that `properties` does not list (with no
    /// schema of their own: `additionalProperties` applies to them).
    properties: Vec<(String, Option<Shape>)>,
    /// Bit `i` set: `properties[i]` is required.
    required: u64,
    /// `additionalProperties`; `None` allows any.
    additional: Option<Shape>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
}

/// Keywords that only annotate: no instance fails them.
const ANNOTATIONS: [&str; 8] = [
    "title",
    "description",
    "$comment",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// What compiling one schema carries from subschema to subschema.
struct Compiler<'s> {
    /// The whole schema, which local references point into.
    root: &'s Value,
    /// Whether `format` is asserted.
    formats: bool,
    /// The memory the schema's patterns' dense DFAs may still take: past it, patterns run on
    /// `regex`'s lazy DFA, so that a schema of many large patterns cannot take more.
    dfa_budget: usize,
    /// The references being compiled, innermost last: one met again is a cycle, which is
    /// left to jsonschema.
    refs: Vec<&'s str>,
    /// How deep in subschemas the one being compiled is, references followed.
    depth: usize,
    /// How many more subschemas may be compiled. A reference is compiled where it is used,
    /// so definitions that refer to each other several times could multiply; past this the
    /// schema is left to jsonschema.
    shapes_left: usize,
}

/// The most subschemas one proof compiles, references followed.
const MAX_SHAPES: usize = 10_000;

/// The most references followed one inside another.
const MAX_REFS: usize = 32;

/// The deepest subschema a proof compiles, references followed. Compiling and checking
/// recurse once a level, and a document's own depth is bounded by its limits, but nested
/// references could stack one schema's depth on another's.
const MAX_SHAPE_DEPTH: usize = 128;

impl<'s> Compiler<'s> {
    fn new(root: &'s Value, formats: bool) -> Self {
        Compiler {
            root,
            formats,
            dfa_budget: DFA_BUDGET,
            refs: Vec::new(),
            depth: 0,
            shapes_left: MAX_SHAPES,
        }
    }

    /// Compiles one subschema; `None` when anything in it is outside the subset, or it lies
    /// deeper than [`MAX_SHAPE_DEPTH`], references followed.
    fn shape(&mut self, schema: &'s Value, root: bool) -> Option<Shape> {
        self.shapes_left = self.shapes_left.checked_sub(1)?;
        if self.depth >= MAX_SHAPE_DEPTH {
            return None;
        }
        self.depth += 1;
        let shape = self.shape_within(schema, root);
        self.depth -= 1;
        shape
    }

    fn shape_within(&mut self, schema: &'s Value, root: bool) -> Option<Shape> {
        let formats = self.formats;
        let members = match schema {
            Value::Bool(allowed) => {
                return Some(Shape {
                    rest: (!allowed).then(|| {
                        Box::new(Rest {
                            never: true,
                            ..Rest::default()
                        })
                    }),
                    ..Shape::default()
                });
            }
            Value::Object(members) => members,
            _ => return None,
        };
        let mut shape = Shape::default();
        let mut string = StringShape::default();
        let mut array = ArrayShape::default();
        let mut object = ObjectShape::default();
        let mut rest = Rest::default();
        let (mut condition, mut then, mut otherwise) = (None, None, None);
        let mut required = Vec::new();
        for (keyword, value) in members {
            match keyword.as_str() {
                // Which draft applies does not change the keywords below (draft 4's boolean
                // `exclusiveMinimum` is refused), but a meta-schema of someone else's might.
                "$schema" if root => {
                    let uri = value.as_str()?.trim_end_matches('#');
                    Draft::ALL
                        .iter()
                        .find(|draft| draft.meta_schema_uri().trim_end_matches('#') == uri)?;
                }
                "$id" if root => {
                    value.as_str()?;
                }
                keyword if ANNOTATIONS.contains(&keyword) => {}
                "type" => {
                    shape.types = Some(match value {
                        Value::String(name) => Types::named(name)?,
                        Value::Array(names) => names
                            .iter()
                            .try_fold(0, |bits, name| Some(bits | Types::named(name.as_str()?)?))?,
                        _ => return None,
                    });
                }
                "enum" => shape.values.push(value.as_array()?.clone()),
                "const" => shape.values.push(vec![value.clone()]),
                "minLength" => string.min_length = Some(value.as_u64()?),
                "maxLength" => string.max_length = Some(value.as_u64()?),
                "pattern" => string.patterns.push(self.pattern(value.as_str()?)?),
                // Not asserted, `format` is an annotation.
                "format" if !formats => {}
                "format" => {
                    string.format = Some(match value.as_str()? {
                        "date" => Format::Date,
                        "date-time" => Format::DateTime,
                        _ => return None,
                    });
                }
                "minimum" => shape.bounds.push((Bound::Minimum, Limit::of(value)?)),
                "maximum" => shape.bounds.push((Bound::Maximum, Limit::of(value)?)),
                "exclusiveMinimum" => shape
                    .bounds
                    .push((Bound::ExclusiveMinimum, Limit::of(value)?)),
                "exclusiveMaximum" => shape
                    .bounds
                    .push((Bound::ExclusiveMaximum, Limit::of(value)?)),
                "minItems" => array.min_items = Some(value.as_u64()?),
                "maxItems" => array.max_items = Some(value.as_u64()?),
                "uniqueItems" => array.unique_items = value.as_bool()?,
                // A schema for every element (the array form of older drafts is refused).
                "items" if !value.is_array() => array.items = Some(self.shape(value, false)?),
                "properties" => {
                    for (name, schema) in value.as_object()? {
                        object
                            .properties
                            .push((name.clone(), Some(self.shape(schema, false)?)));
                    }
                }
                "required" => required.extend(strings(value)?),
                "additionalProperties" => object.additional = Some(self.shape(value, false)?),
                "minProperties" => object.min_properties = Some(value.as_u64()?),
                "maxProperties" => object.max_properties = Some(value.as_u64()?),
                // Definitions hold only what references name; those are compiled where used.
                "$defs" | "definitions" => {}
                // Drafts 4 to 7 ignore the keywords beside a `$ref`; applying them as well
                // only makes the proof stricter.
                "$ref" => rest.reference = Some(self.reference(value.as_str()?)?),
                "allOf" => rest.all.extend(self.shapes(value)?),
                "anyOf" => rest.any.push(self.shapes(value)?),
                "oneOf" => rest.one.push(self.shapes(value)?),
                "not" => rest.not.push(self.shape(value, false)?),
                // Drafts before 7 ignore `if`, `then` and `else`, and drafts before 2019-09
                // `dependentRequired` and `dependentSchemas` (and later ones `dependencies`):
                // applying them as well only makes the proof stricter.
                "if" => condition = Some(self.shape(value, false)?),
                "then" => then = Some(self.shape(value, false)?),
                "else" => otherwise = Some(self.shape(value, false)?),
                "dependentRequired" => {
                    for (name, names) in value.as_object()? {
                        rest.dependent_required
                            .push((name.clone(), strings(names)?));
                    }
                }
                "dependentSchemas" => {
                    for (name, schema) in value.as_object()? {
                        let shape = self.shape(schema, false)?;
                        rest.dependent_schemas.push((name.clone(), shape));
                    }
                }
                "dependencies" => {
                    for (name, dependency) in value.as_object()? {
                        match dependency {
                            Value::Array(_) => rest
                                .dependent_required
                                .push((name.clone(), strings(dependency)?)),
                            schema => {
                                let shape = self.shape(schema, false)?;
                                rest.dependent_schemas.push((name.clone(), shape));
                            }
                        }
                    }
                }
                _ => return None,
            }
        }
        for name in required {
            let at = match object
                .properties
                .iter()
                .position(|(known, _)| *known == name)
            {
                Some(at) => at,
                None => {
                    object.properties.push((name, None));
                    object.properties.len() - 1
                }
            };
            // One bit a property: more than 64 are left to jsonschema.
            object.required |= 1u64.checked_shl(u32::try_from(at).ok()?)?;
        }
        if object.properties.len() > 64 {
            return None;
        }
        let has_object_keywords = !object.properties.is_empty()
            || object.additional.is_some()
            || object.min_properties.is_some()
            || object.max_properties.is_some();
        if has_object_keywords {
            shape.object = Some(Box::new(object));
        }
        let has_string_keywords = string.min_length.is_some()
            || string.max_length.is_some()
            || !string.patterns.is_empty()
            || string.format.is_some();
        if has_string_keywords {
            shape.string = Some(Box::new(string));
        }
        let has_array_keywords = array.min_items.is_some()
            || array.max_items.is_some()
            || array.unique_items
            || array.items.is_some();
        if has_array_keywords {
            shape.array = Some(Box::new(array));
        }
        // Without `if`, `then` and `else` mean nothing.
        rest.conditional = condition.map(|c| (c, then, otherwise));
        let has_subschemas = rest.reference.is_some()
            || !rest.all.is_empty()
            || !rest.any.is_empty()
            || !rest.one.is_empty()
            || !rest.not.is_empty()
            || rest.conditional.is_some()
            || !rest.dependent_required.is_empty()
            || !rest.dependent_schemas.is_empty();
        if has_subschemas {
            shape.rest = Some(Box::new(rest));
        }
        Some(shape.unwrapped())
    }

    /// The subschemas of `allOf`, `anyOf` or `oneOf`.
    fn shapes(&mut self, list: &'s Value) -> Option<Vec<Shape>> {
        list.as_array()?
            .iter()
            .map(|schema| self.shape(schema, false))
            .collect()
    }

    /// The subschema a `$ref` names, compiled in its place. Only references within the
    /// schema itself are followed (`#` and a JSON pointer after it), without percent-escapes,
    /// which jsonschema would decode. An identifier (`$id`, or draft 4's `id`) changes what
    /// references under it mean: [`Compiler::shape`] refuses a subschema with one, and here a
    /// pointer that passes through one is refused. A reference met again while it is being
    /// compiled (a recursive schema) is left to jsonschema.
    fn reference(&mut self, reference: &'s str) -> Option<Shape> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.contains('%') || self.refs.contains(&pointer) || self.refs.len() >= MAX_REFS {
            return None;
        }
        let target = self.root.pointer(pointer)?;
        // Every object on the way below the root, by the pointer's prefixes. (A property
        // named `id` whose schema is an object is not an identifier; one that is a string is
        // refused too, which only costs the proof.)
        let identified = |at: usize| {
            self.root.pointer(&pointer[..at]).is_some_and(|v| {
                ["$id", "id"]
                    .iter()
                    .any(|key| v.get(key).is_some_and(Value::is_string))
            })
        };
        if pointer
            .match_indices('/')
            .skip(1)
            .any(|(at, _)| identified(at))
        {
            return None;
        }
        self.refs.push(pointer);
        let shape = self.shape(target, false);
        self.refs.pop();
        shape
    }

    /// A `pattern`, translated from ECMA-262 syntax exactly as jsonschema translates it, for the
    /// `regex` crate's engines, which `fancy-regex` hands such patterns to (with `regex`'s
    /// default syntax, as here); `None` for a pattern only `fancy-regex` runs (lookaround,
    /// backreferences).
    fn pattern(&mut self, source: &str) -> Option<Pattern> {
        let translated = jsonschema_regex::to_rust_regex(source).ok()?;
        // Once the budget is spent, no DFA is even attempted.
        let dfa = (self.dfa_budget > 0).then(|| {
            dense::Builder::new()
                .configure(
                    dense::Config::new()
                        .dfa_size_limit(Some(DFA_SIZE_LIMIT.min(self.dfa_budget)))
                        .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
                )
                .build(&translated)
                .ok()
        });
        // Unanchored, at the start of a string (no byte before it).
        let at_start = start::Config::new().anchored(Anchored::No);
        match dfa
            .flatten()
            .and_then(|dfa| Some((dfa.start_state(&at_start).ok()?, dfa)))
        {
            Some((start, dfa)) => {
                self.dfa_budget = self.dfa_budget.saturating_sub(dfa.memory_usage());
                Some(Pattern::Dense(Box::new(dfa), start))
            }
            None => Regex::new(&translated).ok().map(Pattern::Regex),
        }
    }
}

/// The most memory one pattern's DFA may take, while it is built and once built; a pattern
/// past it is run by `regex` instead.
const DFA_SIZE_LIMIT: usize = 1 << 20;

/// The most memory all of one schema's dense DFAs may take (the trade's seven patterns take
/// about 40 KiB).
const DFA_BUDGET: usize = 4 << 20;

/// A compiled `pattern`.
#[derive(Debug)]
enum Pattern {
    /// A DFA built ahead of time, and the state a search from the start of a string begins
    /// in: a schema's patterns are short, the strings they check shorter, and `regex`'s lazy
    /// DFA spent more setting each search up than matching.
    Dense(Box<dense::DFA<Vec<u32>>>, StateID),
    /// What the dense DFA cannot take (Unicode word boundaries, patterns past the size limit).
    Regex(Regex),
}

impl Pattern {
    fn is_match(&self, text: &str) -> bool {
        match self {
            // The DFA's own search loop, without setting a search up: the unanchored start
            // state for a string's start is the same for every string, and the first match
            // state (entered a byte after the match) answers, as `earliest` does.
            Pattern::Dense(dfa, start) => {
                let mut state = *start;
                for &byte in text.as_bytes() {
                    state = dfa.next_state(state, byte);
                    if dfa.is_special_state(state) {
                        if dfa.is_match_state(state) {
                            return true;
                        }
                        if dfa.is_dead_state(state) {
                            return false;
                        }
                        // Quit states stop a search in error; none are configured, but
                        // should one arise, the library's search decides.
                        if dfa.is_quit_state(state) {
                            return dfa
                                .try_search_fwd(&Input::new(text).earliest(true))
                                .is_ok_and(|found| found.is_some());
                        }
                    }
                }
                dfa.is_match_state(dfa.next_eoi_state(state))
            }
            Pattern::Regex(regex) => regex.is_match(text),
        }
    }
}

/// A numeric keyword's limit, read once: its sign and digits as [`Decimal`] has them.
#[derive(Debug)]
struct Limit {
    negative: bool,
    whole: String,
    fraction: String,
}

impl Limit {
    /// `None` for a limit written with an exponent.
    fn of(value: &Value) -> Option<Limit> {
        let decimal = Decimal::read(value.as_number()?.as_str())?;
        Some(Limit {
            negative: decimal.negative,
            whole: decimal.whole.to_owned(),
            fraction: decimal.fraction.to_owned(),
        })
    }

    fn decimal(&self) -> Decimal<'_> {
        Decimal {
            negative: self.negative,
            whole: &self.whole,
            fraction: &self.fraction,
        }
    }
}

impl Shape {
    fn holds(&self, value: DocRef<'_, '_>) -> bool {
        if let Some(rest) = &self.rest
            && !rest.holds(value)
        {
            return false;
        }
        let kind = value.kind();
        if let Some(types) = self.types
            && !type_holds(types, kind, value)
        {
            return false;
        }
        if !self
            .values
            .iter()
            .all(|list| list.iter().any(|wanted| same_value(value, wanted)))
        {
            return false;
        }
        match kind {
            Kind::String => self
                .string
                .as_ref()
                .is_none_or(|s| s.holds(value.as_str().unwrap_or_default())),
            Kind::Number => self.number_holds(value.number_text().unwrap_or_default()),
            Kind::Array => self.array.as_ref().is_none_or(|a| a.holds(value)),
            Kind::Object => self.object.as_ref().is_none_or(|o| o.holds(value)),
            Kind::Null | Kind::Bool => true,
        }
    }

    /// A subschema that is only a `$ref` as the subschema it names,
    /// so that checking a value against it takes one step rather than two. Its `type`, if
    /// any, then refutes again: it is the named subschema's own.
    fn unwrapped(mut self) -> Shape {
        let only_rest = self.types.is_none()
            && self.values.is_empty()
            && self.string.is_none()
            && self.bounds.is_empty()
            && self.array.is_none()
            && self.object.is_none();
        if only_rest && let Some(rest) = self.rest.take() {
            match *rest {
                Rest {
                    never: false,
                    reference: Some(reference),
                    all,
                    any,
                    one,
                    not,
                    conditional: None,
                    dependent_required,
                    dependent_schemas,
                } if all.is_empty()
                    && any.is_empty()
                    && one.is_empty()
                    && not.is_empty()
                    && dependent_required.is_empty()
                    && dependent_schemas.is_empty() =>
                {
                    return reference;
                }
                rest => self.rest = Some(Box::new(rest)),
            }
        }
        self
    }

    /// Whether `value` certainly fails this subschema. `oneOf`, `not` and `else` need
    /// subschemas shown to fail, which a proof of validity cannot give; this is what of a
    /// subschema fails certainly and cheaply: the schema `false`, `type`, `enum` and `const`
    /// on strings, booleans and null, `required`, counts and lengths, and what refutes a
    /// member, an element or a subschema applied to the same value. Patterns, formats and
    /// numeric bounds only ever prove.
    fn refutes(&self, value: DocRef<'_, '_>) -> bool {
        if let Some(rest) = &self.rest {
            // Drafts 4 to 7 ignore the keywords beside a `$ref`: only what it names refutes.
            if let Some(reference) = &rest.reference {
                return reference.refutes(value);
            }
            if rest.refutes(value) {
                return true;
            }
        }
        let kind = value.kind();
        if self
            .types
            .is_some_and(|types| types & kind_types(kind) == 0)
        {
            return true;
        }
        // For these kinds, `same_value` is equality itself.
        if matches!(kind, Kind::String | Kind::Bool | Kind::Null)
            && self
                .values
                .iter()
                .any(|list| !list.iter().any(|wanted| same_value(value, wanted)))
        {
            return true;
        }
        match kind {
            Kind::String => self
                .string
                .as_ref()
                .is_some_and(|s| s.refutes(value.as_str().unwrap_or_default())),
            Kind::Array => self.array.as_ref().is_some_and(|a| a.refutes(value)),
            Kind::Object => self.object.as_ref().is_some_and(|o| o.refutes(value)),
            Kind::Number | Kind::Null | Kind::Bool => false,
        }
    }

    fn number_holds(&self, text: &str) -> bool {
        if self.bounds.is_empty() {
            return true;
        }
        // Bounds of 0 (`"minimum": 0`, `"exclusiveMinimum": 0`: amounts and prices) need
        // only the number's sign. A number with an exponent is left to jsonschema, as
        // `Decimal::read` leaves it (jsonschema compares `1e-400` as a float, with 0).
        if self
            .bounds
            .iter()
            .all(|(_, limit)| limit.decimal().sign() == 0)
        {
            let Some(sign) = sign_of(text) else {
                return false;
            };
            return self.bounds.iter().all(|(bound, _)| match bound {
                Bound::Minimum => sign >= 0,
                Bound::Maximum => sign <= 0,
                Bound::ExclusiveMinimum => sign > 0,
                Bound::ExclusiveMaximum => sign < 0,
            });
        }
        let Some(number) = Decimal::read(text) else {
            return false;
        };
        self.bounds.iter().all(|(bound, limit)| {
            let order = number.cmp(&limit.decimal());
            match bound {
                Bound::Minimum => order != Ordering::Less,
                Bound::Maximum => order != Ordering::Greater,
                Bound::ExclusiveMinimum => order == Ordering::Greater,
                Bound::ExclusiveMaximum => order == Ordering::Less,
            }
        })
    }
}

/// The sign of a JSON number literal without an exponent (-1, 0 or 1; `-0` and `0.000` are
/// 0), read as [`Decimal::read`] would order it against 0; `None` for a literal with an
/// exponent.
fn sign_of(text: &str) -> Option<i8> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut nonzero = false;
    for byte in digits.bytes() {
        match byte {
            b'e' | b'E' => return None,
            b'1'..=b'9' => nonzero = true,
            _ => {}
        }
    }
    Some(match (nonzero, negative) {
        (false, _) => 0,
        (true, true) => -1,
        (true, false) => 1,
    })
}

/// The `type` bits a value of `kind` may meet. Which numbers are integers depends on the
/// draft (`1.0`), so a number meets both number bits.
fn kind_types(kind: Kind) -> u8 {
    match kind {
        Kind::Null => Types::NULL,
        Kind::Bool => Types::BOOLEAN,
        Kind::String => Types::STRING,
        Kind::Array => Types::ARRAY,
        Kind::Object => Types::OBJECT,
        Kind::Number => Types::NUMBER | Types::INTEGER,
    }
}

impl Rest {
    // Never inlined: `Shape::holds`, which every subschema's check runs, stays as small as
    // it was before subschemas were composed (most have none).
    #[inline(never)]
    fn holds(&self, value: DocRef<'_, '_>) -> bool {
        !self.never
            && self
                .reference
                .as_ref()
                .is_none_or(|shape| shape.holds(value))
            && self
                .conditional
                .as_ref()
                .is_none_or(|(condition, then, otherwise)| {
                    let then = || then.as_ref().is_none_or(|shape| shape.holds(value));
                    let otherwise = || otherwise.as_ref().is_none_or(|shape| shape.holds(value));
                    if condition.holds(value) {
                        then()
                    } else if condition.refutes(value) {
                        otherwise()
                    } else {
                        then() && otherwise()
                    }
                })
            && self.dependencies_hold(value)
            && self.all.iter().all(|shape| shape.holds(value))
            && self
                .any
                .iter()
                .all(|shapes| shapes.iter().any(|shape| shape.holds(value)))
            && self.one.iter().all(|shapes| exactly_one(shapes, value))
            && self.not.iter().all(|shape| shape.refutes(value))
    }

    /// `dependentRequired` and `dependentSchemas`, which only objects meet.
    fn dependencies_hold(&self, value: DocRef<'_, '_>) -> bool {
        if value.kind() != Kind::Object {
            return true;
        }
        let has = |name: &str| value.get(name).is_some();
        self.dependent_required
            .iter()
            .all(|(name, names)| !has(name) || names.iter().all(|other| has(other)))
            && self
                .dependent_schemas
                .iter()
                .all(|(name, shape)| !has(name) || shape.holds(value))
    }

    /// See [`Shape::refutes`]: what of these subschemas fails certainly (the `$ref` is the
    /// caller's).
    fn refutes(&self, value: DocRef<'_, '_>) -> bool {
        let has = |name: &str| value.kind() == Kind::Object && value.get(name).is_some();
        self.never
            || self.all.iter().any(|shape| shape.refutes(value))
            || self
                .any
                .iter()
                .any(|shapes| shapes.iter().all(|shape| shape.refutes(value)))
            || self
                .one
                .iter()
                .any(|shapes| shapes.iter().all(|shape| shape.refutes(value)))
            || self.not.iter().any(|shape| shape.holds(value))
            || self
                .dependent_required
                .iter()
                .any(|(name, names)| has(name) && names.iter().any(|other| !has(other)))
            || self
                .dependent_schemas
                .iter()
                .any(|(name, shape)| has(name) && shape.refutes(value))
    }
}

/// A list of strings (`required`, `dependentRequired`).
fn strings(list: &Value) -> Option<Vec<String>> {
    list.as_array()?
        .iter()
        .map(|name| name.as_str().map(str::to_owned))
        .collect()
}

/// `oneOf`: one subschema proven to hold and every other refuted.
fn exactly_one(shapes: &[Shape], value: DocRef<'_, '_>) -> bool {
    let mut proven = false;
    for shape in shapes {
        if shape.refutes(value) {
            continue;
        }
        if proven || !shape.holds(value) {
            return false;
        }
        proven = true;
    }
    proven
}

impl StringShape {
    fn holds(&self, text: &str) -> bool {
        // Lengths count characters, as jsonschema does.
        if (self.min_length.is_some() || self.max_length.is_some())
            && !within(
                text.chars().count() as u64,
                self.min_length,
                self.max_length,
            )
        {
            return false;
        }
        self.patterns.iter().all(|pattern| pattern.is_match(text))
            && match self.format {
                None => true,
                Some(Format::Date) => is_date(text),
                Some(Format::DateTime) => is_date_time(text),
            }
    }
}

impl StringShape {
    /// A length out of bounds (see [`Shape::refutes`]).
    fn refutes(&self, text: &str) -> bool {
        (self.min_length.is_some() || self.max_length.is_some())
            && !within(
                text.chars().count() as u64,
                self.min_length,
                self.max_length,
            )
    }
}

impl ArrayShape {
    /// A count out of bounds, or an element refuted (see [`Shape::refutes`]).
    fn refutes(&self, array: DocRef<'_, '_>) -> bool {
        let count = array.count().unwrap_or(0) as u64;
        !within(count, self.min_items, self.max_items)
            || self
                .items
                .as_ref()
                .is_some_and(|items| array.elements().any(|element| items.refutes(element)))
    }

    fn holds(&self, array: DocRef<'_, '_>) -> bool {
        let count = array.count().unwrap_or(0) as u64;
        if !within(count, self.min_items, self.max_items) {
            return false;
        }
        if let Some(items) = &self.items
            && !array.elements().all(|element| items.holds(element))
        {
            return false;
        }
        !self.unique_items || count < 2 || distinct_strings(array)
    }
}

impl ObjectShape {
    fn holds(&self, object: DocRef<'_, '_>) -> bool {
        let count = object.count().unwrap_or(0) as u64;
        if !within(count, self.min_properties, self.max_properties) {
            return false;
        }
        let mut found = 0u64;
        // Members mostly come in the order the schema lists them: each search starts after
        // the property the previous one found.
        let mut next = 0;
        for (key, value) in object.members() {
            let declared = match self.find(key, &mut next) {
                Some(at) => {
                    found |= 1 << at;
                    self.properties[at].1.as_ref()
                }
                None => None,
            };
            let Some(schema) = declared.or(self.additional.as_ref()) else {
                continue;
            };
            if !schema.holds(value) {
                return false;
            }
        }
        found & self.required == self.required
    }

    /// A count out of bounds, a required property missing, or a member refuted (see
    /// [`Shape::refutes`]).
    fn refutes(&self, object: DocRef<'_, '_>) -> bool {
        let count = object.count().unwrap_or(0) as u64;
        if !within(count, self.min_properties, self.max_properties) {
            return true;
        }
        let mut found = 0u64;
        for (key, value) in object.members() {
            // Not `find`: called from here too, the release build stopped inlining it into
            // `holds` (900 instructions more a trade).
            let at = self
                .properties
                .iter()
                .position(|(name, _)| same_key(name, key));
            let declared = match at {
                Some(at) => {
                    found |= 1 << at;
                    self.properties[at].1.as_ref()
                }
                None => None,
            };
            if declared
                .or(self.additional.as_ref())
                .is_some_and(|schema| schema.refutes(value))
            {
                return true;
            }
        }
        found & self.required != self.required
    }

    /// The index of property `key`, searching from `*next` round to where it started.
    fn find(&self, key: &str, next: &mut usize) -> Option<usize> {
        let count = self.properties.len();
        let start = if *next < count { *next } else { 0 };
        let at = (start..count)
            .chain(0..start)
            .find(|&at| same_key(&self.properties[at].0, key))?;
        *next = at + 1;
        Some(at)
    }
}

/// Whether `count` is within the bounds a schema gives (`minLength`/`maxLength`, `minItems`/
/// `maxItems`, `minProperties`/`maxProperties`).
fn within(count: u64, min: Option<u64>, max: Option<u64>) -> bool {
    min.is_none_or(|min| count >= min) && max.is_none_or(|max| count <= max)
}

fn type_holds(types: u8, kind: Kind, value: DocRef<'_, '_>) -> bool {
    match kind {
        Kind::Null => types & Types::NULL != 0,
        Kind::Bool => types & Types::BOOLEAN != 0,
        Kind::String => types & Types::STRING != 0,
        Kind::Array => types & Types::ARRAY != 0,
        Kind::Object => types & Types::OBJECT != 0,
        Kind::Number => {
            types & Types::NUMBER != 0
                // Written without a fraction or an exponent, a number is an integer in every
                // draft; `1.0` is one only from draft 6 on, and is left to jsonschema.
                || (types & Types::INTEGER != 0
                    && value
                        .number_text()
                        .is_some_and(|text| !text.contains(['.', 'e', 'E'])))
        }
    }
}

/// Whether `value` is certainly equal to `wanted`: the same string, boolean or null, or a
/// number with the same literal. (`1.0` and `1` are equal too, but that is left to jsonschema.)
fn same_value(value: DocRef<'_, '_>, wanted: &Value) -> bool {
    match (value.kind(), wanted) {
        (Kind::String, Value::String(text)) => value.as_str() == Some(text),
        (Kind::Bool, Value::Bool(b)) => value.as_bool() == Some(*b),
        (Kind::Null, Value::Null) => true,
        (Kind::Number, Value::Number(n)) => value.number_text() == Some(n.as_str()),
        _ => false,
    }
}

/// Arrays up to this long are checked for repeated strings pair by pair, without sorting.
const PAIRWISE_ITEMS: usize = 8;

/// `uniqueItems` on an array of strings, told apart by their text; `false` (not proven) for
/// an array holding anything else.
fn distinct_strings(array: DocRef<'_, '_>) -> bool {
    if array.count().unwrap_or(0) <= PAIRWISE_ITEMS {
        let mut seen = [""; PAIRWISE_ITEMS];
        for (at, element) in array.elements().enumerate() {
            let Some(text) = element.as_str() else {
                return false;
            };
            if seen[..at].contains(&text) {
                return false;
            }
            seen[at] = text;
        }
        return true;
    }
    let texts: Option<Vec<&str>> = array.elements().map(|e| e.as_str()).collect();
    let Some(mut texts) = texts else {
        return false;
    };
    texts.sort_unstable();
    texts.windows(2).all(|pair| pair[0] != pair[1])
}

/// A number literal without an exponent: its sign and its digits on each side of the point,
/// without leading zeros before it or trailing zeros after it. Ordered exactly, by its
/// digits (`-0` and `0.000` equal `0`).
#[derive(Debug, Clone, Copy)]
struct Decimal<'t> {
    negative: bool,
    whole: &'t str,
    fraction: &'t str,
}

impl<'t> Decimal<'t> {
    /// `None` for a literal with an exponent.
    fn read(text: &'t str) -> Option<Self> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut point = digits.len();
        for (at, byte) in digits.bytes().enumerate() {
            match byte {
                b'.' => point = at,
                b'e' | b'E' => return None,
                _ => {}
            }
        }
        let whole = &digits[..point];
        let fraction = digits.get(point + 1..).unwrap_or_default();
        // Byte loops: `trim_start_matches('0')` goes through the general pattern searcher.
        let leading = whole.bytes().take_while(|&b| b == b'0').count();
        let trailing = fraction.bytes().rev().take_while(|&b| b == b'0').count();
        Some(Decimal {
            negative,
            whole: &whole[leading..],
            fraction: &fraction[..fraction.len() - trailing],
        })
    }

    /// -1, 0 or 1.
    fn sign(&self) -> i8 {
        match (
            self.whole.is_empty() && self.fraction.is_empty(),
            self.negative,
        ) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        }
    }

    fn cmp(&self, other: &Self) -> Ordering {
        match (self.sign(), other.sign()) {
            (x, y) if x != y => x.cmp(&y),
            (0, _) => Ordering::Equal,
            (1, _) => self.magnitude_cmp(other),
            _ => other.magnitude_cmp(self),
        }
    }

    /// Compares absolute values: the longer whole part is larger, then digit by digit.
    fn magnitude_cmp(&self, other: &Self) -> Ordering {
        self.whole
            .len()
            .cmp(&other.whole.len())
            .then_with(|| self.whole.cmp(other.whole))
            .then_with(|| self.fraction.cmp(other.fraction))
    }
}

/// RFC 3339 `full-date`, checked as jsonschema checks `format: date`.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) =
        (digits(&b[0..4]), digits(&b[5..7]), digits(&b[8..10]))
    else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// RFC 3339 `date-time` with an upper-case `T`, seconds up to 59 and an offset of `Z` or
/// `+hh:mm`/`-hh:mm`: every such text passes jsonschema's `format: date-time`. Leap seconds,
/// whose validity depends on the offset, and the lower-case forms are left to jsonschema.
fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 20 || b[10] != b'T' || !is_date(&text[..10]) {
        return false;
    }
    let time = &b[11..];
    if time[2] != b':' || time[5] != b':' {
        return false;
    }
    let (Some(hour), Some(minute), Some(second)) = (
        digits(&time[0..2]),
        digits(&time[3..5]),
        digits(&time[6..8]),
    ) else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    let mut rest = &time[8..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if count == 0 {
            return false;
        }
        rest = &fraction[count..];
    }
    match rest {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            matches!((digits(&[*h1, *h2]), digits(&[*m1, *m2])), (Some(h), Some(m)) if h <= 23 && m <= 59)
        }
        _ => false,
    }
}

/// The number written in `bytes`, all ASCII digits.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |value, &byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u32::from(byte - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::xorshift;
    use crate::validate::{Schema, SchemaOptions};
    use crate::{Doc, Limits};

    fn pick<'t, T>(state: &mut u64, items: &'t [T]) -> &'t T {
        &items[(xorshift(state) % items.len() as u64) as usize]
    }

    fn chance(state: &mut u64, percent: u64) -> bool {
        xorshift(state) % 100 < percent
    }

    const NUMBERS: [&str; 14] = [
        "0",
        "-0",
        "1",
        "1.0",
        "1.5",
        "-1",
        "0.3",
        "0.30",
        "2e1",
        "-2.5",
        "10",
        "0.1",
        "9007199254740993",
        "100.000",
    ];
    const STRINGS: [&str; 18] = [
        "",
        "a",
        "abc",
        "ABC",
        "b c",
        "x",
        "USD",
        "2026-02-29",
        "2024-02-29",
        "2026-13-01",
        "2026-11-27T10:00:00Z",
        "2026-11-27T23:59:60Z",
        "2026-11-27t10:00:00z",
        "2026-11-27T10:00:00.5+01:00",
        "2026-11-27T10:00:00+24:00",
        "a\rc",
        "\u{663}",
        "é",
    ];
    const PATTERNS: [&str; 10] = [
        "^[a-c]+$",
        "b",
        "^a.c$",
        "\\d",
        "^\\w+$",
        "^[A-Z]{3}$",
        "x|y",
        "^\\S*$",
        "(?=a)",
        "^.{2}$",
    ];
    const NAMES: [&str; 4] = ["a", "b", "c", "d"];

    /// A JSON object of some of [`NAMES`] (each kept with chance `percent`), each member's
    /// value the text `value` makes.
    fn members(state: &mut u64, percent: u64, mut value: impl FnMut(&mut u64) -> String) -> String {
        let mut names: Vec<&str> = NAMES.to_vec();
        names.retain(|_| chance(state, percent));
        let members: Vec<String> = names
            .iter()
            .map(|name| format!("\"{name}\":{}", value(state)))
            .collect();
        format!("{{{}}}", members.join(","))
    }

    fn scalar(state: &mut u64) -> String {
        match xorshift(state) % 4 {
            0 => "null".to_owned(),
            1 => pick(state, &["true", "false"]).to_string(),
            2 => pick(state, &NUMBERS).to_string(),
            _ => serde_json::to_string(pick(state, &STRINGS)).expect("a string serialises"),
        }
    }

    /// A JSON text for a random instance.
    fn instance(state: &mut u64, depth: u32) -> String {
        match xorshift(state) % 6 {
            4 if depth > 0 => {
                let items: Vec<String> = (0..xorshift(state) % 4)
                    .map(|_| instance(state, depth - 1))
                    .collect();
                format!("[{}]", items.join(","))
            }
            5 if depth > 0 => members(state, 60, |state| instance(state, depth - 1)),
            _ => scalar(state),
        }
    }

    /// A JSON text for a random schema, mostly within the proof's subset.
    fn schema(state: &mut u64, depth: u32) -> String {
        if chance(state, 5) {
            return pick(state, &["true", "false"]).to_string();
        }
        let mut parts = Vec::new();
        let types = [
            "null", "boolean", "number", "integer", "string", "array", "object",
        ];
        if chance(state, 40) {
            parts.push(if chance(state, 70) {
                format!("\"type\":\"{}\"", pick(state, &types))
            } else {
                format!(
                    "\"type\":[\"{}\",\"{}\"]",
                    pick(state, &types),
                    pick(state, &types)
                )
            });
        }
        if chance(state, 10) {
            let values: Vec<String> = (0..1 + xorshift(state) % 3)
                .map(|_| scalar(state))
                .collect();
            parts.push(format!("\"enum\":[{}]", values.join(",")));
        }
        if chance(state, 5) {
            parts.push(format!("\"const\":{}", scalar(state)));
        }
        for keyword in [
            "minLength",
            "maxLength",
            "minItems",
            "maxItems",
            "minProperties",
            "maxProperties",
        ] {
            if chance(state, 8) {
                parts.push(format!("\"{keyword}\":{}", xorshift(state) % 4));
            }
        }
        if chance(state, 15) {
            let pattern = serde_json::to_string(pick(state, &PATTERNS)).expect("serialises");
            parts.push(format!("\"pattern\":{pattern}"));
        }
        if chance(state, 15) {
            parts.push(format!(
                "\"format\":\"{}\"",
                pick(state, &["date", "date-time", "email"])
            ));
        }
        for keyword in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
            if chance(state, 10) {
                parts.push(format!("\"{keyword}\":{}", pick(state, &NUMBERS)));
            }
        }
        if chance(state, 10) {
            parts.push(format!("\"uniqueItems\":{}", chance(state, 70)));
        }
        if depth > 0 && chance(state, 20) {
            parts.push(format!("\"items\":{}", schema(state, depth - 1)));
        }
        if depth > 0 && chance(state, 35) {
            let properties = members(state, 50, |state| schema(state, depth - 1));
            parts.push(format!("\"properties\":{properties}"));
        }
        if chance(state, 20) {
            let mut names: Vec<String> = NAMES.iter().map(|n| format!("\"{n}\"")).collect();
            names.retain(|_| chance(state, 40));
            parts.push(format!("\"required\":[{}]", names.join(",")));
        }
        if depth > 0 && chance(state, 20) {
            parts.push(format!(
                "\"additionalProperties\":{}",
                schema(state, depth - 1)
            ));
        }
        if chance(state, 3) {
            parts.push("\"$ref\":\"#\"".to_owned());
        }
        if chance(state, 8) {
            let name = pick(state, &DEFINITIONS);
            parts.push(format!("\"$ref\":\"#/$defs/{name}\""));
        }
        if depth > 0 {
            for keyword in ["allOf", "anyOf", "oneOf"] {
                if chance(state, 7) {
                    let list: Vec<String> = (0..1 + xorshift(state) % 3)
                        .map(|_| schema(state, depth - 1))
                        .collect();
                    parts.push(format!("\"{keyword}\":[{}]", list.join(",")));
                }
            }
            if chance(state, 5) {
                parts.push(format!("\"not\":{}", schema(state, depth - 1)));
            }
            if chance(state, 8) {
                parts.push(format!("\"if\":{}", schema(state, depth - 1)));
            }
            for keyword in ["then", "else"] {
                if chance(state, 6) {
                    parts.push(format!("\"{keyword}\":{}", schema(state, depth - 1)));
                }
            }
            if chance(state, 8) {
                let schemas = members(state, 40, |state| schema(state, depth - 1));
                parts.push(format!("\"dependentSchemas\":{schemas}"));
            }
        }
        if chance(state, 5) {
            let lists = members(state, 40, |state| {
                let mut names: Vec<String> = NAMES.iter().map(|n| format!("\"{n}\"")).collect();
                names.retain(|_| chance(state, 30));
                format!("[{}]", names.join(","))
            });
            parts.push(format!("\"dependentRequired\":{lists}"));
        }
        if chance(state, 4) {
            // Draft 7's form: a list of names or a schema for each property.
            let dependencies = members(state, 40, |state| {
                if chance(state, 50) {
                    format!("[\"{}\"]", pick(state, &NAMES))
                } else {
                    schema(state, 0)
                }
            });
            parts.push(format!("\"dependencies\":{dependencies}"));
        }
        format!("{{{}}}", parts.join(","))
    }

    /// The names under `$defs` that generated references use.
    const DEFINITIONS: [&str; 3] = ["d0", "d1", "d2"];

    /// A random root schema: [`schema`], with definitions for its references (which may
    /// refer to each other, and so form cycles) half the time.
    fn root_schema(state: &mut u64, depth: u32) -> String {
        let body = schema(state, depth);
        if body.starts_with('{') && chance(state, 50) {
            let definitions: Vec<String> = DEFINITIONS
                .iter()
                .map(|name| format!("\"{name}\":{}", schema(state, 1)))
                .collect();
            let rest = &body[1..];
            let comma = if rest == "}" { "" } else { "," };
            return format!("{{\"$defs\":{{{}}}{comma}{rest}", definitions.join(","));
        }
        body
    }

    fn value(text: &str) -> Value {
        serde_json::from_str(text).expect("generated JSON reads")
    }

    /// Whatever the proof accepts, jsonschema accepts (soundness); and the proof accepts most
    /// of what jsonschema accepts under the schemas it covers (it is not vacuous).
    #[test]
    fn whatever_a_proof_accepts_jsonschema_accepts() {
        let mut state = 0x243F_6A88_85A3_08D3;
        let (mut covered, mut valid, mut proven) = (0, 0, 0);
        let mut by_composition = [(0, 0, 0); COMPOSITIONS.len()];
        for _ in 0..3_000 {
            let schema_text = root_schema(&mut state, 2);
            let schema_value = value(&schema_text);
            let formats = chance(&mut state, 70);
            // Draft 7 ignores the keywords beside a `$ref`; 2020-12 (the default) applies them.
            let draft = chance(&mut state, 25).then_some(Draft::Draft7);
            let opts = SchemaOptions {
                validate_formats: formats,
                draft,
                ..SchemaOptions::default()
            };
            let Ok(compiled) = Schema::compile(&schema_value, &opts) else {
                continue;
            };
            let Some(proof) = Proof::compile(&schema_value, formats) else {
                continue;
            };
            covered += 1;
            let groups: Vec<usize> = (0..COMPOSITIONS.len())
                .filter(|&i| schema_text.contains(COMPOSITIONS[i]))
                .collect();
            for &i in &groups {
                by_composition[i].0 += 1;
            }
            for _ in 0..40 {
                let text = instance(&mut state, 2);
                let doc = Doc::parse(&text, &Limits::default()).expect("generated JSON reads");
                let judged = compiled.inner.doc_validator.is_valid(doc.root());
                assert_eq!(
                    judged,
                    compiled.is_valid(&value(&text)),
                    "{schema_text} {text}"
                );
                let holds = proof.holds(doc.root());
                assert!(
                    !holds || judged,
                    "the proof accepts what jsonschema rejects: schema {schema_text}, \
                     formats {formats}, draft {draft:?}, instance {text}"
                );
                valid += usize::from(judged);
                proven += usize::from(holds);
                for &i in &groups {
                    by_composition[i].1 += usize::from(judged);
                    by_composition[i].2 += usize::from(holds);
                }
            }
        }
        assert!(covered > 1_000, "{covered} schemas with a proof");
        assert!(
            proven * 10 > valid * 9,
            "{proven} of {valid} valid instances proven"
        );
        // Each way of composing subschemas is covered, and proves much of what is valid.
        for (name, (schemas, valid, proven)) in COMPOSITIONS.iter().zip(by_composition) {
            eprintln!("{name}: {schemas} schemas, {proven} of {valid} valid instances proven");
            assert!(schemas > 150, "{name}: {schemas} schemas with a proof");
            assert!(
                proven * 10 > valid * 8,
                "{name}: {proven} of {valid} valid instances proven"
            );
        }
    }

    /// How the generated schemas compose subschemas, as their text shows it.
    const COMPOSITIONS: [&str; 9] = [
        "\"$ref\":\"#/$defs/",
        "allOf",
        "anyOf",
        "oneOf",
        "\"not\"",
        "\"if\"",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
    ];

    #[test]
    fn schemas_outside_the_subset_have_no_proof() {
        for schema in [
            // References: recursive, to another document, to an anchor, percent-escaped,
            // through or to a subschema with an identifier of its own.
            r##"{"$ref": "#"}"##,
            r##"{"properties": {"a": {"$ref": "#"}}}"##,
            r##"{"$ref": "#/$defs/a", "$defs": {"a": {"items": {"$ref": "#/$defs/a"}}}}"##,
            r#"{"$ref": "other.json"}"#,
            r##"{"$ref": "#a", "$defs": {"a": {"$anchor": "a"}}}"##,
            r##"{"$ref": "#/$defs/a%20b", "$defs": {"a%20b": true, "a b": false}}"##,
            r##"{"$ref": "#/$defs/a", "$defs": {"a": {"$id": "https://example.com/a"}}}"##,
            r##"{"$ref": "#/$defs/a/properties/b",
                 "$defs": {"a": {"$id": "https://example.com/a", "properties": {"b": true}}}}"##,
            r##"{"$ref": "#/$defs/missing"}"##,
            r#"{"properties": {"a": {"patternProperties": {"x": true}}}}"#,
            r#"{"pattern": "(?=a)"}"#,
            r#"{"format": "email"}"#,
            r#"{"items": [true]}"#,
            r#"{"minimum": 1e2}"#,
            r#"{"exclusiveMinimum": true, "minimum": 0}"#,
            r#"{"$schema": "https://example.com/my-meta"}"#,
            r#"{"properties": {"a": {"$id": "https://example.com/a"}}}"#,
            r#"{"unknownKeyword": 1}"#,
        ] {
            assert!(Proof::compile(&value(schema), true).is_none(), "{schema}");
        }
        // Without format assertion, any format is an annotation.
        assert!(Proof::compile(&value(r#"{"format": "email"}"#), false).is_some());
    }

    /// Drafts 4 to 7 ignore the keywords beside a `$ref`, so under `not` or `oneOf` such a
    /// `type` must not count as refuting a value: here draft 7 finds the instance invalid
    /// (the `not` sees only `true`), and the proof must not accept it.
    #[test]
    fn keywords_beside_a_reference_refute_nothing() {
        for schema in [
            r##"{"not": {"$ref": "#/definitions/a", "type": "string"}, "definitions": {"a": true}}"##,
            r##"{"oneOf": [{"type": "number"}, {"$ref": "#/definitions/a", "type": "string"}],
                 "definitions": {"a": true}}"##,
        ] {
            let schema = value(schema);
            let opts = SchemaOptions {
                draft: Some(Draft::Draft7),
                ..SchemaOptions::default()
            };
            let compiled = Schema::compile(&schema, &opts).expect("compiles");
            let proof = Proof::compile(&schema, true).expect("within the subset");
            let doc = Doc::parse("1", &Limits::default()).expect("reads");
            assert!(!compiled.is_valid(&value("1")), "{schema}");
            assert!(!proof.holds(doc.root()), "{schema}");
        }
    }

    /// A refutation is a certainty: a subschema that holds (or may) is never taken as failed.
    /// Each schema here is failed by its instance only because an inner subschema holds
    /// without the proof being able to show it (`1.0` is an integer from draft 6 on), or
    /// holds through another alternative.
    #[test]
    fn refutations_are_certain() {
        for (schema, instance) in [
            // `if` holds unproven: `then` applies, and fails.
            (
                r#"{"if": {"type": "integer"}, "then": {"minimum": 5}}"#,
                "1.0",
            ),
            // A member holds unproven: `not` fails.
            (
                r#"{"not": {"properties": {"a": {"type": "integer"}}}}"#,
                r#"{"a": 1.0}"#,
            ),
            // One alternative of `anyOf` is refuted, another holds: `not` fails.
            (
                r#"{"not": {"anyOf": [{"type": "string"}, {"type": "number"}]}}"#,
                "1",
            ),
            // The second alternative holds unproven: `oneOf` has two.
            (
                r#"{"oneOf": [{"type": "array"}, {"items": {"type": "integer"}}]}"#,
                "[1.0]",
            ),
        ] {
            let schema = value(schema);
            let compiled = Schema::compile(&schema, &SchemaOptions::default()).expect("compiles");
            let proof = Proof::compile(&schema, true).expect("within the subset");
            let doc = Doc::parse(instance, &Limits::default()).expect("reads");
            assert!(!compiled.is_valid(&value(instance)), "{schema} {instance}");
            assert!(!proof.holds(doc.root()), "{schema} {instance}");
        }
        // What refutation is for: a union told apart by a member's value.
        let union = value(
            r#"{"oneOf": [
                {"properties": {"kind": {"const": "a"}, "x": {"type": "string"}}, "required": ["kind"]},
                {"properties": {"kind": {"const": "b"}, "x": {"type": "number"}}, "required": ["kind"]}
            ]}"#,
        );
        let proof = Proof::compile(&union, true).expect("within the subset");
        for (instance, proven) in [
            (r#"{"kind": "a", "x": "s"}"#, true),
            (r#"{"kind": "b", "x": 1}"#, true),
            (r#"{"kind": "c"}"#, false),
            (r#"{"kind": "a", "x": 1}"#, false),
        ] {
            let doc = Doc::parse(instance, &Limits::default()).expect("reads");
            assert_eq!(proof.holds(doc.root()), proven, "{instance}");
        }
    }

    /// References that each lead into deeply nested subschemas stack their depths; past
    /// [`MAX_SHAPE_DEPTH`] the schema is left to jsonschema, and compiling it stays within a
    /// 2 MiB stack (a tokio thread's) even in a debug build.
    #[test]
    fn deeply_nested_references_are_left_to_jsonschema() {
        // Each definition nests 60 `allOf`s (120 levels of JSON, within the default limits)
        // around a reference to the next: 30 of them are 1,800 levels of subschemas.
        let nested =
            |inner: String| (0..60).fold(inner, |inner, _| format!(r#"{{"allOf": [{inner}]}}"#));
        let definitions: Vec<String> = (0..30)
            .map(|at| {
                let next = format!(r##"{{"$ref": "#/$defs/d{}"}}"##, at + 1);
                format!(r#""d{at}": {}"#, nested(next))
            })
            .collect();
        let schema = format!(
            r##"{{"$ref": "#/$defs/d0", "$defs": {{{}, "d30": true}}}}"##,
            definitions.join(",")
        );
        let schema = value(&schema);
        let compiled = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || Proof::compile(&schema, true).is_some())
            .expect("spawns")
            .join()
            .expect("compiles without overflowing the stack");
        assert!(!compiled);
        // One definition's depth alone is proven.
        let shallow = value(&format!(
            r#"{{"properties": {{"a": {}}}}}"#,
            nested("true".into())
        ));
        assert!(Proof::compile(&shallow, true).is_some());
    }

    /// Definitions referred to several times are compiled where each reference is; past
    /// [`MAX_SHAPES`] the schema is left to jsonschema rather than compiled without end.
    #[test]
    fn references_that_multiply_are_bounded() {
        // Each level refers to the next twice: 2^30 subschemas if followed to the end.
        let mut definitions = vec![r#""l30": {"type": "string"}"#.to_owned()];
        for level in 0..30 {
            let next = level + 1;
            definitions.push(format!(
                r##""l{level}": {{"allOf": [{{"$ref": "#/$defs/l{next}"}}, {{"$ref": "#/$defs/l{next}"}}]}}"##
            ));
        }
        let schema = format!(
            r##"{{"$ref": "#/$defs/l0", "$defs": {{{}}}}}"##,
            definitions.join(",")
        );
        assert!(Proof::compile(&value(&schema), true).is_none());
        // A chain of references one inside another, longer than MAX_REFS, each once.
        let chain: Vec<String> = (0..1_000)
            .map(|at| format!(r##""c{at}": {{"$ref": "#/$defs/c{}"}}"##, at + 1))
            .collect();
        let deep = format!(
            r##"{{"$ref": "#/$defs/c0", "$defs": {{{}, "c1000": true}}}}"##,
            chain.join(",")
        );
        assert!(Proof::compile(&value(&deep), true).is_none());
        // The same chain ten levels long (about 4,000 subschemas) is proven.
        let short = schema.replace("#/$defs/l0\"", "#/$defs/l20\"");
        let proof = Proof::compile(&value(&short), true).expect("within the bound");
        let doc = Doc::parse(r#""text""#, &Limits::default()).expect("reads");
        assert!(proof.holds(doc.root()));
        let doc = Doc::parse("1", &Limits::default()).expect("reads");
        assert!(!proof.holds(doc.root()));
    }

    #[test]
    fn the_trade_documents_are_proven() {
        let pairs = [
            (
                include_str!("../../../../examples/trade/input.schema.json"),
                include_str!("../../../../examples/trade/trade.json"),
            ),
            (
                include_str!("../../../../examples/trade/input-modular.schema.json"),
                include_str!("../../../../examples/trade/trade.json"),
            ),
            (
                include_str!("../../../../examples/trade/input-modular.schema.json"),
                include_str!("../../../../examples/trade/trade-precision.json"),
            ),
            (
                include_str!("../../../../examples/trade/input.schema.json"),
                include_str!("../../../../examples/trade/trade-precision.json"),
            ),
            (
                include_str!("../../../../examples/trade/output.schema.json"),
                include_str!("../../../../examples/trade/expected.json"),
            ),
            (
                include_str!("../../../../examples/trade/output.schema.json"),
                include_str!("../../../../examples/trade/expected-precision.json"),
            ),
        ];
        for (schema, document) in pairs {
            let proof =
                Proof::compile(&value(schema), true).expect("the trade schemas have a proof");
            let doc = Doc::parse(document, &Limits::default()).expect("the document reads");
            assert!(proof.holds(doc.root()), "{document}");
        }
    }

    /// Every member of the trade replaced by values of every kind: the proof never accepts
    /// what jsonschema rejects, and accepts what jsonschema accepts.
    #[test]
    fn altered_trades_are_judged_as_jsonschema_judges_them() {
        for schema in [
            include_str!("../../../../examples/trade/input.schema.json"),
            // The same constraints through `$ref`, `allOf`, `anyOf` and `oneOf`.
            include_str!("../../../../examples/trade/input-modular.schema.json"),
        ] {
            judge_altered_trades(schema);
        }
    }

    fn judge_altered_trades(schema: &str) {
        let schema_value = value(schema);
        let schema = Schema::compile(&schema_value, &SchemaOptions::default()).expect("compiles");
        let proof = Proof::compile(&schema_value, true).expect("has a proof");
        let trade = value(include_str!("../../../../examples/trade/trade.json"));
        let mut replacements: Vec<String> = NUMBERS.iter().map(|n| (*n).to_owned()).collect();
        replacements.extend(
            STRINGS
                .iter()
                .map(|s| serde_json::to_string(s).expect("serialises")),
        );
        replacements.extend(
            [
                "null",
                "true",
                "[]",
                "{}",
                "[\"a\",\"a\"]",
                "[\"a\",\"b\"]",
                "\"EURUSD\"",
                "\"5493001KJTIIGC8Y1R12\"",
                "\"T-2026-1\"",
                "\"2026-11-27\"",
                "\"buy\"",
                "\"SELL\"",
                "\"fx_spot\"",
                "{\"type\":\"fx_spot\"}",
                "{\"id\":\"A\",\"x\":1}",
                "[{\"type\":\"a\",\"amount\":1,\"currency\":\"EUR\"}]",
                "[{\"type\":\"a\",\"amount\":-1,\"currency\":\"EUR\"}]",
                "[{\"type\":\"a\",\"amount\":1e1,\"currency\":\"EUR\"}]",
            ]
            .map(str::to_owned),
        );
        let mut paths = Vec::new();
        leaf_paths(&trade, &mut Vec::new(), &mut paths);
        let (mut checked, mut agreed) = (0, 0);
        for path in &paths {
            for replacement in &replacements {
                let mut altered = trade.clone();
                *pointer_mut(&mut altered, path) = value(replacement);
                let text = serde_json::to_string(&altered).expect("serialises");
                let doc = Doc::parse(&text, &Limits::default()).expect("reads");
                let judged = schema.is_valid(&value(&text));
                let holds = proof.holds(doc.root());
                assert!(!holds || judged, "accepted {text}");
                checked += 1;
                agreed += usize::from(holds == judged);
            }
        }
        assert!(checked > 1_000, "{checked}");
        assert!(agreed * 100 > checked * 95, "{agreed} of {checked} agree");
    }

    fn leaf_paths(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(at.clone());
        match value {
            Value::Object(members) => {
                for (key, member) in members {
                    at.push(key.clone());
                    leaf_paths(member, at, out);
                    at.pop();
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    at.push(index.to_string());
                    leaf_paths(item, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }

    fn pointer_mut<'v>(value: &'v mut Value, path: &[String]) -> &'v mut Value {
        path.iter().fold(value, |node, step| match node {
            Value::Array(items) => &mut items[step.parse::<usize>().expect("an index")],
            node => &mut node[step.as_str()],
        })
    }

    /// The DFA answers as `regex` does, on patterns of every kind jsonschema's translation
    /// produces and on strings of every class they test.
    #[test]
    fn patterns_match_as_regex_matches() {
        let more = [
            "^T-[0-9]{4}-[0-9]+$",
            "^[0-9]+(\\.[0-9]+)?$",
            "\\bword\\b",
            "^\\p{L}+$",
            "[^a]",
            "^$",
            "é",
            "(?i)abc",
            "^\\s",
            "a{2,3}",
            "^[\\u0041-\\u005A]$",
        ];
        // All but the lookahead, which only fancy-regex runs.
        let patterns = PATTERNS.iter().chain(&more).filter(|p| **p != "(?=a)");
        let texts = [
            "",
            "a",
            "abc",
            "ABC",
            "aXc",
            "a\nc",
            "a\rc",
            "\u{663}",
            "7",
            "word",
            "a word b",
            "é",
            "ÉCOLE",
            "T-2026-1",
            "1.5",
            "1.",
            " x",
            "\u{2028}",
            "aa",
            "aaaa",
            "Z",
            "\u{1F600}",
        ];
        let (mut dense, mut total) = (0, 0);
        for &source in patterns {
            let translated = jsonschema_regex::to_rust_regex(source).expect("translates");
            let reference = Regex::new(&translated).expect("compiles");
            let mut compiler = Compiler::new(&Value::Null, true);
            let compiled = compiler.pattern(source).expect("compiles");
            dense += usize::from(matches!(compiled, Pattern::Dense(..)));
            total += 1;
            for text in texts {
                assert_eq!(
                    compiled.is_match(text),
                    reference.is_match(text),
                    "{source} on {text:?}"
                );
            }
        }
        assert!(
            dense > total / 2 && dense < total,
            "{dense} of {total} patterns on the DFA"
        );
    }

    /// A schema's dense DFAs stay within its budget; the patterns past it run on `regex`.
    #[test]
    fn patterns_past_the_budget_run_on_regex() {
        let properties: Vec<String> = (0..40)
            // A DFA for `a[a-z]{n}$` remembers where each of the last `n` letters was an `a`:
            // 2^n states.
            .map(|i| format!(r#""p{i}": {{"pattern": "a[a-z]{{{}}}$"}}"#, 12 + i % 4))
            .collect();
        let schema = value(&format!(
            r#"{{"properties": {{{}}}}}"#,
            properties.join(",")
        ));
        let proof = Proof::compile(&schema, true).expect("the schema has a proof");
        let (mut dense, mut lazy, mut memory) = (0, 0, 0);
        let object = proof.root.object.as_ref().expect("an object shape");
        for (_, shape) in &object.properties {
            let string = shape
                .as_ref()
                .and_then(|s| s.string.as_ref())
                .expect("a string shape");
            match &string.patterns[0] {
                Pattern::Dense(dfa, _) => {
                    dense += 1;
                    memory += dfa.memory_usage();
                }
                Pattern::Regex(_) => lazy += 1,
            }
        }
        assert!(dense > 0 && lazy > 0, "{dense} dense, {lazy} lazy");
        assert!(
            memory <= DFA_BUDGET + DFA_SIZE_LIMIT,
            "{memory} bytes of DFAs"
        );
        let holds = |text: &str| {
            let doc = Doc::parse(text, &Limits::default()).expect("reads");
            proof.holds(doc.root())
        };
        assert!(holds(
            r#"{"p0": "xabcdefghijklm", "p39": "azzzzzzzzzzzzzzz"}"#
        ));
        assert!(!holds(r#"{"p0": "xabcdefghijklm", "p39": "a"}"#));
    }

    fn compare_decimals(a: &str, b: &str) -> Option<Ordering> {
        Some(Decimal::read(a)?.cmp(&Decimal::read(b)?))
    }

    #[test]
    fn repeated_strings_are_found_in_arrays_of_any_length() {
        let mut state = 0x1319_8A2E_0370_7344;
        for _ in 0..5_000 {
            let length = xorshift(&mut state) % 20;
            let items: Vec<String> = (0..length)
                .map(|_| format!("\"{}\"", xorshift(&mut state) % 40))
                .collect();
            let text = format!("[{}]", items.join(","));
            let doc = Doc::parse(&text, &Limits::default()).expect("reads");
            let distinct: std::collections::HashSet<&String> = items.iter().collect();
            assert_eq!(
                distinct_strings(doc.root()),
                distinct.len() == items.len(),
                "{text}"
            );
        }
        let doc = Doc::parse(r#"["a", 1]"#, &Limits::default()).expect("reads");
        assert!(!distinct_strings(doc.root()), "only strings are told apart");
    }

    #[test]
    fn decimals_are_ordered_exactly() {
        let ordered = [
            "-100.5",
            "-100",
            "-2.5",
            "-1",
            "-0.30000000000000001",
            "-0.3",
            "0",
            "0.1",
            "0.30000000000000001",
            "0.31",
            "1",
            "1.000000000000000000001",
            "2",
            "9007199254740992",
            "9007199254740993",
            "12345678901234567890",
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(compare_decimals(a, b), Some(i.cmp(&j)), "{a} {b}");
            }
        }
        for (a, b) in [
            ("0", "-0"),
            ("-0.000", "0"),
            ("1.50", "1.5"),
            ("007", "7.0"),
        ] {
            assert_eq!(compare_decimals(a, b), Some(Ordering::Equal), "{a} {b}");
        }
        assert_eq!(compare_decimals("1e2", "100"), None);
    }

    /// Bounds of 0, decided by a number's sign alone: what the proof accepts jsonschema
    /// accepts (numbers with exponents, negative zero, long fractions), and it proves every
    /// number without an exponent that meets the bound.
    #[test]
    fn zero_bounds_judge_as_jsonschema_judges() {
        let numbers = [
            "0",
            "-0",
            "0.0",
            "-0.000",
            "0e5",
            "-0E-5",
            "0.000e+400",
            "1",
            "-1",
            "0.001",
            "-0.001",
            "1e-400",
            "-1e-400",
            "2.5E3",
            "-2.5e3",
            "0.0000000000000000000001",
            "-0.0000000000000000000001",
            "100000000000000000000000",
            "9007199254740993",
            "-9007199254740993",
            "2718350.0000000",
            "0.50e0",
        ];
        for keyword in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
            for limit in ["0", "0.0", "-0"] {
                let schema_value = value(&format!(r#"{{"{keyword}": {limit}}}"#));
                let proof = Proof::compile(&schema_value, true).expect("a proof");
                let schema =
                    Schema::compile(&schema_value, &SchemaOptions::default()).expect("compiles");
                for number in numbers {
                    let doc = Doc::parse(number, &Limits::default()).expect("reads");
                    let (proven, valid) =
                        (proof.holds(doc.root()), schema.is_valid(&value(number)));
                    assert!(!proven || valid, "{number} against {keyword} {limit}");
                    if valid && !number.contains(['e', 'E']) {
                        assert!(proven, "{number} against {keyword} {limit} not proven");
                    }
                }
            }
        }
    }

    /// Dates and times built from random digits around every field's limits: whatever the
    /// proof's format checks accept, jsonschema's accept.
    #[test]
    fn dates_and_times_the_proof_accepts_jsonschema_accepts() {
        let date = Schema::compile(&value(r#"{"format":"date"}"#), &SchemaOptions::default())
            .expect("compiles");
        let date_time = Schema::compile(
            &value(r#"{"format":"date-time"}"#),
            &SchemaOptions::default(),
        )
        .expect("compiles");
        let mut state = 0xB7E1_5162_8AED_2A6A;
        let two = |state: &mut u64, most: u64| format!("{:02}", xorshift(state) % most);
        let (mut dates, mut times) = (0, 0);
        for _ in 0..100_000 {
            let year = pick(&mut state, &["2024", "2026", "1900", "2000", "0000"]).to_string();
            let day = format!("{year}-{}-{}", two(&mut state, 14), two(&mut state, 33));
            let zone = match xorshift(&mut state) % 4 {
                0 => "Z".to_owned(),
                1 => pick(&mut state, &["z", "", "+1:00"]).to_string(),
                _ => format!(
                    "{}{}:{}",
                    pick(&mut state, &["+", "-"]),
                    two(&mut state, 26),
                    two(&mut state, 61)
                ),
            };
            let fraction = pick(&mut state, &["", ".5", ".", ".123456"]).to_string();
            let separator = pick(&mut state, &["T", "T", "t", " "]).to_string();
            let stamp = format!(
                "{day}{separator}{}:{}:{}{fraction}{zone}",
                two(&mut state, 25),
                two(&mut state, 61),
                two(&mut state, 62)
            );
            let as_doc = |text: &str| serde_json::to_string(text).expect("serialises");
            let text = as_doc(&day);
            let doc = Doc::parse(&text, &Limits::default()).expect("reads");
            if is_date(&day) {
                dates += 1;
                assert!(date.inner.doc_validator.is_valid(doc.root()), "{day}");
            }
            let text = as_doc(&stamp);
            let doc = Doc::parse(&text, &Limits::default()).expect("reads");
            if is_date_time(&stamp) {
                times += 1;
                assert!(
                    date_time.inner.doc_validator.is_valid(doc.root()),
                    "{stamp}"
                );
            }
        }
        assert!(
            dates > 10_000 && times > 1_000,
            "{dates} dates, {times} times accepted"
        );
    }
}
