//! JSON Schema validation: compile a schema once into a [`Schema`], then validate any number of
//! documents against it, on any number of threads.
//!
//! The work is done by the `jsonschema` crate built with `arbitrary-precision`, which compares
//! numbers by their literal text rather than through `f64`: `maximum: 0.3` rejects
//! `0.30000000000000001`, and `multipleOf: 0.01` accepts `19.99`. That only holds for
//! documents parsed from text; values built in code with `json!` may already have been rounded.
//!
//! A document that fails its schema is an ordinary outcome, reported as a list of [`Finding`]s;
//! [`SchemaError`] is reserved for schemas that cannot be compiled.
//!
//! Nothing is ever fetched from the network or the file system: a `$ref` (or `$schema`) that
//! leaves the schema can only reach the documents handed over in [`SchemaOptions::resources`].
//! Besides keeping the engine free of I/O, this is what makes compiling safe inside an async
//! runtime, where `jsonschema`'s blocking HTTP retrieval would panic.

use std::{collections::HashMap, fmt, str::FromStr, sync::Arc};

mod direct;

use crate::Value;
use crate::doc::{Doc, DocJson, DocRef};
use crate::{Limits, ParseError};

/// A JSON Schema specification version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Draft {
    /// Draft 4 (2013).
    Draft4,
    /// Draft 6 (2017).
    Draft6,
    /// Draft 7 (2018).
    Draft7,
    /// Draft 2019-09.
    Draft201909,
    /// Draft 2020-12, the current one and the default.
    #[default]
    Draft202012,
}

impl Draft {
    /// Every supported draft, oldest first.
    pub const ALL: [Draft; 5] = [
        Draft::Draft4,
        Draft::Draft6,
        Draft::Draft7,
        Draft::Draft201909,
        Draft::Draft202012,
    ];

    /// The URI a schema puts in `$schema` to declare this draft.
    pub fn meta_schema_uri(self) -> &'static str {
        match self {
            Draft::Draft4 => "http://json-schema.org/draft-04/schema#",
            Draft::Draft6 => "http://json-schema.org/draft-06/schema#",
            Draft::Draft7 => "http://json-schema.org/draft-07/schema#",
            Draft::Draft201909 => "https://json-schema.org/draft/2019-09/schema",
            Draft::Draft202012 => "https://json-schema.org/draft/2020-12/schema",
        }
    }

    fn to_jsonschema(self) -> jsonschema::Draft {
        match self {
            Draft::Draft4 => jsonschema::Draft::Draft4,
            Draft::Draft6 => jsonschema::Draft::Draft6,
            Draft::Draft7 => jsonschema::Draft::Draft7,
            Draft::Draft201909 => jsonschema::Draft::Draft201909,
            Draft::Draft202012 => jsonschema::Draft::Draft202012,
        }
    }
}

impl fmt::Display for Draft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Draft::Draft4 => "4",
            Draft::Draft6 => "6",
            Draft::Draft7 => "7",
            Draft::Draft201909 => "2019-09",
            Draft::Draft202012 => "2020-12",
        })
    }
}

/// A draft name that [`Draft::from_str`] does not recognise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown JSON Schema draft {0:?}: expected 4, 6, 7, 2019-09 or 2020-12")]
pub struct UnknownDraft(pub String);

impl FromStr for Draft {
    type Err = UnknownDraft;

    /// Accepts the short names printed by `Display` ("4", "2020-12") and the spellings people
    /// copy from the specification and from the test suite's folders ("draft4", "draft-04",
    /// "draft2020-12", "Draft202012"), ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("draft").unwrap_or(&lower);
        let bare = bare.strip_prefix(['-', '_']).unwrap_or(bare);
        match bare {
            "4" | "04" => Ok(Draft::Draft4),
            "6" | "06" => Ok(Draft::Draft6),
            "7" | "07" => Ok(Draft::Draft7),
            "2019-09" | "201909" => Ok(Draft::Draft201909),
            "2020-12" | "202012" => Ok(Draft::Draft202012),
            _ => Err(UnknownDraft(s.to_owned())),
        }
    }
}

