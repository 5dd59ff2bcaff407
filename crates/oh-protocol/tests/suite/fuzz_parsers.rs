//! Property-based fuzzing of the parsers of client text in this crate: timestamps and ids.
//!
//! Each target runs arbitrary input plus generators close to the valid grammar (so mutations
//! reach the deep branches) and asserts no panic and a consistent answer. Run length:
//! `PROPTEST_CASES` cases per round (proptest's default, 256, in CI) and, when
//! `OH_FUZZ_SECONDS` is set, rounds with fresh seeds until that many seconds have passed:
//!
//! ```sh
//! OH_FUZZ_SECONDS=600 PROPTEST_CASES=100000 cargo test -p oh-protocol --test all -- \
//!     fuzz_parsers::timestamps --nocapture
//! ```
//!
//! Regression policy: a failure's seed is written to `fuzz_parsers.proptest-regressions` next to
//! this file; commit it with the fix (proptest replays those seeds first on every later run).

use std::fmt::Debug;
use std::time::{Duration, Instant};

use oh_protocol::HexUuid;
use oh_protocol::time::{naive_timestamp, parse_micros, utc_timestamp};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// Runs `test` on `strategy` for `PROPTEST_CASES` cases, in rounds until `OH_FUZZ_SECONDS`.
fn fuzz<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let budget = std::env::var("OH_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let config = Config {
        source_file: Some(file!()),
        // `<test>.proptest-regressions` next to this file (the crate-root lookup of the
        // default does not apply to integration tests).
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let started = Instant::now();
    let mut cases = 0u64;
    loop {
        let mut runner = TestRunner::new(config.clone());
        if let Err(err) = runner.run(&strategy, &test) {
            panic!("fuzz target {name} failed after {cases} cases: {err}");
        }
        cases += u64::from(config.cases);
        if budget.is_none_or(|budget| started.elapsed() >= budget) {
            break;
        }
    }
    eprintln!(
        "fuzz target {name}: {cases} cases in {:.1} s, no failure",
        started.elapsed().as_secs_f64()
    );
}

/// Characters that trip byte-slicing parsers: multi-byte ones next to grammar bytes.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            '0', '1', '2', '9', '-', '+', ':', '.', 'T', 't', ' ', 'Z', 'z', ',', '\0', '\n',
        ]),
        2 => prop::sample::select(vec!['é', '€', '😀', '\u{a0}', '\u{2212}', '٣', '\u{feff}']),
        1 => any::<char>(),
    ]
}

/// A timestamp-like string: valid pieces, each possibly replaced or cut.
fn near_timestamp() -> impl Strategy<Value = String> {
    // A field: mostly a valid value (so the parser gets past it), else odd characters.
    let field = |range: std::ops::Range<u32>, width: usize| {
        prop_oneof![
            8 => range.prop_map(move |v| format!("{v:0width$}")),
            1 => prop::collection::vec(tricky_char(), 0..=width + 2)
                .prop_map(|d| d.into_iter().collect::<String>()),
        ]
    };
    let sep = |c: &'static str| prop_oneof![8 => Just(c.to_owned()), 1 => tricky_char().prop_map(String::from)];
    let offset = prop_oneof![
        1 => Just(String::new()),
        1 => Just("Z".to_owned()),
        2 => (prop::sample::select(vec!["+", "-"]), field(0..24, 2), sep(":"), field(0..60, 2))
            .prop_map(|(s, h, c, m)| format!("{s}{h}{c}{m}")),
        2 => (prop::sample::select(vec!["+", "-"]), prop::collection::vec(tricky_char(), 0..6))
            .prop_map(|(s, rest)| format!("{s}{}", rest.into_iter().collect::<String>())),
    ];
    (
        (
            field(0..10_000, 4),
            sep("-"),
            field(1..13, 2),
            sep("-"),
            field(1..29, 2),
        ),
        (
            sep("T"),
            field(0..24, 2),
            sep(":"),
            field(0..60, 2),
            sep(":"),
            field(0..60, 2),
        ),
        (
            sep("."),
            prop::collection::vec(prop::char::range('0', '9'), 0..12),
            offset,
        ),
        0usize..200,
    )
        .prop_map(
            |((y, s1, mo, s2, d), (t, h, c1, mi, c2, s), (dot, frac, off), cut)| {
                let full = format!(
                    "{y}{s1}{mo}{s2}{d}{t}{h}{c1}{mi}{c2}{s}{dot}{}{off}",
                    frac.into_iter().collect::<String>()
                );
                // Cut at a char boundary near `cut` so truncated forms are covered too.
                let end = full
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain(std::iter::once(full.len()))
                    .find(|&i| i >= cut)
                    .unwrap_or(full.len());
                if cut < 32 {
                    full[..end].to_owned()
                } else {
                    full
                }
            },
        )
}

