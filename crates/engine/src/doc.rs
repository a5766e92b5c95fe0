//! The engine's own document type: a parsed document that borrows from the request's bytes.
//!
//! A [`Value`] allocates every key, every string and every number that is not a machine
//! integer, and hashes every key with SipHash as it goes into its map; for the 686-byte trade
//! that is most of the parse's 37k instructions (`docs/benchmarks.md`, "Fifth machine:
//! instructions per request"), and lookups hash again. A [`Doc`] is one vector of nodes in
//! document order: strings without escapes and every number's text point into the input,
//! containers record their length and where their last descendant ends, and an object is
//! searched by comparing keys. Nothing else is allocated. No crate keeps numbers as their
//! text while borrowing strings (serde_json's borrowed forms either lose number text or keep
//! a container's raw text only), hence this module.
//!
//! [`Doc::parse`] accepts exactly the documents [`parse_document`](crate::parse_document)
//! accepts under the same [`Limits`], except that it declines any document that repeats an
//! object key: the caller then takes `parse_document`, which refuses the document or, with
//! duplicates allowed, keeps the last value in the first one's place. It reports no errors
//! either: on `None` the caller gets the exact error from `parse_document`, which reads the
//! document again (a refused document is the rare case). The differential tests hold the two
//! readers to the same answers on the JSONTestSuite cases and on generated documents.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Map, Number};

mod json;

pub use json::{DocJson, DocNumber};

use crate::parse::{checked_text, number_literal_end};
use crate::{Limits, Value};

/// One parsed document. The root is node 0.
#[derive(Debug, Clone)]
pub struct Doc<'a> {
    nodes: Vec<Node<'a>>,
    /// The text of the strings that could not be borrowed (escaped, or computed); nodes hold
    /// their index ([`Text::Owned`]). Kept apart so that a node owns nothing: dropping a
    /// document frees two vectors rather than visiting every node.
    owned: Vec<String>,
}

/// A string's or a number's text: borrowed from the input or the program, or the index of a
/// string of [`Doc::owned`].
#[derive(Debug, Clone, Copy)]
enum Text<'a> {
    Borrowed(&'a str),
    Owned(u32),
}

impl<'a> Text<'a> {
    fn resolve<'s>(self, owned: &'s [String]) -> &'s str
    where
        'a: 's,
    {
        match self {
            Text::Borrowed(text) => text,
            Text::Owned(at) => &owned[at as usize],
        }
    }

    /// `text` as a node's text, moving it into `owned` if it is owned. Inlined: nearly all
    /// text is borrowed, and the call cost more than the test.
    #[inline(always)]
    fn store(text: Cow<'a, str>, owned: &mut Vec<String>) -> Text<'a> {
        match text {
            Cow::Borrowed(text) => Text::Borrowed(text),
            Cow::Owned(text) => Text::own(text, owned),
        }
    }

    #[inline(never)]
    fn own(text: String, owned: &mut Vec<String>) -> Text<'a> {
        let at = u32::try_from(owned.len()).expect("a document has fewer than 2^32 strings");
        owned.push(text);
        Text::Owned(at)
    }
}

/// One node. An array's elements follow it in order; an object's members follow it as a
/// [`Node::Key`] and then the value. `end` is the index just past the container's last
/// descendant, so a reader steps over a whole element without visiting it, and a key's `next`
/// is where the following member's key is, so a lookup goes from key to key.
#[derive(Debug, Clone, Copy)]
enum Node<'a> {
    Null,
    Bool(bool),
    /// The number exactly as written (owned when a transform computed it).
    Number(Text<'a>),
    /// Borrowed unless the string had escapes.
    String(Text<'a>),
    /// An object member's key (borrowed unless it had escapes); `next` is the index just past
    /// the member's value.
    Key {
        text: Text<'a>,
        next: u32,
    },
    Array {
        len: u32,
        end: u32,
    },
    Object {
        len: u32,
        end: u32,
    },
}

/// The kind of a node, as JSON names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// How many members an object may have before duplicate keys are found through a hash set
/// rather than by comparing with every earlier key.
const SCANNED_KEYS: usize = 32;

impl<'a> Doc<'a> {
    /// Parses `text` under `limits` (the size, UTF-8 and byte order mark checks are the
    /// caller's, as `parse_document` makes them first). `None` when `parse_document` would
    /// refuse the document, and when an object repeats a key.
    pub fn parse(text: &'a str, limits: &Limits) -> Option<Doc<'a>> {
        let mut parser = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            // About one node per 8 bytes of typical documents (the trade: 86 nodes in 686
            // bytes); a guess, not a bound, and a large document grows from 64k nodes rather
            // than reserving for its whole size at once.
            nodes: Vec::with_capacity((text.len() / 8 + 2).min(1 << 16)),
            owned: Vec::new(),
            // Room for typical nesting and objects without regrowing.
            open: Vec::with_capacity(8),
            keys: Vec::with_capacity(32),
            max_depth: limits.max_depth.min(Limits::MAX_DEPTH_CEILING),
        };
        parser.document()?;
        Some(Doc {
            nodes: parser.nodes,
            owned: parser.owned,
        })
    }

    /// [`Doc::parse`] after the checks `parse_document` makes first (size, UTF-8, no byte
    /// order mark).
    pub fn parse_bytes(bytes: &'a [u8], limits: &Limits) -> Option<Doc<'a>> {
        Doc::parse(checked_text(bytes, limits).ok()?, limits)
    }

    /// A document that is one string, owning its text.
    pub(crate) fn string(text: String) -> Doc<'static> {
        Doc {
            nodes: vec![Node::String(Text::Owned(0))],
            owned: vec![text],
        }
    }

    /// The top-level value.
    pub fn root(&self) -> DocRef<'_, 'a> {
        DocRef {
            doc: self,
            index: 0,
        }
    }

    /// The same document as a [`Value`].
    pub fn to_value(&self) -> Value {
        self.root().to_value()
    }
}

/// Builds a [`Doc`] in document order: what a transform's output is made into, from values
/// borrowed from its input or program, subtrees of an input [`Doc`], and computed values.
/// A container is written with its parts by [`Builder::array`] or [`Builder::object`].
#[derive(Debug)]
pub(crate) struct Builder<'a> {
    nodes: Vec<Node<'a>>,
    owned: Vec<String>,
}

