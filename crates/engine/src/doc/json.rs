//! [`Doc`] as a representation jsonschema validates in place (`jsonschema::json::Json`), so a
//! document is validated without first becoming a [`Value`].
//!
//! Numbers answer from their text exactly as serde_json's `Number` does under
//! `arbitrary_precision` (`as_u64`, `as_i64` and `as_f64` parse the text; a non-finite `f64`
//! is none), so a schema's numeric keywords see the same numbers either way. What jsonschema
//! reads rarely (errors, `const`, `enum` beyond strings, `uniqueItems`) goes through
//! [`DocRef::to_value`].

use std::borrow::Cow;

use jsonschema::json::{Array, Json, JsonNumber, Node, NodeIdentity, Object};
use jsonschema::types::JsonType;
use serde_json::Number;

use super::{Doc, DocRef, Elements, Kind, Members};
use crate::Value;

/// The representation: nodes are [`DocRef`]s.
pub struct DocJson;

impl Json for DocJson {
    type Node<'a> = DocRef<'a, 'a>;
    type PreparedKey = Box<str>;
    // A lookup is a pass over the members (no hash to compute), so one pass that checks
    // several names at once is cheaper than a lookup per name for any object a schema's
    // `required` would meet; the bound only keeps jsonschema's product from overflowing.
    const KEYS_PER_LOOKUP: usize = 1 << 16;
    type StringBuffer = Option<Doc<'static>>;

    fn prepare_key(key: &str) -> Box<str> {
        Box::from(key)
    }

    fn with_string_node<T>(
        buffer: &mut Option<Doc<'static>>,
        string: &str,
        f: impl FnOnce(<Self as Json>::Node<'_>) -> T,
    ) -> T {
        f(buffer.insert(Doc::string(string.to_owned())).root())
    }
}

impl<'a> Node<'a, DocJson> for DocRef<'a, 'a> {
    type Object = DocRef<'a, 'a>;
    type Array = DocRef<'a, 'a>;
    type Number = DocNumber<'a>;

    fn as_object(&self) -> Option<DocRef<'a, 'a>> {
        (self.kind() == Kind::Object).then_some(*self)
    }

    fn as_array(&self) -> Option<DocRef<'a, 'a>> {
        (self.kind() == Kind::Array).then_some(*self)
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        self.as_str().map(Cow::Borrowed)
    }

    fn as_number(&self) -> Option<DocNumber<'a>> {
        self.number_text().map(DocNumber)
    }

    fn as_boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn is_null(&self) -> bool {
        self.kind() == Kind::Null
    }

    fn json_type(&self) -> JsonType {
        match self.kind() {
            Kind::Null => JsonType::Null,
            Kind::Bool => JsonType::Boolean,
            Kind::Number => JsonType::Number,
            Kind::String => JsonType::String,
            Kind::Array => JsonType::Array,
            Kind::Object => JsonType::Object,
        }
    }

    fn equals_value(&self, expected: &Value) -> bool {
        // `enum` and `const` of strings are the common case, and need no conversion.
        match (self.as_str(), expected) {
            (Some(text), Value::String(wanted)) => text == wanted,
            (Some(_), _) => false,
            (None, _) => jsonschema::json::cmp::equal(&self.to_value(), expected),
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(DocRef::to_value(self))
    }

    fn identity(&self) -> Option<NodeIdentity> {
        let (document, index) = self.address();
        Some(NodeIdentity::tagged(document, u32::try_from(index).ok()?))
    }
}

impl<'a> Object<'a, DocJson> for DocRef<'a, 'a> {
    type Node = DocRef<'a, 'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a, 'a>;

    fn len(&self) -> usize {
        DocRef::count(self).unwrap_or(0)
    }

    fn get(&self, key: &Box<str>) -> Option<DocRef<'a, 'a>> {
        DocRef::get(self, key)
    }

    fn members(&self) -> Members<'a, 'a> {
        DocRef::members(self)
    }
}

impl<'a> Array<'a, DocJson> for DocRef<'a, 'a> {
    type Node = DocRef<'a, 'a>;
    type ElementsIter = Elements<'a, 'a>;

    fn len(&self) -> usize {
        DocRef::count(self).unwrap_or(0)
    }

    fn elements(&self) -> Elements<'a, 'a> {
        DocRef::elements(self)
    }

    /// `uniqueItems`: an array of strings (tags, codes) is compared as text; anything else as
    /// jsonschema compares it, on `Value`s (where `1` equals `1.0`).
    fn is_unique(&self) -> bool {
        let strings: Option<Vec<&str>> = DocRef::elements(self).map(|e| e.as_str()).collect();
        match strings {
            Some(mut texts) => {
                texts.sort_unstable();
                texts.windows(2).all(|pair| pair[0] != pair[1])
            }
            None => {
                let values: Vec<Cow<'_, Value>> = DocRef::elements(self)
                    .map(|e| Cow::Owned(e.to_value()))
                    .collect();
                jsonschema::json::unique::is_unique(&values)
            }
        }
    }
}

/// A number of a [`Doc`]: its literal text.
#[derive(Debug, Clone, Copy)]
pub struct DocNumber<'a>(&'a str);

impl JsonNumber for DocNumber<'_> {
    fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    fn as_f64(&self) -> Option<f64> {
        self.0.parse::<f64>().ok().filter(|float| float.is_finite())
    }

    fn as_str(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.0)
    }

    /// An integer literal is an integer; anything written with a fraction or an exponent is
    /// decided as jsonschema decides it (`1.0` is an integer from draft 6 on), on a `Number`.
    fn is_integer(&self) -> bool {
        !self.0.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
            || JsonNumber::is_integer(&*self.to_number())
    }

    fn to_number(&self) -> Cow<'_, Number> {
        // The parser checked the text against the number grammar.
        Cow::Owned(Number::from_string_unchecked(self.0.to_owned()))
    }
}
