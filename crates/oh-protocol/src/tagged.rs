//! Discriminated unions keyed by a string field, as the Python models write them.
//!
//! Python marks every polymorphic object with `kind` (the class name), and message content
//! with `type`. Each union here is a Rust enum with one newtype variant per known kind and an
//! [`Unknown`] variant that keeps the raw JSON, so a reader built today survives a newer peer.

use serde::{Deserialize, Serialize};

/// An object whose discriminator this crate does not know, kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unknown {
    /// The whole object, discriminator included.
    pub raw: serde_json::Map<String, serde_json::Value>,
}

impl Unknown {
    /// The value of the discriminator field `tag`, if it is a string.
    pub fn tag(&self, tag: &str) -> Option<&str> {
        self.raw.get(tag).and_then(serde_json::Value::as_str)
    }
}

/// Serializes `inner`'s fields followed by the discriminator, like pydantic (which writes
/// `kind` last).
#[derive(Serialize)]
pub(crate) struct Tagged<'a, T: Serialize> {
    #[serde(flatten)]
    pub(crate) inner: &'a T,
    #[serde(flatten)]
    pub(crate) tag: TagField,
}

/// The discriminator as a one-entry map, so its field name can vary.
pub(crate) struct TagField {
    pub(crate) name: &'static str,
    pub(crate) value: &'static str,
}

impl Serialize for TagField {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.name, self.value)?;
        map.end()
    }
}

/// Implements `Serialize`, `Deserialize` and `kind()` for an enum of newtype variants plus
/// `Unknown(Unknown)`.
///
/// `default = "Kind"` makes a missing discriminator mean that kind (the reference assumes
/// `Agent` for an agent without `kind`, and `LocalWorkspace` for a workspace).
/// `form = compact` makes the union always serialize in the compact form (events).
macro_rules! tagged_union {
    (
        $name:ident, tag = $tag:literal $(, default = $default:literal)? $(, form = $compact:ident)?;
        $( $variant:ident($ty:ty) = $kind:literal ),+ $(,)?
    ) => {
        impl $name {
            /// The discriminator of this value.
            #[allow(dead_code, unreachable_pub, reason = "private unions may not need it")]
            pub fn kind(&self) -> &str {
                match self {
                    $( Self::$variant(_) => $kind, )+
                    Self::Unknown(u) => u.tag($tag).unwrap_or(""),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let write = || match self {
                    $( Self::$variant(inner) => serde::Serialize::serialize(
                        &$crate::tagged::Tagged {
                            inner,
                            tag: $crate::tagged::TagField { name: $tag, value: $kind },
                        },
                        serializer,
                    ), )+
                    Self::Unknown(u) => serde::Serialize::serialize(u, serializer),
                };
                tagged_union!(@write $($compact)? write)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                let map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
                #[allow(unused_mut, unused_assignments, reason = "only some unions have a default")]
                let mut kind = map.get($tag).and_then(serde_json::Value::as_str).map(str::to_owned);
                $( if kind.is_none() && !map.contains_key($tag) { kind = Some($default.to_owned()); } )?
                let Some(kind) = kind else {
                    return Err(D::Error::custom(concat!(
                        "missing or non-string discriminator `", $tag, "` for ", stringify!($name)
                    )));
                };
                match kind.as_str() {
                    $( $kind => {
                        let mut map = map;
                        map.remove($tag);
                        serde_json::from_value::<$ty>(serde_json::Value::Object(map))
                            .map(Self::$variant)
                            .map_err(|e| D::Error::custom(format_args!("{}: {e}", $kind)))
                    } )+
                    _ => Ok(Self::Unknown($crate::tagged::Unknown { raw: map })),
                }
            }
        }
    };
    (@write compact $write:ident) => { $crate::wire::compact($write) };
    (@write $write:ident) => { $write() };
}

pub(crate) use tagged_union;