impl<'a> Builder<'a> {
    /// A builder with room for `nodes` nodes.
    pub(crate) fn with_capacity(nodes: usize) -> Self {
        Builder {
            nodes: Vec::with_capacity(nodes),
            // A transform's output owns what it computed: a few numbers and strings.
            owned: Vec::with_capacity(8),
        }
    }

    pub(crate) fn finish(self) -> Doc<'a> {
        Doc {
            nodes: self.nodes,
            owned: self.owned,
        }
    }

    pub(crate) fn null(&mut self) {
        self.nodes.push(Node::Null);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.nodes.push(Node::Bool(value));
    }

    /// A number; `text` must be JSON number text.
    pub(crate) fn number(&mut self, text: Cow<'a, str>) {
        let text = Text::store(text, &mut self.owned);
        self.nodes.push(Node::Number(text));
    }

    pub(crate) fn string(&mut self, text: Cow<'a, str>) {
        let text = Text::store(text, &mut self.owned);
        self.nodes.push(Node::String(text));
    }

    /// An array of `items`, each written by `write`.
    pub(crate) fn array<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut write: impl FnMut(&mut Self, T),
    ) {
        let at = self.nodes.len();
        self.nodes.push(Node::Array { len: 0, end: 0 });
        let mut count = 0;
        for item in items {
            write(self, item);
            count += 1;
        }
        self.close(at, count);
    }

    /// An object of `members`, each key once, each value written by `write`.
    pub(crate) fn object<K: Into<Cow<'a, str>>, T>(
        &mut self,
        members: impl IntoIterator<Item = (K, T)>,
        mut write: impl FnMut(&mut Self, T),
    ) {
        let written = self.try_object(members, |b, value| {
            write(b, value);
            Ok::<(), std::convert::Infallible>(())
        });
        match written {
            Ok(()) => {}
            Err(never) => match never {},
        }
    }

    /// [`Builder::object`] with a `write` that may fail: the first error ends the object
    /// (left unfinished: the caller drops the builder).
    pub(crate) fn try_object<K: Into<Cow<'a, str>>, T, E>(
        &mut self,
        members: impl IntoIterator<Item = (K, T)>,
        mut write: impl FnMut(&mut Self, T) -> Result<(), E>,
    ) -> Result<(), E> {
        let at = self.nodes.len();
        self.nodes.push(Node::Object { len: 0, end: 0 });
        let mut count = 0;
        for (key, value) in members {
            let key_at = self.nodes.len();
            let text = Text::store(key.into(), &mut self.owned);
            self.nodes.push(Node::Key { text, next: 0 });
            write(self, value)?;
            let end = self.len_u32();
            if let Node::Key { next, .. } = &mut self.nodes[key_at] {
                *next = end;
            }
            count += 1;
        }
        self.close(at, count);
        Ok(())
    }

    /// Closes the container at `at`, of `count` elements or members.
    fn close(&mut self, at: usize, count: usize) {
        let end = self.len_u32();
        if let Node::Array { len, end: slot } | Node::Object { len, end: slot } =
            &mut self.nodes[at]
        {
            *len = u32::try_from(count).expect("a container's length fits its document");
            *slot = end;
        }
    }

    /// A copy of `value` and its descendants, sharing its borrowed text (owned text is
    /// copied).
    pub(crate) fn copy(&mut self, value: DocRef<'_, 'a>) {
        let (from, to) = match *value.node() {
            Node::Array { end, .. } | Node::Object { end, .. } => (value.index, end as usize),
            // Most of what a transform copies: no links to shift, no text to copy.
            Node::Number(Text::Owned(_)) | Node::String(Text::Owned(_)) => {
                (value.index, value.index + 1)
            }
            scalar => {
                self.nodes.push(scalar);
                return;
            }
        };
        let shift = self.len_u32().wrapping_sub(from as u32);
        let source = &value.doc.owned;
        let owned = &mut self.owned;
        let mut text = |text: Text<'a>| match text {
            Text::Borrowed(_) => text,
            Text::Owned(_) => Text::store(Cow::Owned(text.resolve(source).to_owned()), owned),
        };
        self.nodes
            .extend(value.doc.nodes[from..to].iter().map(|&node| match node {
                Node::Array { len, end } => Node::Array {
                    len,
                    end: end.wrapping_add(shift),
                },
                Node::Object { len, end } => Node::Object {
                    len,
                    end: end.wrapping_add(shift),
                },
                Node::Key { text: t, next } => Node::Key {
                    text: text(t),
                    next: next.wrapping_add(shift),
                },
                Node::Number(t) => Node::Number(text(t)),
                Node::String(t) => Node::String(text(t)),
                node => node,
            }));
    }

    /// `value`, borrowing its text.
    pub(crate) fn borrowed(&mut self, value: &'a Value) {
        match value {
            Value::Null => self.null(),
            Value::Bool(b) => self.bool(*b),
            Value::Number(n) => self.number(Cow::Borrowed(n.as_str())),
            Value::String(s) => self.string(Cow::Borrowed(s)),
            Value::Array(items) => self.array(items, Self::borrowed),
            Value::Object(members) => {
                self.object(members.iter().map(|(k, v)| (k.as_str(), v)), Self::borrowed);
            }
        }
    }

    /// `value`, taking its strings.
    pub(crate) fn owned(&mut self, value: Value) {
        match value {
            Value::Null => self.null(),
            Value::Bool(b) => self.bool(b),
            Value::Number(n) => self.number(Cow::Owned(n.as_str().to_owned())),
            Value::String(s) => self.string(Cow::Owned(s)),
            Value::Array(items) => self.array(items, Self::owned),
            Value::Object(members) => self.object(members, Self::owned),
        }
    }

    fn len_u32(&self) -> u32 {
        u32::try_from(self.nodes.len()).expect("a document has fewer than 2^32 nodes")
    }
}

/// The index just past the node at `index` and its descendants.
fn end_of(nodes: &[Node<'_>], index: usize) -> usize {
    match nodes[index] {
        Node::Array { end, .. } | Node::Object { end, .. } => end as usize,
        _ => index + 1,
    }
}

/// The text of the key node at `index`, and the index of the next member's key.
fn key_at<'n, 'a: 'n>(nodes: &[Node<'a>], owned: &'n [String], index: usize) -> (&'n str, usize) {
    match nodes[index] {
        Node::Key { text, next } => (text.resolve(owned), next as usize),
        _ => unreachable!("an object member starts with its key"),
    }
}

