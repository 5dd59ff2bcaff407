//! How values become JSON: the two serialization forms of the reference server.
//!
//! The Python server writes the same models in two ways. REST responses use FastAPI's default
//! (every field present, `null` where unset: the **full** form). Events, WebSocket frames,
//! `base_state.json` and the 1.57.0 client's create request use pydantic's `exclude_none`
//! (model fields that are `None` are left out: the **compact** form). `exclude_none` only
//! concerns model fields: `null`s inside free-form JSON (`dict[str, Any]`) stay.
//!
//! The types of this crate serialize in the full form with plain `serde_json` calls, and in the
//! compact form through [`to_compact_value`], [`to_compact_string`] and [`to_compact_vec`].
//! [`Event`](crate::Event) always uses the compact form (also inside a full-form page), as the
//! server does for every event it sends.

use std::cell::Cell;

use serde::Serialize;

thread_local! {
    static COMPACT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the compact form switched on for this thread, restoring the previous form
/// afterwards (also when `f` panics). Serialization is synchronous, so a thread-local flag is
/// exact: no other value can be serialized on this thread in between.
pub(crate) fn compact<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            COMPACT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(COMPACT.with(|c| c.replace(true)));
    f()
}

/// `skip_serializing_if` predicate for optional model fields: skipped only when unset *and* the
/// compact form is being written.
pub(crate) fn omit_none<T>(value: &Option<T>) -> bool {
    value.is_none() && COMPACT.with(Cell::get)
}

/// `#[serde(default = "…")]` for boolean fields whose default is `true`.
pub(crate) fn yes() -> bool {
    true
}

/// Serializes `value` in the compact form (pydantic's `exclude_none`).
pub fn to_compact_value<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<serde_json::Value> {
    compact(|| serde_json::to_value(value))
}

/// Serializes `value` in the compact form, as a JSON string.
pub fn to_compact_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    compact(|| serde_json::to_string(value))
}

/// Serializes `value` in the compact form, as JSON bytes.
pub fn to_compact_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    compact(|| serde_json::to_vec(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample {
        #[serde(skip_serializing_if = "omit_none")]
        a: Option<u8>,
        b: serde_json::Value,
    }

    #[test]
    fn full_form_keeps_nulls_and_compact_form_drops_model_nulls_only() {
        let s = Sample {
            a: None,
            b: serde_json::json!({"inner": null}),
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"a":null,"b":{"inner":null}}"#
        );
        assert_eq!(to_compact_string(&s).unwrap(), r#"{"b":{"inner":null}}"#);
        // The flag is restored afterwards.
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"a":null,"b":{"inner":null}}"#
        );
    }

    #[test]
    fn flag_is_restored_after_a_panic() {
        let caught = std::panic::catch_unwind(|| compact(|| panic!("boom")));
        assert!(caught.is_err());
        assert!(!COMPACT.with(Cell::get));
    }
}
