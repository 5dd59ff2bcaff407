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

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an ISO 8601 date-time (`YYYY-MM-DD[THH:MM[:SS[.ffffff]]]`, `T` or space, optional
/// `Z` or `±HH:MM` offset) into Unix microseconds and whether it carried an offset. A naive
/// value is read as UTC. `None` for anything else.
pub fn parse_micros(text: &str) -> Option<(i64, bool)> {
    let text = text.trim();
    let (date, rest) = text.split_at_checked(10)?;
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || date.len() != 10 {
        return None;
    }
    let mut micros = days_from_civil(year, month, day) * 86_400_000_000;
    let mut rest = rest;
    let mut aware = false;
    if let Some(time) = rest.strip_prefix(['T', 't', ' ']) {
        let (clock, zone) = match time.find(['Z', 'z', '+', '-']) {
            Some(i) => time.split_at(i),
            None => (time, ""),
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut fields = hms.split(':');
        let h: i64 = fields.next()?.parse().ok()?;
        let m: i64 = fields.next()?.parse().ok()?;
        let s: i64 = fields.next().map_or(Some(0), |s| s.parse().ok())?;
        if h > 23 || m > 59 || s > 60 || fields.next().is_some() {
            return None;
        }
        let mut frac_micros = 0i64;
        if !frac.is_empty() {
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
            frac_micros = digits.parse().ok()?;
        }
        micros += ((h * 60 + m) * 60 + s) * 1_000_000 + frac_micros;
        rest = zone;
    }
    if rest.is_empty() {
        return Some((micros, aware));
    }
    aware = true;
    if rest.eq_ignore_ascii_case("z") {
        return Some((micros, aware));
    }
    let sign = if rest.starts_with('-') { -1 } else { 1 };
    let offset = rest.get(1..)?;
    let (oh, om) = offset
        .split_once(':')
        .unwrap_or_else(|| offset.split_at(offset.len().min(2)));
    let oh: i64 = oh.parse().ok()?;
    let om: i64 = if om.is_empty() { 0 } else { om.parse().ok()? };
    Some((micros - sign * (oh * 3600 + om * 60) * 1_000_000, aware))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_formats_and_offsets() {
        let t = 1_777_889_702_118_204;
        assert_eq!(parse_micros(&utc_timestamp(t)), Some((t, true)));
        assert_eq!(parse_micros(&naive_timestamp(t, 0)), Some((t, false)));
        assert_eq!(
            parse_micros("2026-05-04T12:15:02.118204+02:00"),
            Some((t, true))
        );
        assert_eq!(
            parse_micros("2026-05-04 10:15:02.1182045"),
            Some((t, false))
        );
        assert_eq!(
            parse_micros("2026-05-04"),
            Some((1_777_852_800_000_000, false))
        );
        assert_eq!(parse_micros("yesterday"), None);
        assert_eq!(parse_micros("2026-13-01"), None);
    }

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