/// The index of the key after the key node at `index` (or of the object's end).
fn next_key(nodes: &[Node<'_>], index: usize) -> usize {
    match nodes[index] {
        Node::Key { next, .. } => next as usize,
        _ => unreachable!("an object member starts with its key"),
    }
}

/// Whether two keys are equal. Keys are short, and `==` on slices calls `memcmp`, which costs
/// more than comparing two keys of up to 16 bytes in one or two loads each: after the lengths,
/// the first and the last bytes, 4 or 8 of them (overlapping), which between them cover every
/// byte.
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        0 => true,
        1..=3 => {
            a[0] == b[0] && a[a.len() / 2] == b[b.len() / 2] && a[a.len() - 1] == b[b.len() - 1]
        }
        4..=7 => {
            a.first_chunk::<4>() == b.first_chunk::<4>()
                && a.last_chunk::<4>() == b.last_chunk::<4>()
        }
        8..=16 => {
            a.first_chunk::<8>() == b.first_chunk::<8>()
                && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        _ => a.first() == b.first() && a.last() == b.last() && a == b,
    }
}

/// A node of a [`Doc`] and its descendants. `'d` is the document's borrow, `'a` the input's.
#[derive(Debug, Clone, Copy)]
pub struct DocRef<'d, 'a> {
    doc: &'d Doc<'a>,
    index: usize,
}

impl<'d, 'a> DocRef<'d, 'a> {
    fn node(&self) -> &'d Node<'a> {
        &self.doc.nodes[self.index]
    }

