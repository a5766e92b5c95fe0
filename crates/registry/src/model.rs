//! What the registry stores: named, versioned schemas and pipelines owned by tenants, and the
//! rules for their names and references.

use serde::{Deserialize, Serialize};

use crate::RegistryError;

/// The tenant everything belongs to until API keys name others.
pub const DEFAULT_TENANT: &str = "default";

/// The URI prefix by which a schema `$ref`s another registered schema of the same tenant:
/// `assay://schemas/{name}/{version}`. The version is required, so that a schema means the
/// same thing forever; nothing behind such a URI is ever fetched from a network.
pub const SCHEMA_URI_PREFIX: &str = "assay://schemas/";

/// The kinds of stored records: the two kinds of registered resources (schemas and
/// pipelines, which `Registry` compiles and serves) and API keys (which `keys::Keys` serves;
/// the registry ignores them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A JSON Schema document.
    Schema,
    /// A pipeline definition ([`PipelineDef`]).
    Pipeline,
    /// An API key record (see `keys`), named by the key's id.
    Key,
}

impl Kind {
    /// Every kind, for whatever has to go through them all (a snapshot).
    pub const ALL: [Kind; 3] = [Kind::Schema, Kind::Pipeline, Kind::Key];

    /// The lowercase name, as used in keys, URLs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schema => "schema",
            Self::Pipeline => "pipeline",
            Self::Key => "key",
        }
    }

    /// The kind [`Kind::as_str`] names, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored version of a resource (or an API key record). `body` is compact JSON text,
/// exactly as it will be compiled (numbers keep their digits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Schema, pipeline or key.
    pub kind: Kind,
    /// Owner.
    pub tenant: String,
    /// Name (a key's id), unique per tenant and kind.
    pub name: String,
    /// 1, 2, 3, ...
    pub version: u32,
    /// The document (a schema, a [`PipelineDef`] or a key record, as JSON).
    pub body: String,
}

/// A name and its newest version, for listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The resource's name.
    pub name: String,
    /// Its newest version.
    pub latest: u32,
}

/// Something changed in the store; sent to every instance. (Not serde: an internally tagged
/// enum holding numbers breaks under serde_json's `arbitrary_precision`; see
/// [`Change::to_message`].)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new version was stored.
    Put {
        /// Schema, pipeline or key.
        kind: Kind,
        /// Owner.
        tenant: String,
        /// Name.
        name: String,
        /// The new version.
        version: u32,
    },
    /// A resource and all its versions were deleted.
    Deleted {
        /// Schema, pipeline or key.
        kind: Kind,
        /// Owner.
        tenant: String,
        /// Name.
        name: String,
    },
    /// Changes may have been missed (a reconnect): reload everything.
    Resync,
}

impl Change {
    /// A one-line text form for pub/sub: `put schema TENANT NAME VERSION`,
    /// `deleted pipeline TENANT NAME`, `resync`. Tenants and names never contain spaces.
    pub fn to_message(&self) -> String {
        match self {
            Self::Put {
                kind,
                tenant,
                name,
                version,
            } => format!("put {kind} {tenant} {name} {version}"),
            Self::Deleted { kind, tenant, name } => format!("deleted {kind} {tenant} {name}"),
            Self::Resync => "resync".into(),
        }
    }

    /// Parses [`Change::to_message`]'s form.
    pub fn from_message(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split(' ').collect();
        let kind = Kind::parse;
        match parts.as_slice() {
            ["put", k, t, n, v] => Some(Self::Put {
                kind: kind(k)?,
                tenant: (*t).into(),
                name: (*n).into(),
                version: v.parse().ok()?,
            }),
            ["deleted", k, t, n] => Some(Self::Deleted {
                kind: kind(k)?,
                tenant: (*t).into(),
                name: (*n).into(),
            }),
            ["resync"] => Some(Self::Resync),
            _ => None,
        }
    }
}

/// A pipeline definition as stored: references are pinned to versions (`name@3`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineDef {
    /// Schema the input must satisfy, `name@version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<String>,
    /// jq program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    /// Schema the output must satisfy, `name@version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<String>,
    /// Output encoding name (`json`, `ndjson`, `jcs`, `msgpack`, `cbor`).
    #[serde(default = "default_output")]
    pub output: String,
    /// Engine options (see `engine::pipeline`), passed through as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
}

fn default_output() -> String {
    "json".into()
}

/// A reference to a schema: `name` (the newest version when a pipeline is registered, then
/// pinned) or `name@version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaRef {
    /// The schema's name.
    pub name: String,
    /// The pinned version, if any.
    pub version: Option<u32>,
}

impl SchemaRef {
    /// Parses `name` or `name@version`.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let (name, version) = match s.split_once('@') {
            Some((name, v)) => {
                let v = v.parse::<u32>().ok().filter(|v| *v > 0).ok_or_else(|| {
                    RegistryError::Invalid(format!(
                        "schema reference {s:?}: the version after @ must be a positive integer"
                    ))
                })?;
                (name, Some(v))
            }
            None => (s, None),
        };
        check_name(Kind::Schema, name)?;
        Ok(Self {
            name: name.to_owned(),
            version,
        })
    }
}

impl std::fmt::Display for SchemaRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Names are 1 to 128 characters of `A-Z a-z 0-9 . _ -`, starting with a letter or digit,
/// so that they are safe in URLs, store keys and `name@version` references.
pub fn check_name(kind: Kind, name: &str) -> Result<(), RegistryError> {
    if is_name(name) {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "invalid {kind} name {name:?}: use 1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )))
    }
}

/// [`check_name`]'s rule without the error, for hot paths (`keys::Keys::authenticate`).
pub(crate) fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Tenants follow the same rule as names.
pub fn check_tenant(tenant: &str) -> Result<(), RegistryError> {
    check_name(Kind::Schema, tenant)
        .map_err(|_| RegistryError::Invalid(format!("invalid tenant {tenant:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_parse() {
        assert_eq!(
            SchemaRef::parse("trade-input@3").unwrap(),
            SchemaRef {
                name: "trade-input".into(),
                version: Some(3)
            }
        );
        assert_eq!(SchemaRef::parse("trade").unwrap().version, None);
        assert!(SchemaRef::parse("trade@0").is_err());
        assert!(SchemaRef::parse("trade@x").is_err());
        assert!(SchemaRef::parse("@1").is_err());
    }

    #[test]
    fn change_messages_round_trip() {
        for c in [
            Change::Put {
                kind: Kind::Schema,
                tenant: "t".into(),
                name: "a.b".into(),
                version: 7,
            },
            Change::Deleted {
                kind: Kind::Pipeline,
                tenant: "t".into(),
                name: "p".into(),
            },
            Change::Put {
                kind: Kind::Key,
                tenant: "t.x".into(),
                name: "0123456789abcdef".into(),
                version: 1,
            },
            Change::Deleted {
                kind: Kind::Key,
                tenant: "t".into(),
                name: "0123456789abcdef".into(),
            },
            Change::Resync,
        ] {
            assert_eq!(Change::from_message(&c.to_message()), Some(c));
        }
        assert_eq!(Change::from_message("put schema t"), None);
        assert_eq!(Change::from_message("deleted widget t n"), None);
    }

    #[test]
    fn kinds_parse_their_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("Schema"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name(Kind::Schema, "trade.input_v2-x").is_ok());
        for bad in ["", "-x", "a/b", "a@b", "a b", "é", &"a".repeat(129)] {
            assert!(check_name(Kind::Schema, bad).is_err(), "{bad:?}");
        }
    }
}