/// Round trip: whatever parses must format and parse back to the same instant.
fn check_timestamp(text: &str) -> Result<(), TestCaseError> {
    if let Some((micros, _aware)) = parse_micros(text) {
        prop_assert_eq!(parse_micros(&utc_timestamp(micros)), Some((micros, true)));
        prop_assert_eq!(
            parse_micros(&naive_timestamp(micros, 0)),
            Some((micros, false))
        );
    }
    Ok(())
}

#[test]
fn timestamps() {
    let strategy = prop_oneof![
        1 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..48)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        4 => near_timestamp(),
    ];
    fuzz("timestamps", strategy, |text| check_timestamp(&text));
}

#[test]
fn timestamps_valid_grammar_parses_exactly() {
    // Any instant in years 0001..=9999 with any whole-minute offset in ±23:59.
    let strategy = (
        -62_135_596_800_000_000i64..253_402_300_799_999_999,
        -(23 * 60 + 59)..=(23i64 * 60 + 59),
        any::<bool>(),
    );
    fuzz(
        "timestamps_valid_grammar",
        strategy,
        |(micros, offset_minutes, colon)| {
            let local = naive_timestamp(micros, offset_minutes * 60);
            let (sign, abs) = if offset_minutes < 0 {
                ('-', -offset_minutes)
            } else {
                ('+', offset_minutes)
            };
            let sep = if colon { ":" } else { "" };
            let text = format!("{local}{sign}{:02}{sep}{:02}", abs / 60, abs % 60);
            prop_assume!(!local.starts_with('-') && local.len() == 26);
            prop_assert_eq!(parse_micros(&text), Some((micros, true)), "{}", text);
            Ok(())
        },
    );
}

/// UUID-like text: the accepted forms, with case changes, cuts and odd characters.
fn near_uuid() -> impl Strategy<Value = String> {
    (
        any::<u128>(),
        0usize..5,
        prop::collection::vec((0usize..45, tricky_char()), 0..3),
    )
        .prop_map(|(bits, form, edits)| {
            let id = uuid::Uuid::from_u128(bits);
            let mut text = match form {
                0 => id.simple().to_string(),
                1 => id.hyphenated().to_string(),
                2 => id.urn().to_string(),
                3 => id.braced().to_string(),
                _ => id.hyphenated().to_string().to_uppercase(),
            };
            for (at, c) in edits {
                if let Some((i, _)) = text.char_indices().nth(at) {
                    text.replace_range(
                        i..i + text[i..].chars().next().map_or(0, char::len_utf8),
                        &c.to_string(),
                    );
                }
            }
            text
        })
}

#[test]
fn ids() {
    let strategy = prop_oneof![1 => any::<String>(), 3 => near_uuid()];
    fuzz("ids", strategy, |text| {
        let json = serde_json::Value::String(text.clone());
        if let Ok(id) = serde_json::from_value::<HexUuid>(json) {
            // What is accepted is written back as 32 hex characters and read back the same.
            let written = id.to_string();
            prop_assert_eq!(written.len(), 32);
            prop_assert_eq!(
                serde_json::from_value::<HexUuid>(serde_json::Value::String(written)).ok(),
                Some(id)
            );
        }
        Ok(())
    });
}