    pub fn kind(&self) -> Kind {
        match self.node() {
            Node::Null => Kind::Null,
            Node::Bool(_) => Kind::Bool,
            Node::Number(_) => Kind::Number,
            Node::String(_) | Node::Key { .. } => Kind::String,
            Node::Array { .. } => Kind::Array,
            Node::Object { .. } => Kind::Object,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.node() {
            Node::Bool(value) => Some(*value),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'d str> {
        match *self.node() {
            Node::String(text) | Node::Key { text, .. } => Some(text.resolve(&self.doc.owned)),
            _ => None,
        }
    }

    /// A number's literal text.
    pub fn number_text(&self) -> Option<&'d str> {
        match *self.node() {
            Node::Number(text) => Some(text.resolve(&self.doc.owned)),
            _ => None,
        }
    }

    /// The number of elements of an array or members of an object; `None` for a scalar.
    pub fn count(&self) -> Option<usize> {
        match self.node() {
            Node::Array { len, .. } | Node::Object { len, .. } => Some(*len as usize),
            _ => None,
        }
    }

    /// An array's elements, in order (none for anything else).
    pub fn elements(&self) -> Elements<'d, 'a> {
        let remaining = match self.node() {
            Node::Array { len, .. } => *len,
            _ => 0,
        };
        Elements {
            doc: self.doc,
            next: self.index + 1,
            remaining,
        }
    }

    /// An object's members, in document order (none for anything else).
    pub fn members(&self) -> Members<'d, 'a> {
        let remaining = match self.node() {
            Node::Object { len, .. } => *len,
            _ => 0,
        };
        Members {
            doc: self.doc,
            next: self.index + 1,
            remaining,
        }
    }

    /// The value of an object's member `key`: a walk from key to key.
    pub fn get(&self, key: &str) -> Option<DocRef<'d, 'a>> {
        let Node::Object { len, .. } = self.node() else {
            return None;
        };
        let nodes = &self.doc.nodes;
        let mut at = self.index + 1;
        for _ in 0..*len {
            let (name, next) = key_at(nodes, &self.doc.owned, at);
            if same_key(name, key) {
                return Some(DocRef {
                    doc: self.doc,
                    index: at + 1,
                });
            }
            at = next;
        }
        None
    }

    /// [`DocRef::get`] starting at the key the last lookup in the same object found, and
    /// wrapping around: programs mostly read an object's members in the order they are
    /// written, often the same one twice running, so a lookup then visits one or two keys
    /// rather than half the object. Keys are
    /// unique within an object (the reader declines documents that repeat one), so where the
    /// search starts does not change what it finds.
    pub(crate) fn get_near(&self, key: &str, hints: &mut Hints) -> Option<DocRef<'d, 'a>> {
        let Node::Object { len, end } = *self.node() else {
            return None;
        };
        let (doc, object) = (std::ptr::from_ref(self.doc) as usize, self.index);
        let (first, end) = (self.index + 1, end as usize);
        let slot = hints
            .slots
            .iter()
            .position(|&(d, o, _)| d == doc && o == object);
        let mut at = slot.map_or(first, |i| hints.slots[i].2);
        let nodes = &self.doc.nodes;
        for _ in 0..len {
            let (name, next) = key_at(nodes, &self.doc.owned, at);
            let next = if next == end { first } else { next };
            if same_key(name, key) {
                let i = slot.unwrap_or_else(|| {
                    hints.turn = (hints.turn + 1) % hints.slots.len();
                    hints.turn
                });
                // Resume at this key: the next lookup is often of the same key again (a
                // path through it, or a value used twice) or of the one after it.
                hints.slots[i] = (doc, object, at);
                return Some(DocRef {
                    doc: self.doc,
                    index: at + 1,
                });
            }
            at = next;
        }
        None
    }

    /// [`DocRef::get_near`] trying `guess` first: in an object of more than
    /// [`GUESSED_MEMBERS`] members, the member at the place where this lookup found its key
    /// last time, in this document or an earlier one. A program reads one document after
    /// another of the same layout, and reads a large object (a record's top level) out of
    /// order, so that `get_near` would often go most of the way round it, comparing keys;
    /// stepping to the guessed member compares none. A wrong guess costs the steps, and is
    /// corrected.
    pub(crate) fn get_guessed(
        &self,
        key: &str,
        guess: &Guess,
        hints: &mut Hints,
    ) -> Option<DocRef<'d, 'a>> {
        let len = match *self.node() {
            Node::Object { len, .. } if len > GUESSED_MEMBERS => len,
            _ => return self.get_near(key, hints),
        };
        let nodes = &self.doc.nodes;
        let place = guess.0.load(Ordering::Relaxed);
        if place < len {
            let mut at = self.index + 1;
            for _ in 0..place {
                at = next_key(nodes, at);
            }
            if same_key(key_at(nodes, &self.doc.owned, at).0, key) {
                return Some(DocRef {
                    doc: self.doc,
                    index: at + 1,
                });
            }
        }
        let found = self.get_near(key, hints)?;
        // Its place, for the next lookup.
        let mut at = self.index + 1;
        let mut place = 0;
        while at + 1 != found.index {
            at = next_key(nodes, at);
            place += 1;
        }
        guess.0.store(place, Ordering::Relaxed);
        Some(found)
    }

    /// This node and its descendants as a [`Value`]. Numbers keep their text, members their
    /// order.
    pub fn to_value(&self) -> Value {
        match self.node() {
            Node::Null => Value::Null,
            Node::Bool(value) => Value::Bool(*value),
            // The text was checked against the JSON number grammar by the parser, which is
            // all `from_string_unchecked` asks (`parse.rs` builds its numbers the same way).
            Node::Number(_) => Value::Number(Number::from_string_unchecked(
                self.number_text().unwrap_or_default().to_owned(),
            )),
            Node::String(_) | Node::Key { .. } => {
                Value::String(self.as_str().unwrap_or_default().to_owned())
            }
            Node::Array { len, .. } => {
                let mut items = Vec::with_capacity(*len as usize);
                items.extend(self.elements().map(|element| element.to_value()));
                Value::Array(items)
            }
            Node::Object { len, .. } => {
                let mut members = Map::with_capacity(*len as usize);
                for (key, value) in self.members() {
                    members.insert(key.to_owned(), value.to_value());
                }
                Value::Object(members)
            }
        }
    }

    /// Identifies the node within its document.
    pub(crate) fn address(&self) -> (usize, usize) {
        (std::ptr::from_ref(self.doc) as usize, self.index)
    }
}

/// Where [`DocRef::get_near`] resumes in the last few objects it searched: (document,
/// object's index, key index to start from).
#[derive(Debug, Default)]
pub(crate) struct Hints {
    slots: [(usize, usize, usize); 4],
    turn: usize,
}

/// Objects of more members than this are searched from a [`Guess`] first.
const GUESSED_MEMBERS: u32 = 8;

/// Where a lookup found its key last: the member's place among its object's members (see
/// [`DocRef::get_guessed`]). Shared by every run of a program, on any thread: it is only a
/// guess, checked before it is used, so a relaxed atomic is enough.
#[derive(Debug, Default)]
pub(crate) struct Guess(AtomicU32);

/// The elements of an array; see [`DocRef::elements`].
#[derive(Debug, Clone)]
pub struct Elements<'d, 'a> {
    doc: &'d Doc<'a>,
    next: usize,
    remaining: u32,
}

impl<'d, 'a> Iterator for Elements<'d, 'a> {
    type Item = DocRef<'d, 'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let element = DocRef {
            doc: self.doc,
            index: self.next,
        };
        self.next = end_of(&self.doc.nodes, self.next);
        Some(element)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

/// The members of an object; see [`DocRef::members`].
#[derive(Debug, Clone)]
pub struct Members<'d, 'a> {
    doc: &'d Doc<'a>,
    next: usize,
    remaining: u32,
}

impl<'d, 'a> Iterator for Members<'d, 'a> {
    type Item = (&'d str, DocRef<'d, 'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let (key, next) = key_at(&self.doc.nodes, &self.doc.owned, self.next);
        let value = DocRef {
            doc: self.doc,
            index: self.next + 1,
        };
        self.next = next;
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

/// The end of the run of string bytes from `from` that need no attention: the offset of the
/// first quote, backslash or control character (or of the end). Eight bytes at a time: a
/// byte equal to a constant is a zero byte after XOR, and `x - 0x01..01 & !x & 0x80..80`
/// marks zero bytes (`x - 0x20..20` bytes under 0x20); the lowest mark is always exact.
pub(crate) fn plain_run(bytes: &[u8], from: usize) -> usize {
    let mut pos = from;
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let marks = special_bytes(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        if marks != 0 {
            return pos + (marks.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    // The last few bytes one at a time, by table (a load rather than three comparisons).
    while bytes.get(pos).is_some_and(|&b| PLAIN[usize::from(b)]) {
        pos += 1;
    }
    pos
}

/// The high bit of each byte of `word` (eight bytes, little-endian) that is a quote, a
/// backslash or a control character, and possibly of bytes above the lowest such byte;
/// zero when there is none.
pub(crate) fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    (quote.wrapping_sub(ONES) & !quote
        | backslash.wrapping_sub(ONES) & !backslash
        | word.wrapping_sub(ONES * 0x20) & !word)
        & HIGHS
}

/// Whether a string of up to 16 bytes has no byte a JSON string must escape (quote,
/// backslash, control characters), read in one or two words; `false` for a longer one.
pub(crate) fn short_and_plain(bytes: &[u8]) -> bool {
    let word = |chunk: &[u8; 8]| u64::from_le_bytes(*chunk);
    let half = |chunk: &[u8; 4]| u64::from(u32::from_le_bytes(*chunk));
    match bytes.len() {
        0 => true,
        1..=3 => bytes.iter().all(|&b| PLAIN[usize::from(b)]),
        4..=7 => match (bytes.first_chunk(), bytes.last_chunk()) {
            (Some(first), Some(last)) => special_bytes(half(first) | half(last) << 32) == 0,
            _ => false,
        },
        8..=16 => match (bytes.first_chunk(), bytes.last_chunk()) {
            (Some(first), Some(last)) => {
                special_bytes(word(first)) | special_bytes(word(last)) == 0
            }
            _ => false,
        },
        _ => false,
    }
}

/// The bytes a string's scan passes over: all but quote, backslash and control characters.
const PLAIN: [bool; 256] = {
    let mut table = [true; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = false;
        byte += 1;
    }
    table[b'"' as usize] = false;
    table[b'\\' as usize] = false;
    table
};

/// A key's length and some of its bytes in one word: keys with different fingerprints
/// differ, so most comparisons of two keys are one comparison of two words. Up to 16 bytes
/// the bytes read are the ones [`same_key`] compares; each case reads a fixed number of bytes,
/// without a loop or a copy.
fn fingerprint(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let word = |chunk: Option<&[u8; 8]>| chunk.map_or(0, |c| u64::from_le_bytes(*c));
    let half = |chunk: Option<&[u8; 4]>| chunk.map_or(0, |c| u64::from(u32::from_le_bytes(*c)));
    let head = match bytes.len() {
        0 => 0,
        1..=3 => {
            let at = |i: usize| u64::from(bytes[i]);
            at(0) | at(bytes.len() / 2) << 8 | at(bytes.len() - 1) << 16
        }
        4..=7 => half(bytes.first_chunk()) | half(bytes.last_chunk()) << 32,
        _ => word(bytes.first_chunk()) ^ word(bytes.last_chunk()).rotate_left(29),
    };
    head ^ (bytes.len() as u64).rotate_right(8)
}

/// The bit of a 64-bit set that stands for a key with fingerprint `print`: six bits of it,
/// mixed by a multiplication so that keys differing anywhere fall on different bits.
fn seen_bit(print: u64) -> u64 {
    1 << (print.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58)
}

/// A container being read.
struct Open {
    node: usize,
    object: bool,
    len: u32,
    /// An object's current key node, whose `next` is set once its value is read.
    key_node: usize,
    /// Where an object's keys start in [`Parser::keys`].
    keys_from: usize,
    /// One bit of each key's [`fingerprint`] (see [`seen_bit`]): a key whose bit is not set
    /// is not among the earlier ones, and is not compared with them.
    seen: u64,
    /// An object's keys once it has more than [`SCANNED_KEYS`] members.
    key_set: Option<HashSet<String>>,
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    nodes: Vec<Node<'a>>,
    /// The text of strings with escapes ([`Doc::owned`]).
    owned: Vec<String>,
    open: Vec<Open>,
    /// The keys of the open objects, outermost first: each key's [`fingerprint`] and its
    /// node, for finding repeated keys without walking the nodes.
    keys: Vec<(u64, usize)>,
    max_depth: usize,
}

impl<'a> Parser<'a> {
    /// One JSON text: a value between optional whitespace. Iterative, so the depth limit is
    /// the only bound on nesting.
    fn document(&mut self) -> Option<()> {
        loop {
            self.value()?;
            // A value is complete: the innermost open container goes on or closes.
            loop {
                let Some(top) = self.open.last_mut() else {
                    self.skip_whitespace();
                    return (self.pos == self.bytes.len()).then_some(());
                };
                top.len = top.len.checked_add(1)?;
                let object = top.object;
                if object {
                    let end = u32::try_from(self.nodes.len()).ok()?;
                    if let Node::Key { next, .. } = &mut self.nodes[top.key_node] {
                        *next = end;
                    }
                }
                self.skip_whitespace();
                match (self.next_byte()?, object) {
                    (b',', true) => {
                        self.skip_whitespace();
                        self.key()?;
                        break;
                    }
                    (b',', false) => break,
                    (b'}', true) | (b']', false) => self.close()?,
                    _ => return None,
                }
            }
        }
    }

    /// One value. A container is opened, with its first key if it is an object, and the
    /// loop goes on with its first member, so nesting costs no recursion; an empty container
    /// is opened and closed, and counts as the value read.
    fn value(&mut self) -> Option<()> {
        loop {
            self.skip_whitespace();
            match self.next_byte()? {
                b'{' => {
                    self.open(Node::Object { len: 0, end: 0 })?;
                    self.skip_whitespace();
                    if self.bytes.get(self.pos) == Some(&b'}') {
                        self.pos += 1;
                        return self.close();
                    }
                    self.key()?;
                }
                b'[' => {
                    self.open(Node::Array { len: 0, end: 0 })?;
                    self.skip_whitespace();
                    if self.bytes.get(self.pos) == Some(&b']') {
                        self.pos += 1;
                        return self.close();
                    }
                }
                b'"' => {
                    let text = self.string()?;
                    let text = Text::store(text, &mut self.owned);
                    self.nodes.push(Node::String(text));
                    return Some(());
                }
                b't' => return self.literal(b"rue", Node::Bool(true)),
                b'f' => return self.literal(b"alse", Node::Bool(false)),
                b'n' => return self.literal(b"ull", Node::Null),
                b'-' | b'0'..=b'9' => {
                    self.pos -= 1;
                    return self.number();
                }
                _ => return None,
            }
        }
    }

    fn open(&mut self, node: Node<'a>) -> Option<()> {
        if self.open.len() + 1 > self.max_depth {
            return None;
        }
        self.open.push(Open {
            node: self.nodes.len(),
            object: matches!(node, Node::Object { .. }),
            len: 0,
            key_node: 0,
            keys_from: self.keys.len(),
            seen: 0,
            key_set: None,
        });
        self.nodes.push(node);
        Some(())
    }

    /// Closes the innermost open container. The caller has consumed its closing bracket.
    fn close(&mut self) -> Option<()> {
        let open = self.open.pop()?;
        self.keys.truncate(open.keys_from);
        let end = u32::try_from(self.nodes.len()).ok()?;
        match &mut self.nodes[open.node] {
            Node::Array { len, end: slot } | Node::Object { len, end: slot } => {
                *len = open.len;
                *slot = end;
            }
            _ => unreachable!("only containers are opened"),
        }
        Some(())
    }

    /// An object member's key and its colon. Declines a key the object already has.
    fn key(&mut self) -> Option<()> {
        if self.next_byte()? != b'"' {
            return None;
        }
        let key = self.string()?;
        let top = self.open.last_mut()?;
        let earlier = &self.keys[top.keys_from..];
        let print = fingerprint(&key);
        let (nodes, owned) = (&self.nodes, &self.owned);
        let bit = seen_bit(print);
        let maybe_seen = top.seen & bit != 0;
        top.seen |= bit;
        if earlier.len() < SCANNED_KEYS {
            if maybe_seen
                && earlier
                    .iter()
                    .any(|&(p, at)| p == print && key_at(nodes, owned, at).0 == key)
            {
                return None;
            }
        } else {
            let set = top.key_set.get_or_insert_with(|| {
                earlier
                    .iter()
                    .map(|&(_, at)| key_at(nodes, owned, at).0.to_owned())
                    .collect()
            });
            if !set.insert(key.to_string()) {
                return None;
            }
        }
        self.keys.push((print, self.nodes.len()));
        top.key_node = self.nodes.len();
        let text = Text::store(key, &mut self.owned);
        self.nodes.push(Node::Key { text, next: 0 });
        self.skip_whitespace();
        (self.next_byte()? == b':').then_some(())
    }

    fn literal(&mut self, rest: &[u8], node: Node<'a>) -> Option<()> {
        if !self.bytes[self.pos..].starts_with(rest) {
            return None;
        }
        self.pos += rest.len();
        self.nodes.push(node);
        Some(())
    }

    /// A number, kept as written. A fraction or exponent without digits ends the literal
    /// before it, and the byte left over makes the document invalid.
    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        self.pos = number_literal_end(self.bytes, start)?;
        self.nodes
            .push(Node::Number(Text::Borrowed(&self.text[start..self.pos])));
        Some(())
    }

    /// A string's contents after its opening quote, through its closing quote. The input is
    /// UTF-8 already, and a quote or backslash is never inside a multi-byte character, so the
    /// slices below fall on character boundaries.
    // Always inlined: as a call, saving and restoring registers was a fifth of its cost.
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.pos;
        self.pos = plain_run(self.bytes, start);
        if self.bytes.get(self.pos) == Some(&b'"') {
            let text = &self.text[start..self.pos];
            self.pos += 1;
            return Some(Cow::Borrowed(text));
        }
        self.escaped_string(start)
    }

    /// The rest of a string from `start` that [`Parser::string`] stopped in at something
    /// other than its closing quote: an escape (the string is then owned), or an error. Out
    /// of line, so that strings without escapes, nearly all of them, pay for no more than
    /// their scan.
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self, start: usize) -> Option<Cow<'a, str>> {
        if *self.bytes.get(self.pos)? != b'\\' {
            return None;
        }
        let mut text = String::from(&self.text[start..self.pos]);
        loop {
            match *self.bytes.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(Cow::Owned(text));
                }
                b'\\' => {
                    self.pos += 1;
                    self.escape(&mut text)?;
                }
                0..=0x1f => return None,
                _ => {
                    let run = self.pos;
                    self.pos = plain_run(self.bytes, run);
                    text.push_str(&self.text[run..self.pos]);
                }
            }
        }
    }

