//! Timestamp formats of the wire.
//!
//! Events use naive local time `YYYY-MM-DDTHH:MM:SS.ffffff` (Python's `isoformat()`: the
//! fraction is left out when it is zero); clients sort events by comparing these strings, so a
//! producer should emit one fixed width. Conversation and bash timestamps are UTC with `Z`.
//! These helpers format a Unix time given in microseconds; the caller picks the offset.

/// Civil date (proleptic Gregorian) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn format_micros(micros: i64, suffix: &str) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}{suffix}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// An event timestamp for Unix time `micros` shifted by `offset_seconds` (the local offset),
/// always with six fraction digits: `2026-05-04T10:15:02.118204`.
pub fn naive_timestamp(micros: i64, offset_seconds: i64) -> String {
    format_micros(micros + offset_seconds * 1_000_000, "")
}

/// A UTC timestamp with `Z`: `2026-05-04T10:20:11.402118Z`.
pub fn utc_timestamp(micros: i64) -> String {
    format_micros(micros, "Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00.000000Z");
        // 2026-05-04T10:15:02.118204Z
        assert_eq!(
            utc_timestamp(1_777_889_702_118_204),
            "2026-05-04T10:15:02.118204Z"
        );
        assert_eq!(
            naive_timestamp(1_777_889_702_118_204, 2 * 3600),
            "2026-05-04T12:15:02.118204"
        );
        assert_eq!(utc_timestamp(-1), "1969-12-31T23:59:59.999999Z");
        // Leap day.
        assert_eq!(
            utc_timestamp(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
