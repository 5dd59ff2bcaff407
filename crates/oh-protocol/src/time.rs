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
    format_micros(
        micros.saturating_add(offset_seconds.saturating_mul(1_000_000)),
        "",
    )
}

/// A UTC timestamp with `Z`: `2026-05-04T10:20:11.402118Z`.
pub fn utc_timestamp(micros: i64) -> String {
    format_micros(micros, "Z")
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = month;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an ISO 8601 date-time (`YYYY-MM-DD[(T|t| )HH:MM[:SS[.f…]]][Z|±HH[[:]MM]]`) into
/// Unix microseconds and whether it carried an offset. A naive value is read as UTC; fraction
/// digits past the sixth are dropped. `None` for anything else.
///
/// This reads client text (query parameters), so it works on bytes and only ever slices at
/// positions it has checked to be ASCII: any input, however malformed, gives `None`, never a
/// panic, and every field is range-checked before arithmetic (no overflow).
pub fn parse_micros(text: &str) -> Option<(i64, bool)> {
    let mut cursor = Cursor(text.trim().as_bytes());
    let year = cursor.number(4)?;
    cursor.expect(b'-')?;
    let month = cursor.number(2)?;
    cursor.expect(b'-')?;
    let day = cursor.number(2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut micros = days_from_civil(year, month, day) * 86_400_000_000;
    if let Some(b'T' | b't' | b' ') = cursor.peek() {
        cursor.advance();
        let hour = cursor.number(2)?;
        cursor.expect(b':')?;
        let minute = cursor.number(2)?;
        let mut second = 0;
        let mut fraction = 0;
        if cursor.peek() == Some(b':') {
            cursor.advance();
            second = cursor.number(2)?;
            if cursor.peek() == Some(b'.') {
                cursor.advance();
                fraction = cursor.fraction_micros()?;
            }
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        micros += ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction;
    }
    let offset_seconds = match cursor.peek() {
        None => return Some((micros, false)),
        Some(b'Z' | b'z') => {
            cursor.advance();
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            cursor.advance();
            let hours = cursor.number(2)?;
            if cursor.peek() == Some(b':') {
                cursor.advance();
            }
            let minutes = if cursor.peek().is_some() {
                cursor.number(2)?
            } else {
                0
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if sign == b'-' { -seconds } else { seconds }
        }
        Some(_) => return None,
    };
    cursor.end()?;
    Some((micros - offset_seconds * 1_000_000, true))
}

/// Parses a datetime given in a query as the reference's pydantic models read one, into Unix
/// microseconds: a number is Unix seconds (milliseconds when its magnitude is above 2·10¹⁰),
/// anything else goes through [`parse_micros`] (a naive value is UTC). `None` when it is
/// neither, or out of range.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(number) = text.parse::<f64>() {
        if !number.is_finite() {
            return None;
        }
        let seconds = if number.abs() > 20_000_000_000.0 {
            number / 1000.0
        } else {
            number
        };
        let micros = (seconds * 1_000_000.0).round();
        // Beyond year ±9999 nothing can be formatted back.
        return (micros.abs() < 253_402_300_800_000_000.0).then_some(micros as i64);
    }
    parse_micros(text).map(|(micros, _)| micros)
}

/// A forward reader over the bytes of a timestamp.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn advance(&mut self) {
        self.0 = self.0.get(1..).unwrap_or_default();
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.advance())
    }

    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }

    /// Exactly `width` ASCII digits (`width` ≤ 4, so the value fits easily).
    fn number(&mut self, width: usize) -> Option<i64> {
        let digits = self.0.get(..width)?;
        let mut value = 0i64;
        for &b in digits {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(b - b'0');
        }
        self.0 = self.0.get(width..).unwrap_or_default();
        Some(value)
    }

    /// One or more digits of a fraction of a second, as microseconds (digits past the sixth
    /// are read and dropped).
    fn fraction_micros(&mut self) -> Option<i64> {
        let count = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if count == 0 {
            return None;
        }
        let mut micros = 0i64;
        for position in 0..6 {
            let digit = self.0.get(position).filter(|_| position < count);
            micros = micros * 10 + digit.map_or(0, |b| i64::from(b - b'0'));
        }
        self.0 = self.0.get(count..).unwrap_or_default();
        Some(micros)
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_datetimes_read_numbers_as_unix_time() {
        let base = 1_777_889_702_118_204; // 2026-05-04T10:15:02.118204Z
        assert_eq!(parse_datetime("2026-05-04T10:15:02.118204Z"), Some(base));
        assert_eq!(
            parse_datetime(" 2026-05-04 12:15:02.118204+02:00"),
            Some(base)
        );
        assert_eq!(parse_datetime("1777889702.118204"), Some(base));
        assert_eq!(parse_datetime("1777889702118.204"), Some(base));
        assert_eq!(parse_datetime("0"), Some(0));
        assert_eq!(parse_datetime("inf"), None);
        assert_eq!(parse_datetime("NaN"), None);
        assert_eq!(parse_datetime("1e300"), None);
        assert_eq!(parse_datetime("yesterday"), None);
    }

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
        assert_eq!(parse_micros("2026-02-29"), None);
        assert_eq!(
            parse_micros("2024-02-29T00:00Z"),
            Some((1_709_164_800_000_000, true))
        );
        assert_eq!(
            parse_micros("2026-05-04T10:15:02.118204-0130"),
            Some((t + 5_400_000_000, true))
        );
    }

    #[test]
    fn malformed_text_is_none_not_a_panic() {
        // A multi-byte character where the offset digits go used to panic in `split_at`.
        for text in [
            "2026-01-01T00:00:00+a\u{e9}",
            "2026-01-01T00:00:00+\u{e9}",
            "2026-05-048.\u{20ac}X",
            "2026-01-01T00:00:00+99999999999999999:00",
            "999999-1-1",
            "+12345-1-1",
            "2026-05-04T1:2",
            "2026-05-04T10:15:02.",
            "2026-05-04T10:15:02+2",
            "2026-05-04T10:15:02+02:00junk",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}-01-01",
        ] {
            assert_eq!(parse_micros(text), None, "{text:?}");
        }
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