    /// One escape after its backslash. A `\u` escape must not leave a lone surrogate.
    fn escape(&mut self, text: &mut String) -> Option<()> {
        let decoded = match self.next_byte()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return None;
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        };
        text.push(decoded);
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let mut unit = 0;
        for &digit in digits {
            unit = unit * 16 + char::from(digit).to_digit(16)?;
        }
        self.pos += 4;
        Some(unit)
    }

    fn next_byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_document;

    /// What the reference reader makes of `bytes`, and what [`Doc`] makes of them, both as
    /// compact JSON text (which shows member order and number spelling).
    fn both(bytes: &[u8], limits: &Limits) -> (Option<String>, Option<String>) {
        let reference = parse_document(bytes, limits)
            .ok()
            .map(|value| serde_json::to_string(&value).expect("a value serialises"));
        let doc = Doc::parse_bytes(bytes, limits)
            .map(|doc| serde_json::to_string(&doc.to_value()).expect("a value serialises"));
        (reference, doc)
    }

    #[track_caller]
    fn agree(text: &str) {
        let (reference, doc) = both(text.as_bytes(), &Limits::default());
        assert_eq!(doc, reference, "for {text:?}");
    }

    #[test]
    fn reads_what_parse_document_reads() {
        agree(include_str!("../../../examples/trade/trade.json"));
        for text in [
            "0",
            "-0",
            "1E400",
            "-1.5e-7",
            "2500000.00",
            "9007199254740993",
            "123456789012345678901234567890",
            " \t\n\r[ ] ",
            "{}",
            r#"{"a":[1,{"b":null}],"c":true,"d":false}"#,
            r#""\u00e9\ud83d\ude00\n\"\\\/\b\f\r\t""#,
            r#"{"\u0061":1,"b\n":"x\u0000y"}"#,
            r#"[[[]],[{}],{"a":{}}]"#,
            "\"caf\u{e9} \u{1f600}\"",
        ] {
            agree(text);
        }
    }

    #[test]
    fn refuses_what_parse_document_refuses() {
        for text in [
            "",
            " ",
            "[",
            "]",
            "{",
            "[1,]",
            "[,1]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{1:1}"#,
            "01",
            "1.",
            ".1",
            "1e",
            "1e+",
            "-",
            "+1",
            "0x1",
            "NaN",
            "Infinity",
            "tru",
            "nul",
            "[1 2]",
            "1 2",
            r#""\x""#,
            r#""\u12""#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            "\"a\tb\"",
            "\"\u{1}\"",
            "\u{feff}1",
            r#"{"a":1}x"#,
            "[1]]",
            r#"{"a":1}}"#,
            "\"abc",
        ] {
            let (reference, doc) = both(text.as_bytes(), &Limits::default());
            assert_eq!(reference, None, "the reference took {text:?}");
            assert_eq!(doc, None, "Doc took {text:?}");
        }
        assert_eq!(both(b"[\"\xff\"]", &Limits::default()), (None, None));
    }

    #[test]
    fn declines_repeated_keys_at_any_size() {
        assert!(Doc::parse(r#"{"a":1,"b":{"a":2},"a":3}"#, &Limits::default()).is_none());
        let members = |count: usize, repeat: bool| {
            let mut text = String::from("{");
            for i in 0..count {
                text.push_str(&format!("\"k{i}\":{i},"));
            }
            text.push_str(if repeat { "\"k0\":0}" } else { "\"last\":0}" });
            text
        };
        for count in [1, 31, 32, 33, 100] {
            let distinct = members(count, false);
            agree(&distinct);
            assert!(
                Doc::parse(&distinct, &Limits::default()).is_some(),
                "{count}"
            );
            assert!(
                Doc::parse(&members(count, true), &Limits::default()).is_none(),
                "{count}"
            );
        }
        // An escaped key repeating a plain one is the same key.
        assert!(Doc::parse(r#"{"ab":1,"\u0061b":2}"#, &Limits::default()).is_none());
    }

    #[test]
    fn depth_limit_matches_parse_document() {
        for max_depth in [0, 1, 2, 5] {
            let limits = Limits {
                max_depth,
                ..Limits::default()
            };
            for depth in 0..8 {
                let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
                let nested = format!("{}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
                let nested = nested.replacen("{\"a\":}", "{\"a\":1}", 1);
                for text in [text, nested] {
                    let (reference, doc) = both(text.as_bytes(), &limits);
                    assert_eq!(doc, reference, "{text} at max_depth {max_depth}");
                }
            }
        }
        // Far past the ceiling, without recursion.
        let deep = "[".repeat(100_000);
        assert!(Doc::parse(&deep, &Limits::default()).is_none());
    }

    #[test]
    fn reads_members_elements_and_keys() {
        let doc = Doc::parse(
            r#"{"id":"T-1","n":[1,{"x":2.50}],"s":"a\"b","t":true,"z":null}"#,
            &Limits::default(),
        )
        .expect("parses");
        let root = doc.root();
        assert_eq!(root.kind(), Kind::Object);
        assert_eq!(root.count(), Some(5));
        let keys: Vec<&str> = root.members().map(|(key, _)| key).collect();
        assert_eq!(keys, ["id", "n", "s", "t", "z"]);
        assert_eq!(root.get("id").and_then(|v| v.as_str()), Some("T-1"));
        assert_eq!(root.get("s").and_then(|v| v.as_str()), Some("a\"b"));
        assert_eq!(root.get("t").and_then(|v| v.as_bool()), Some(true));
        assert_eq!(root.get("z").map(|v| v.kind()), Some(Kind::Null));
        assert!(root.get("missing").is_none());
        let n: Vec<DocRef<'_, '_>> = root.get("n").expect("n").elements().collect();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].number_text(), Some("1"));
        assert_eq!(n[1].get("x").and_then(|v| v.number_text()), Some("2.50"));
        assert!(root.get("id").expect("id").members().next().is_none());
    }

    #[test]
    fn lookups_near_the_last_one_find_what_lookups_from_the_start_find() {
        let mut rng = Gen(0x5eed_1234);
        for _ in 0..300 {
            let mut text = String::new();
            rng.value(&mut text, 0);
            let Some(doc) = Doc::parse(&text, &Limits::default()) else {
                continue;
            };
            // Every object of the document, with its keys and a few it does not have.
            let objects: Vec<DocRef<'_, '_>> = (0..doc.nodes.len())
                .map(|index| DocRef { doc: &doc, index })
                .filter(|node| node.kind() == Kind::Object)
                .collect();
            let mut hints = Hints::default();
            for _ in 0..200 {
                let Some(object) = objects.get(rng.below(objects.len().max(1) as u64)) else {
                    break;
                };
                let mut keys: Vec<&str> = object.members().map(|(k, _)| k).collect();
                keys.extend(["", "missing", "a"]);
                let key = keys[rng.below(keys.len() as u64)];
                let near = object.get_near(key, &mut hints).map(|v| v.index);
                assert_eq!(near, object.get(key).map(|v| v.index), "{key:?} in {text}");
            }
        }
    }

    #[test]
    fn guessed_lookups_find_what_lookups_from_the_start_find() {
        // Lookup sites, each with its own guess, used on objects of many layouts: large
        // objects with their members in a different order each time, and nested objects
        // (large and small) holding the same keys, where a guess that stepped into a member's
        // value would find the key of the wrong object.
        let names: Vec<String> = (0..24).map(|i| format!("k{i}")).collect();
        let sites: Vec<(&str, Guess)> = names
            .iter()
            .map(String::as_str)
            .chain(["", "missing"])
            .map(|name| (name, Guess::default()))
            .collect();
        let mut rng = Gen(0x6e55_0001);
        let mut large = 0;
        for _ in 0..300 {
            let mut text = String::new();
            rng.object(&mut text, &names, 2);
            let doc = Doc::parse(&text, &Limits::default()).expect("a generated object reads");
            let objects: Vec<DocRef<'_, '_>> = (0..doc.nodes.len())
                .map(|index| DocRef { doc: &doc, index })
                .filter(|node| node.kind() == Kind::Object)
                .collect();
            large += objects
                .iter()
                .filter(|o| o.count().unwrap_or(0) > GUESSED_MEMBERS as usize)
                .count();
            let mut hints = Hints::default();
            for _ in 0..100 {
                let object = objects[rng.below(objects.len() as u64)];
                let (key, guess) = &sites[rng.below(sites.len() as u64)];
                let guessed = object.get_guessed(key, guess, &mut hints).map(|v| v.index);
                assert_eq!(
                    guessed,
                    object.get(key).map(|v| v.index),
                    "{key:?} in {text}"
                );
            }
        }
        assert!(large > 300, "too few large objects: {large}");
    }

    /// Calls `check` with every node but keys of 8,000 generated documents (those `Doc`
    /// reads), and the document's text.
    fn every_subtree(seed: u64, mut check: impl FnMut(DocRef<'_, '_>, &str)) {
        let mut generator = Gen(seed);
        for _ in 0..8_000 {
            let mut text = String::new();
            generator.value(&mut text, 0);
            let Some(doc) = Doc::parse(&text, &Limits::default()) else {
                continue;
            };
            for index in 0..doc.nodes.len() {
                if !matches!(doc.nodes[index], Node::Key { .. }) {
                    check(DocRef { doc: &doc, index }, &text);
                }
            }
        }
    }

    #[test]
    fn writes_json_as_the_value_encoder_writes_it() {
        let mut written = 0;
        // Every node as the root of what is written.
        every_subtree(0x0dd_ba11, |node, text| {
            let mut expected = Vec::new();
            crate::encode(&node.to_value(), crate::Encoding::Json, &mut expected).unwrap();
            let mut out = Vec::new();
            crate::encode_doc(node, crate::Encoding::Json, &mut out).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&expected),
                "node {} of {text}",
                node.index
            );
            written += 1;
        });
        assert!(written > 10_000, "only {written} nodes written");
    }

    #[test]
    fn keys_compare_as_strings_compare() {
        // Every length up to past the word-sized cases, equal and differing at each byte.
        for len in 0..24 {
            let key: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            assert!(same_key(&key, &key.clone()), "{key:?}");
            for at in 0..len {
                let mut other = key.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).unwrap();
                assert!(!same_key(&key, &other), "{key:?} {other:?}");
            }
            assert!(!same_key(&key, &format!("{key}a")));
        }
    }

    #[test]
    fn plain_runs_stop_where_a_byte_by_byte_scan_stops() {
        // (And short strings are plain exactly when no byte stops the scan.)
        let naive = |bytes: &[u8], from: usize| {
            (from..bytes.len())
                .find(|&i| matches!(bytes[i], b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(bytes.len())
        };
        let filler = "ab\u{e9}\u{1f600}x~\u{7f} ".as_bytes();
        for length in 0..40 {
            let plain: Vec<u8> = filler.iter().copied().cycle().take(length).collect();
            assert_eq!(plain_run(&plain, 0), length);
            assert_eq!(short_and_plain(&plain), length <= 16, "{plain:?}");
            for at in 0..length {
                for stop in [b'"', b'\\', 0x00, 0x01, 0x1f] {
                    let mut bytes = plain.clone();
                    bytes[at] = stop;
                    assert!(!short_and_plain(&bytes), "{bytes:?}");
                    for from in [0, at.saturating_sub(3), at] {
                        assert_eq!(
                            plain_run(&bytes, from),
                            naive(&bytes, from),
                            "{bytes:?} from {from}"
                        );
                    }
                }
            }
        }
        // Long strings, through the parser, against the reference.
        for at in 0..24 {
            let mut text = "\"".to_owned() + &"abcdefgh".repeat(3) + "\u{e9}\"";
            text.insert_str(1 + at, "\\n");
            agree(&text);
            let mut raw = text.clone().into_bytes();
            raw[1 + at] = 0x07;
            let (reference, doc) = both(&raw, &Limits::default());
            assert_eq!(doc, reference);
        }
    }

    /// A small deterministic generator (xorshift) of JSON-like texts: valid documents, and the
    /// same with one byte changed, inserted or removed.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            crate::testing::xorshift(&mut self.0)
        }

        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }

        fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
            from[self.below(from.len() as u64)]
        }

        /// An object of a random selection of `names`, each once, in a random order (those
        /// ending in 1 sometimes escaped, `k1` as `k\u0031`), with nested objects of the same
        /// names down to `depth` levels below.
        fn object(&mut self, out: &mut String, names: &[String], depth: u32) {
            let mut chosen: Vec<&String> = names.iter().filter(|_| self.below(4) != 0).collect();
            for i in (1..chosen.len()).rev() {
                chosen.swap(i, self.below(i as u64 + 1));
            }
            out.push('{');
            for (i, name) in chosen.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match name.strip_suffix('1') {
                    Some(stem) if self.below(2) == 0 => {
                        out.push_str(&format!("\"{stem}\\u0031\""));
                    }
                    _ => out.push_str(&format!("\"{name}\"")),
                }
                out.push(':');
                match self.below(4) {
                    0 if depth > 0 => self.object(out, names, depth - 1),
                    1 => out.push_str("[1,{\"k1\":2},3]"),
                    _ => out.push_str(&i.to_string()),
                }
            }
            out.push('}');
        }

        fn space(&mut self, out: &mut String) {
            out.push_str(self.pick(&["", "", "", " ", "\n", "\t ", "\r\n"]));
        }

        fn value(&mut self, out: &mut String, depth: u32) {
            self.space(out);
            match self.below(if depth > 4 { 3 } else { 5 }) {
                0 => out.push_str(self.pick(&[
                    "0",
                    "-0",
                    "7",
                    "-12",
                    "3.25",
                    "1e5",
                    "1E+2",
                    "-2.5e-3",
                    "2500000.00",
                    "18446744073709551616",
                    "1.0",
                    "true",
                    "false",
                    "null",
                ])),
                1 | 2 => {
                    out.push('"');
                    for _ in 0..self.below(4) {
                        out.push_str(self.pick(&[
                            "a",
                            "b",
                            "\u{e9}",
                            "\u{1f600}",
                            "\\n",
                            "\\\"",
                            "\\\\",
                            "\\/",
                            "\\u0041",
                            "\\ud83d\\ude00",
                            "\\u00e9",
                            " ",
                        ]));
                    }
                    out.push('"');
                }
                3 => {
                    out.push('[');
                    for i in 0..self.below(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.value(out, depth + 1);
                    }
                    self.space(out);
                    out.push(']');
                }
                _ => {
                    out.push('{');
                    for i in 0..self.below(5) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.space(out);
                        // Few names, so that some objects repeat one.
                        out.push_str(self.pick(&[
                            "\"a\"",
                            "\"b\"",
                            "\"c\"",
                            "\"d\"",
                            "\"e\"",
                            "\"f\"",
                            "\"\\u0061\"",
                        ]));
                        self.space(out);
                        out.push(':');
                        self.value(out, depth + 1);
                    }
                    self.space(out);
                    out.push('}');
                }
            }
            self.space(out);
        }

        fn mutate(&mut self, text: &str) -> Vec<u8> {
            let mut bytes = text.as_bytes().to_vec();
            let at = self.below(bytes.len() as u64 + 1);
            const BYTES: &[u8] = b"{}[]\",:\\0-.eE+ un\x01\xff";
            let byte = BYTES[self.below(BYTES.len() as u64)];
            match self.below(3) {
                0 if at < bytes.len() => bytes[at] = byte,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, byte),
            }
            bytes
        }
    }

    /// Every subtree of generated documents (escaped strings and keys included, whose text
    /// the document owns) copied into a builder that already owns text of its own.
    #[test]
    fn copies_of_every_subtree_read_as_the_subtree() {
        let (mut copies, mut owned) = (0, 0);
        every_subtree(0x3C6E_F372_FE94_F82B, |subtree, text| {
            let mut builder = Builder::with_capacity(8);
            builder.string(Cow::Owned("first".to_owned()));
            builder.copy(subtree);
            let copy = builder.finish();
            let copied = DocRef {
                doc: &copy,
                index: 1,
            };
            assert_eq!(copied.to_value(), subtree.to_value(), "{text}");
            copies += 1;
            owned += copy.owned.len() - 1;
        });
        assert!(
            copies > 10_000 && owned > 100,
            "{copies} copies, {owned} owned strings"
        );
    }

    #[test]
    fn generated_documents_read_alike() {
        let mut generator = Gen(0x9E37_79B9_7F4A_7C15);
        let limits = Limits {
            max_depth: 4,
            ..Limits::default()
        };
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::new();
            generator.value(&mut text, 0);
            let mutated = generator.mutate(&text);
            for (bytes, limits) in [
                (text.as_bytes(), &Limits::default()),
                (text.as_bytes(), &limits),
                (&mutated[..], &Limits::default()),
            ] {
                let (reference, doc) = both(bytes, limits);
                assert_eq!(doc, reference, "for {:?}", String::from_utf8_lossy(bytes));
                if reference.is_some() {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
        // Both kinds of case must be common, or the comparison proves little.
        assert!(
            accepted > 10_000 && refused > 10_000,
            "{accepted} accepted, {refused} refused"
        );
    }
}