/// How to compile a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaOptions {
    /// The draft to apply. `None` takes it from the schema's `$schema`, and falls back to
    /// 2020-12 when there is none.
    pub draft: Option<Draft>,
    /// Whether `format` is an assertion (`"2026-13-45"` fails `format: "date"`). On by default
    /// for every draft, although 2019-09 and 2020-12 make `format` a mere annotation unless
    /// asked: a service that accepts a schema saying `date` is expected to check dates.
    /// Unknown format names are ignored either way.
    pub validate_formats: bool,
    /// The most findings [`Schema::validate`] reports for one document. Must be at least 1.
    /// It bounds the work done on a hostile document and the size of the answer.
    pub max_errors: usize,
    /// Other schemas that `$ref` and `$schema` may reach, each under the URI it is
    /// addressed by (`("https://example.com/money.json", schema)`). These are the only
    /// documents outside the schema itself that compiling can see.
    pub resources: Vec<(String, Value)>,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        Self {
            draft: None,
            validate_formats: true,
            max_errors: 100,
            resources: Vec::new(),
        }
    }
}

/// Why a schema could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The schema breaks its draft's rules (it fails the meta-schema, or holds something the
    /// validator cannot build, such as a malformed regular expression).
    #[error("invalid schema at {location:?}: {message}")]
    Invalid {
        /// JSON Pointer to the offending part of the schema (`""` is the whole schema).
        location: String,
        /// What is wrong with it.
        message: String,
    },
    /// A `$ref` (or `$schema`) names something that is neither in the schema nor among
    /// [`SchemaOptions::resources`], or points inside a document at nothing.
    #[error("unresolvable reference {reference}: {reason}")]
    UnresolvableRef {
        /// The URI, pointer or anchor that could not be resolved.
        reference: String,
        /// Why it could not be.
        reason: String,
    },
    /// A key of [`SchemaOptions::resources`] is not an absolute URI.
    #[error("resource URI {uri:?} is not an absolute URI: {reason}")]
    InvalidResourceUri {
        /// The key as given.
        uri: String,
        /// What the URI parser said.
        reason: String,
    },
    /// [`SchemaOptions::max_errors`] is 0, which would report an invalid document with no
    /// findings, and so make it look valid.
    #[error("max_errors must be at least 1")]
    ZeroMaxErrors,
}

/// One way in which a document fails its schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// JSON Pointer to the offending part of the document (`""` is the whole document).
    pub instance_location: String,
    /// JSON Pointer to the failing keyword in the schema, e.g. `/properties/price/maximum`.
    /// When the keyword sits in another resource reached by `$ref`, the pointer is relative
    /// to that resource.
    pub schema_location: String,
    /// The failing keyword, e.g. `maximum`, `required`, `format` (`falseSchema` when the
    /// schema at that location is `false`).
    pub keyword: String,
    /// A sentence for people. It quotes the offending value when that is a short scalar,
    /// and says "value" instead of repeating a container or a long string.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}: {} ({} at {:?})",
            self.instance_location, self.message, self.keyword, self.schema_location
        )
    }
}

/// A compiled schema. Cloning is cheap and clones share the compiled form, so one `Schema`
/// can serve every thread.
#[derive(Clone)]
pub struct Schema {
    inner: Arc<Compiled>,
}

struct Compiled {
    validator: jsonschema::Validator,
    /// The same schema compiled for documents read as a [`Doc`](crate::Doc).
    doc_validator: jsonschema::Validator<DocJson>,
    /// A direct proof of validity, when the schema is within its subset; jsonschema decides
    /// whatever it does not prove.
    proof: Option<direct::Proof>,
    max_errors: usize,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The compiled validator is a large tree that says nothing useful in a log.
        f.debug_struct("Schema")
            .field("max_errors", &self.inner.max_errors)
            .finish_non_exhaustive()
    }
}

impl Schema {
    /// Compiles `schema` under `opts`, resolving every reference now so that validation never
    /// has to look anything up.
    pub fn compile(schema: &Value, opts: &SchemaOptions) -> Result<Schema, SchemaError> {
        if opts.max_errors == 0 {
            return Err(SchemaError::ZeroMaxErrors);
        }
        let retriever = ResourceRetriever::new(&opts.resources)?;
        let mut options = jsonschema::options()
            .with_retriever(retriever.clone())
            .should_validate_formats(opts.validate_formats);
        let mut doc_options = jsonschema::options_for::<DocJson>()
            .with_retriever(retriever)
            .should_validate_formats(opts.validate_formats);
        if let Some(draft) = opts.draft {
            options = options.with_draft(draft.to_jsonschema());
            doc_options = doc_options.with_draft(draft.to_jsonschema());
        }
        let validator = options.build(schema).map_err(schema_error)?;
        let doc_validator = doc_options.build(schema).map_err(schema_error)?;
        Ok(Schema {
            inner: Arc::new(Compiled {
                validator,
                doc_validator,
                proof: direct::Proof::compile(schema, opts.validate_formats),
                max_errors: opts.max_errors,
            }),
        })
    }

    /// Validates `doc`, returning at most [`Schema::max_errors`] findings; none means valid.
    pub fn validate(&self, doc: &Value) -> Vec<Finding> {
        self.inner
            .validator
            .iter_errors(doc)
            .take(self.inner.max_errors)
            .map(|error| finding(&error))
            .collect()
    }

    /// Whether `doc` is valid. Faster than [`Schema::validate`]: it stops at the first failure
    /// and builds no messages.
    pub fn is_valid(&self, doc: &Value) -> bool {
        self.inner.validator.is_valid(doc)
    }

    /// [`Schema::validate`] for a document read as a [`Doc`]: the same findings.
    pub fn validate_doc(&self, doc: DocRef<'_, '_>) -> Vec<Finding> {
        self.inner
            .doc_validator
            .iter_errors(doc)
            .take(self.inner.max_errors)
            .map(|error| finding(&error))
            .collect()
    }

    /// [`Schema::is_valid`] for a document read as a [`Doc`]. A schema within
    /// the direct proof's subset is checked by it first; jsonschema answers when it does not
    /// hold.
    pub fn is_valid_doc(&self, doc: DocRef<'_, '_>) -> bool {
        self.inner
            .proof
            .as_ref()
            .is_some_and(|proof| proof.holds(doc))
            || self.inner.doc_validator.is_valid(doc)
    }

    /// Reads `bytes` as a document under `limits` and validates it: the findings (none when
    /// valid), or why the bytes are not a document. The document is read as a [`Doc`]
    /// (nothing allocated per key, string or number); what `Doc` declines (a refused
    /// document, for the exact error, or one that repeats a key) is read by
    /// [`parse_document`](crate::parse_document) and validated as a [`Value`].
    pub fn validate_bytes(
        &self,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<Vec<Finding>, ParseError> {
        if let Some(doc) = Doc::parse_bytes(bytes, limits) {
            let root = doc.root();
            return Ok(if self.is_valid_doc(root) {
                Vec::new()
            } else {
                self.validate_doc(root)
            });
        }
        let doc = crate::parse_document(bytes, limits)?;
        Ok(if self.is_valid(&doc) {
            Vec::new()
        } else {
            self.validate(&doc)
        })
    }

    /// The most findings [`Schema::validate`] reports for one document.
    pub fn max_errors(&self) -> usize {
        self.inner.max_errors
    }
}

fn finding(error: &jsonschema::ValidationError<'_>) -> Finding {
    Finding {
        instance_location: error.instance_path().as_str().to_owned(),
        schema_location: error.schema_path().as_str().to_owned(),
        keyword: error.kind().keyword().to_owned(),
        message: message(error),
    }
}

/// Quoting a value longer than this in a message would make the answer grow with the document.
const MAX_QUOTED_LEN: usize = 64;

/// The readable sentence for one failure. `jsonschema` quotes the failing value, which helps
/// for a scalar but, for a container, repeats a whole subtree in every finding above it (a
/// failing `anyOf` at the root would echo the entire document). Long values are replaced by
/// "value": `instance_location` already says where they are.
fn message(error: &jsonschema::ValidationError<'_>) -> String {
    let long = match error.instance().as_ref() {
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
        Value::String(text) => text.len() > MAX_QUOTED_LEN,
        // With `arbitrary_precision` a number can be thousands of digits long.
        Value::Number(number) => number.as_str().len() > MAX_QUOTED_LEN,
        Value::Bool(_) | Value::Null => false,
    };
    if long {
        error.masked().to_string()
    } else {
        error.to_string()
    }
}

/// Turns a compilation failure from `jsonschema` into ours. `jsonschema` reports both kinds
/// of failure as a `ValidationError`; reference failures are told apart by their kind.
fn schema_error(error: jsonschema::ValidationError<'static>) -> SchemaError {
    use jsonschema::{ReferencingError, error::ValidationErrorKind};

    let ValidationErrorKind::Referencing(referencing) = error.kind() else {
        return SchemaError::Invalid {
            // Compiling validates the schema as an instance of its meta-schema, so the
            // instance path is the location inside the schema.
            location: error.instance_path().as_str().to_owned(),
            message: message(&error),
        };
    };
    let reason = match referencing {
        // The retriever's own message already names the URI and says why.
        ReferencingError::Unretrievable { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    let reference = match referencing {
        ReferencingError::Unretrievable { uri, .. } => uri.clone(),
        ReferencingError::PointerToNowhere { pointer }
        | ReferencingError::InvalidPercentEncoding { pointer, .. }
        | ReferencingError::InvalidArrayIndex { pointer, .. } => pointer.clone(),
        ReferencingError::NoSuchAnchor { anchor } | ReferencingError::InvalidAnchor { anchor } => {
            anchor.clone()
        }
        ReferencingError::UnknownSpecification { specification } => specification.clone(),
        ReferencingError::CircularMetaschema { uri } => uri.clone(),
        // A malformed URI reference; its text is in the message.
        _ => String::from("(malformed URI)"),
    };
    SchemaError::UnresolvableRef { reference, reason }
}

/// Serves [`SchemaOptions::resources`] to `jsonschema` and refuses everything else. It
/// replaces `jsonschema`'s default retriever, which could otherwise reach the network or the
/// file system if those features were ever switched on.
#[derive(Clone)]
struct ResourceRetriever {
    /// Keyed by the normalised URI text, so `HTTP://Example.com/a.json#` and
    /// `http://example.com/a.json` are the same resource.
    by_uri: HashMap<String, Value>,
}

impl ResourceRetriever {
    fn new(resources: &[(String, Value)]) -> Result<Self, SchemaError> {
        let mut by_uri = HashMap::with_capacity(resources.len());
        for (uri, schema) in resources {
            by_uri.insert(normalise_uri(uri)?, schema.clone());
        }
        Ok(Self { by_uri })
    }
}

fn normalise_uri(uri: &str) -> Result<String, SchemaError> {
    // A resource is a whole document: a fragment in its key (even an empty one) adds nothing.
    let without_fragment = uri.split_once('#').map_or(uri, |(before, _)| before);
    jsonschema::uri::from_str(without_fragment)
        .map(|parsed| parsed.normalize().as_str().to_owned())
        .map_err(|error| SchemaError::InvalidResourceUri {
            uri: uri.to_owned(),
            reason: error.to_string(),
        })
}

impl jsonschema::Retrieve for ResourceRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let key = uri.strip_fragment().normalize();
        self.by_uri.get(key.as_str()).cloned().ok_or_else(|| {
            format!("unknown schema reference {uri}: nothing is fetched from the network").into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses from text, so that numbers keep every digit (the point of several tests here).
    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("test JSON parses")
    }

    fn compile(schema: &str) -> Schema {
        Schema::compile(&parse(schema), &SchemaOptions::default()).expect("schema compiles")
    }

    #[test]
    fn validating_bytes_reads_them_as_parse_document_does() {
        let schema = compile(
            r#"{"type":"object","properties":{"price":{"maximum":0.3},"side":{"enum":["buy","sell"]}},"required":["side"]}"#,
        );
        let limits = Limits::default();
        let findings = |text: &str| schema.validate_bytes(text.as_bytes(), &limits);
        assert_eq!(findings(r#"{"price":0.3,"side":"buy"}"#), Ok(Vec::new()));
        // Exact decimals and `enum` through the Doc path, with the Value path's findings.
        let bad = r#"{"price":0.30000000000000001,"side":"hold"}"#;
        assert_eq!(findings(bad).unwrap(), schema.validate(&parse(bad)));
        assert_eq!(findings(bad).unwrap().len(), 2);
        // Malformed input: parse_document's exact error.
        for text in ["{\"side\":", "[1,]", "\u{feff}{}", "{\"side\":\"buy\"} x"] {
            let expected = crate::parse_document(text.as_bytes(), &limits).unwrap_err();
            assert_eq!(findings(text), Err(expected), "{text}");
        }
        // A repeated key: refused by default, the last value validated when allowed.
        let repeated = r#"{"side":"buy","side":"hold"}"#;
        assert_eq!(findings(repeated).unwrap_err().code(), "duplicate_key");
        let relaxed = Limits {
            allow_duplicate_keys: true,
            ..Limits::default()
        };
        let last = schema
            .validate_bytes(repeated.as_bytes(), &relaxed)
            .unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].keyword, "enum");
    }

    #[test]
    fn unique_items_are_told_apart_alike_in_a_doc_and_a_value() {
        // `DocJson` compares arrays of strings as text, the rest as jsonschema does.
        let schema = compile(r#"{"uniqueItems":true}"#);
        let many: Vec<String> = (0..40).map(|i| format!("\"tag-{i}\"")).collect();
        let distinct = format!("[{}]", many.join(","));
        let repeated = format!("[{},\"tag-7\"]", many.join(","));
        for text in [
            "[]",
            r#"["a"]"#,
            r#"["a","b"]"#,
            r#"["a","a"]"#,
            r#"["b","a","b"]"#,
            r#"["é","e\u0301","é"]"#,
            "[1,1.0]",
            r#"[1,"1"]"#,
            r#"[{"a":1},{"a":1.0}]"#,
            r#"["a",null,"a"]"#,
            "[[1],[1]]",
            &distinct,
            &repeated,
        ] {
            let doc = crate::Doc::parse(text, &Limits::default()).unwrap();
            let on_value = schema.is_valid(&parse(text));
            assert_eq!(schema.is_valid_doc(doc.root()), on_value, "{text}");
        }
        assert!(
            !schema.is_valid_doc(
                crate::Doc::parse(&repeated, &Limits::default())
                    .unwrap()
                    .root()
            )
        );
    }

    #[test]
    fn integers_are_told_apart_alike_in_a_doc_and_a_value() {
        // `DocNumber` answers integer literals from their text, the rest as jsonschema does.
        for draft in [
            "http://json-schema.org/draft-04/schema#",
            "https://json-schema.org/draft/2020-12/schema",
        ] {
            let schema = compile(&format!(r#"{{"$schema":"{draft}","type":"integer"}}"#));
            for text in [
                "1",
                "-0",
                "0",
                "1.0",
                "-1.00",
                "1.5",
                "1e2",
                "1E-2",
                "1.5e1",
                "12345678901234567890123",
                "12345678901234567890123.0",
                "12345678901234567890123.5",
                "1e400",
                "-9223372036854775809",
            ] {
                let doc = crate::Doc::parse(text, &Limits::default()).unwrap();
                assert_eq!(
                    schema.is_valid_doc(doc.root()),
                    schema.is_valid(&parse(text)),
                    "{text} under {draft}"
                );
            }
        }
    }

    #[test]
    fn maximum_compares_exact_decimals() {
        let schema = compile(r#"{"maximum": 0.3}"#);
        assert!(schema.is_valid(&parse("0.3")));
        // As f64 this is 0.3 exactly, and would pass.
        assert!(!schema.is_valid(&parse("0.30000000000000001")));
        assert_eq!(schema.validate(&parse("0.30000000000000001")).len(), 1);
    }

    #[test]
    fn multiple_of_a_decimal_is_exact() {
        let schema = compile(r#"{"multipleOf": 0.01}"#);
        // 19.99 / 0.01 is 1998.9999999999998 in f64.
        assert!(schema.is_valid(&parse("19.99")));
        assert!(!schema.is_valid(&parse("19.999")));
    }

    #[test]
    fn enum_tells_big_integers_apart() {
        let schema = compile(r#"{"enum": [100000000000000000001]}"#);
        assert!(schema.is_valid(&parse("100000000000000000001")));
        // Both round to the same f64.
        assert!(!schema.is_valid(&parse("100000000000000000000")));
    }

    #[test]
    fn formats_are_asserted_by_default_and_can_be_turned_off() {
        let schema = parse(r#"{"format": "date"}"#);
        let bad_date = parse(r#""2026-13-45""#);

        let asserted = Schema::compile(&schema, &SchemaOptions::default()).unwrap();
        assert!(asserted.is_valid(&parse(r#""2026-02-28""#)));
        assert!(!asserted.is_valid(&bad_date));
        let findings = asserted.validate(&bad_date);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].keyword, "format");

        let opts = SchemaOptions {
            validate_formats: false,
            ..SchemaOptions::default()
        };
        let annotated = Schema::compile(&schema, &opts).unwrap();
        assert!(annotated.is_valid(&bad_date));
        assert!(annotated.validate(&bad_date).is_empty());
    }

    #[test]
    fn findings_carry_pointers_keyword_and_message() {
        let schema = compile(
            r#"{
                "type": "object",
                "required": ["id"],
                "properties": {
                    "lines": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"price": {"maximum": 100}}
                    }}
                }
            }"#,
        );
        let doc = parse(r#"{"lines": [{"price": 1}, {"price": 100.5}]}"#);
        let mut findings = schema.validate(&doc);
        findings.sort_by(|a, b| a.keyword.cmp(&b.keyword));
        assert_eq!(findings.len(), 2, "{findings:#?}");

        assert_eq!(findings[0].keyword, "maximum");
        assert_eq!(findings[0].instance_location, "/lines/1/price");
        assert_eq!(
            findings[0].schema_location,
            "/properties/lines/items/properties/price/maximum"
        );
        assert!(
            findings[0].message.contains("100.5"),
            "{}",
            findings[0].message
        );

        assert_eq!(findings[1].keyword, "required");
        assert_eq!(findings[1].instance_location, "");
        assert_eq!(findings[1].schema_location, "/required");
        assert!(
            findings[1].message.contains("\"id\""),
            "{}",
            findings[1].message
        );
    }

    #[test]
    fn findings_through_a_local_ref_point_into_the_schema() {
        let schema = compile(
            r##"{"$defs": {"small": {"maximum": 1}},
                 "properties": {"n": {"$ref": "#/$defs/small"}}}"##,
        );
        let findings = schema.validate(&parse(r#"{"n": 2}"#));
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].instance_location, "/n");
        assert_eq!(findings[0].keyword, "maximum");
        // Where the keyword is written, not the path taken to it through `$ref`.
        assert_eq!(findings[0].schema_location, "/$defs/small/maximum");
    }

    #[test]
    fn messages_do_not_echo_large_values() {
        let schema = compile(
            r#"{"anyOf": [{"type": "string"}, {"required": ["id"]}],
                "properties": {"note": {"maxLength": 3}}}"#,
        );
        let long_note = "x".repeat(1000);
        let doc = parse(&format!(
            r#"{{"secretive": [1, 2, 3], "note": "{long_note}"}}"#
        ));
        let findings = schema.validate(&doc);
        assert_eq!(findings.len(), 2, "{findings:#?}");
        for finding in &findings {
            assert!(
                !finding.message.contains("secretive"),
                "{}",
                finding.message
            );
            assert!(!finding.message.contains("xxxx"), "{}", finding.message);
            assert!(finding.message.len() < 200, "{}", finding.message);
        }
        // Short scalars are still quoted: they are what a reader needs to see.
        let findings = schema.validate(&parse(r#"{"id": 1, "note": "abcd"}"#));
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert!(
            findings[0].message.contains("\"abcd\""),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn max_errors_caps_the_findings() {
        let schema = parse(r#"{"items": {"type": "string"}}"#);
        let doc = parse("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]");

        let all = Schema::compile(&schema, &SchemaOptions::default()).unwrap();
        assert_eq!(all.validate(&doc).len(), 10);

        let opts = SchemaOptions {
            max_errors: 3,
            ..SchemaOptions::default()
        };
        let capped = Schema::compile(&schema, &opts).unwrap();
        assert_eq!(capped.max_errors(), 3);
        let findings = capped.validate(&doc);
        assert_eq!(findings.len(), 3);
        assert_eq!(findings[0].instance_location, "/0");
    }

    #[test]
    fn zero_max_errors_is_refused() {
        let opts = SchemaOptions {
            max_errors: 0,
            ..SchemaOptions::default()
        };
        assert_eq!(
            Schema::compile(&parse("{}"), &opts).unwrap_err(),
            SchemaError::ZeroMaxErrors
        );
    }

    #[test]
    fn every_draft_can_be_selected() {
        // `exclusiveMaximum` is a boolean modifier of `maximum` in draft 4 and a number from
        // draft 6 on, so the same schema is only valid under some drafts.
        let draft4_style = parse(r#"{"maximum": 10, "exclusiveMaximum": true}"#);
        let number_style = parse(r#"{"exclusiveMaximum": 10}"#);
        for draft in Draft::ALL {
            let opts = SchemaOptions {
                draft: Some(draft),
                ..SchemaOptions::default()
            };
            let (valid, invalid) = if draft == Draft::Draft4 {
                (&draft4_style, &number_style)
            } else {
                (&number_style, &draft4_style)
            };
            let schema =
                Schema::compile(valid, &opts).unwrap_or_else(|e| panic!("draft {draft}: {e}"));
            assert!(schema.is_valid(&parse("9")), "draft {draft}");
            assert!(!schema.is_valid(&parse("10")), "draft {draft}");
            assert!(
                matches!(
                    Schema::compile(invalid, &opts),
                    Err(SchemaError::Invalid { .. })
                ),
                "draft {draft} accepted a schema written for another draft"
            );
        }
    }

    #[test]
    fn the_draft_is_taken_from_dollar_schema_when_not_given() {
        // Under draft 4, `exclusiveMaximum: true` makes 10 invalid; later drafts refuse it.
        let schema = compile(
            r#"{"$schema": "http://json-schema.org/draft-04/schema#",
                "maximum": 10, "exclusiveMaximum": true}"#,
        );
        assert!(!schema.is_valid(&parse("10")));
    }

    #[test]
    fn draft_names_round_trip_and_accept_common_spellings() {
        for draft in Draft::ALL {
            assert_eq!(draft.to_string().parse::<Draft>(), Ok(draft));
        }
        for (text, draft) in [
            ("draft4", Draft::Draft4),
            ("draft-04", Draft::Draft4),
            ("Draft6", Draft::Draft6),
            ("draft-07", Draft::Draft7),
            ("draft2019-09", Draft::Draft201909),
            ("draft2020-12", Draft::Draft202012),
            ("Draft202012", Draft::Draft202012),
        ] {
            assert_eq!(text.parse::<Draft>(), Ok(draft), "{text}");
        }
        assert!("3".parse::<Draft>().is_err());
        assert!("draft".parse::<Draft>().is_err());
        assert_eq!(Draft::default(), Draft::Draft202012);
    }

    #[test]
    fn refs_reach_only_the_given_resources() {
        let schema = parse(r#"{"$ref": "https://example.com/money.json"}"#);
        let money = parse(r#"{"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"}"#);

        let err = Schema::compile(&schema, &SchemaOptions::default()).unwrap_err();
        let SchemaError::UnresolvableRef { reference, reason } = &err else {
            panic!("expected an unresolvable reference, got {err:?}");
        };
        assert_eq!(reference, "https://example.com/money.json");
        assert!(
            reason.contains("nothing is fetched from the network"),
            "{reason}"
        );

        let opts = SchemaOptions {
            resources: vec![("https://example.com/money.json#".to_owned(), money)],
            ..SchemaOptions::default()
        };
        let compiled = Schema::compile(&schema, &opts).unwrap();
        assert!(compiled.is_valid(&parse(r#""19.99""#)));
        assert!(!compiled.is_valid(&parse(r#""19.9""#)));
    }

    #[test]
    fn a_custom_meta_schema_among_the_resources_sets_the_vocabularies() {
        // A dialect with only the core and applicator vocabularies: `minimum` and `type`
        // belong to the validation vocabulary, so they are not asserted.
        let meta = parse(
            r#"{
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": "https://example.com/meta",
                "$vocabulary": {
                    "https://json-schema.org/draft/2020-12/vocab/core": true,
                    "https://json-schema.org/draft/2020-12/vocab/applicator": true
                },
                "$dynamicAnchor": "meta",
                "allOf": [
                    {"$ref": "https://json-schema.org/draft/2020-12/meta/core"},
                    {"$ref": "https://json-schema.org/draft/2020-12/meta/applicator"}
                ]
            }"#,
        );
        let schema = parse(
            r#"{"$schema": "https://example.com/meta", "type": "object",
                "properties": {"a": {"minimum": 5}}}"#,
        );
        let opts = SchemaOptions {
            resources: vec![("https://example.com/meta".to_owned(), meta)],
            ..SchemaOptions::default()
        };
        let compiled = Schema::compile(&schema, &opts).unwrap();
        assert!(compiled.is_valid(&parse(r#"{"a": 1}"#)));
        assert!(compiled.is_valid(&parse("1")));

        // Without the resource, the meta-schema is an unresolvable reference, not a guess.
        let err = Schema::compile(&schema, &SchemaOptions::default()).unwrap_err();
        assert!(
            matches!(err, SchemaError::UnresolvableRef { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_dangling_local_ref_is_a_schema_error() {
        let err = Schema::compile(
            &parse(r##"{"$ref": "#/$defs/missing"}"##),
            &SchemaOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, SchemaError::UnresolvableRef { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_schema_that_breaks_its_meta_schema_is_invalid() {
        let err = Schema::compile(
            &parse(r#"{"properties": {"a": {"type": "decimal"}}}"#),
            &SchemaOptions::default(),
        )
        .unwrap_err();
        let SchemaError::Invalid { location, .. } = &err else {
            panic!("expected an invalid schema, got {err:?}");
        };
        assert_eq!(location, "/properties/a/type");
    }

    #[test]
    fn a_bad_resource_uri_is_refused() {
        let opts = SchemaOptions {
            resources: vec![("not a uri".to_owned(), parse("{}"))],
            ..SchemaOptions::default()
        };
        let err = Schema::compile(&parse("{}"), &opts).unwrap_err();
        assert!(
            matches!(err, SchemaError::InvalidResourceUri { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn one_schema_serves_many_threads() {
        let schema = compile(r#"{"type": "integer", "maximum": 1000}"#);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let schema = &schema;
                scope.spawn(move || {
                    for i in 0..500 {
                        let n = t * 500 + i;
                        let doc = parse(&n.to_string());
                        assert_eq!(schema.is_valid(&doc), n <= 1000);
                        assert_eq!(schema.validate(&doc).is_empty(), n <= 1000);
                    }
                });
            }
        });
        fn assert_shareable<T: Send + Sync + Clone>() {}
        assert_shareable::<Schema>();
    }
}
