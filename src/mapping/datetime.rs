//! Date and time formats (日期时间格式) between the canonical model and native payloads.
//!
//! Canonical dates are `yyyy-MM-dd`; canonical times are ISO 8601 with the Beijing offset
//! (`2026-11-22T10:00:00+08:00`). A native format is one of:
//! - a pattern built from `yyyy MM dd HH mm ss SSS XXX` and literal characters (quote letters:
//!   `yyyy-MM-dd'T'HH:mm:ssXXX`), e.g. `yyyyMMdd`, `yyyy-MM-dd HH:mm:ss`, `yyyy年MM月dd日`;
//! - `epoch_millis` or `epoch_seconds` (numbers, Beijing time when read back);
//! - `iso8601` (any offset when read, +08:00 when written).
//!
//! Native times without an offset are Beijing time (UTC+8). A pattern with no time of day maps to
//! a canonical date, anything else to a canonical time.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Timelike};
use serde_json::Value;

/// UTC+8 (北京时间), the offset of every canonical time. Checked at compile time.
const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

/// UTC+8 (北京时间), the offset of every canonical time.
pub fn beijing() -> FixedOffset {
    BEIJING
}

/// A compiled native date or time format.
#[derive(Debug, Clone)]
pub enum DateCodec {
    /// A pattern compiled once into fixed-width fields and literals.
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// Compiled tokens.
        tokens: Vec<Token>,
        /// Whether the pattern carries a time of day.
        has_time: bool,
        /// Whether the pattern carries an offset.
        has_offset: bool,
    },
    /// Milliseconds since the Unix epoch.
    EpochMillis,
    /// Seconds since the Unix epoch.
    EpochSeconds,
    /// RFC 3339 / ISO 8601 with an offset.
    Iso8601,
}

/// One compiled element of a date pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// `yyyy`.
    Year,
    /// `MM`.
    Month,
    /// `dd`.
    Day,
    /// `HH`.
    Hour,
    /// `mm`.
    Minute,
    /// `ss`.
    Second,
    /// `SSS`.
    Millis,
    /// `XXX`: `+08:00`, `-05:00` or `Z`.
    Offset,
    /// Literal text.
    Literal(String),
}

/// Why a value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateError {
    /// The value as received.
    pub value: String,
    /// The format it should have had.
    pub expected: String,
}

impl DateCodec {
    /// Compiles a format name or pattern.
    pub fn compile(format: &str) -> Result<DateCodec, String> {
        match format {
            "epoch_millis" => return Ok(DateCodec::EpochMillis),
            "epoch_seconds" => return Ok(DateCodec::EpochSeconds),
            "iso8601" => return Ok(DateCodec::Iso8601),
            _ => {}
        }
        let mut tokens: Vec<Token> = Vec::new();
        let literal = |tokens: &mut Vec<Token>, c: char| match tokens.last_mut() {
            Some(Token::Literal(text)) => text.push(c),
            _ => tokens.push(Token::Literal(c.to_string())),
        };
        let mut has_time = false;
        let mut has_offset = false;
        let (mut has_year, mut has_month, mut has_day) = (false, false, false);
        let chars: Vec<char> = format.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '\'' {
                    literal(&mut tokens, chars[j]);
                    j += 1;
                }
                if j == chars.len() {
                    return Err(format!("date format '{format}' has an unclosed quote"));
                }
                i = j + 1;
                continue;
            }
            if !c.is_ascii_alphabetic() {
                literal(&mut tokens, c);
                i += 1;
                continue;
            }
            let mut run = 1;
            while i + run < chars.len() && chars[i + run] == c {
                run += 1;
            }
            let spec = match (c, run) {
                ('y', 4) => {
                    has_year = true;
                    Token::Year
                }
                ('M', 2) => {
                    has_month = true;
                    Token::Month
                }
                ('d', 2) => {
                    has_day = true;
                    Token::Day
                }
                ('H', 2) => {
                    has_time = true;
                    Token::Hour
                }
                ('m', 2) => {
                    has_time = true;
                    Token::Minute
                }
                ('s', 2) => {
                    has_time = true;
                    Token::Second
                }
                ('S', 3) => Token::Millis,
                ('X', 3) => {
                    has_offset = true;
                    Token::Offset
                }
                _ => {
                    let letters: String = std::iter::repeat_n(c, run).collect();
                    return Err(format!(
                        "date format '{format}': '{letters}' is not understood; use yyyy, MM, dd, HH, mm, ss, SSS, XXX, quote other letters ('T'), or one of epoch_millis, epoch_seconds, iso8601"
                    ));
                }
            };
            tokens.push(spec);
            i += run;
        }
        if !(has_year && has_month && has_day) {
            return Err(format!("date format '{format}' must contain yyyy, MM and dd"));
        }
        Ok(DateCodec::Pattern { pattern: format.to_owned(), tokens, has_time, has_offset })
    }

    /// True when the canonical side is a time rather than a date.
    pub fn canonical_is_time(&self) -> bool {
        match self {
            DateCodec::Pattern { has_time, .. } => *has_time,
            _ => true,
        }
    }

    /// True when the native side is a number (epoch formats).
    pub fn native_is_number(&self) -> bool {
        matches!(self, DateCodec::EpochMillis | DateCodec::EpochSeconds)
    }

    fn describe(&self) -> String {
        match self {
            DateCodec::Pattern { pattern, .. } => pattern.clone(),
            DateCodec::EpochMillis => "epoch milliseconds".into(),
            DateCodec::EpochSeconds => "epoch seconds".into(),
            DateCodec::Iso8601 => "ISO 8601 with an offset".into(),
        }
    }

    /// Canonical value → native value.
    pub fn to_native(&self, canonical: &Value) -> Result<Value, DateError> {
        let text = scalar_text(canonical);
        let expected = if self.canonical_is_time() {
            "an ISO 8601 time such as 2026-11-22T10:00:00+08:00"
        } else {
            "a date such as 2026-11-22"
        };
        let error = || DateError { value: text.to_string(), expected: expected.into() };
        let moment = parse_canonical(&text).ok_or_else(error)?;
        Ok(match self {
            DateCodec::Pattern { tokens, .. } => Value::String(format_tokens(tokens, &moment).ok_or_else(error)?),
            DateCodec::EpochMillis => Value::from(moment.timestamp_millis()),
            DateCodec::EpochSeconds => Value::from(moment.timestamp()),
            DateCodec::Iso8601 => Value::String(rfc3339(&moment)),
        })
    }

    /// Native value → canonical value.
    pub fn to_canonical(&self, native: &Value) -> Result<Value, DateError> {
        let text = scalar_text(native);
        let error = || DateError { value: text.to_string(), expected: self.describe() };
        let moment: DateTime<FixedOffset> = match self {
            DateCodec::Pattern { tokens, .. } => parse_tokens(tokens, &text).ok_or_else(error)?,
            DateCodec::EpochMillis => {
                let ms = epoch_number(native).ok_or_else(error)?;
                DateTime::from_timestamp_millis(ms).ok_or_else(error)?.with_timezone(&beijing())
            }
            DateCodec::EpochSeconds => {
                let s = epoch_number(native).ok_or_else(error)?;
                DateTime::from_timestamp(s, 0).ok_or_else(error)?.with_timezone(&beijing())
            }
            DateCodec::Iso8601 => DateTime::parse_from_rfc3339(&text).map_err(|_| error())?,
        };
        let moment = moment.with_timezone(&beijing());
        let mut out = String::with_capacity(32);
        if self.canonical_is_time() {
            out = rfc3339(&moment);
        } else if !push_date(&mut out, &moment) {
            return Err(error());
        }
        Ok(Value::String(out))
    }
}

/// Two or four ASCII digits; `None` when the number does not fit (years beyond 9999).
fn push_digits(out: &mut String, value: u32, width: usize) -> bool {
    let limit = 10u32.pow(width as u32);
    if value >= limit {
        return false;
    }
    let mut divisor = limit / 10;
    while divisor > 0 {
        out.push(char::from(b'0' + ((value / divisor) % 10) as u8));
        divisor /= 10;
    }
    true
}

fn push_date(out: &mut String, moment: &DateTime<FixedOffset>) -> bool {
    let year = u32::try_from(moment.year()).unwrap_or(u32::MAX);
    push_digits(out, year, 4)
        && {
            out.push('-');
            push_digits(out, moment.month(), 2)
        }
        && {
            out.push('-');
            push_digits(out, moment.day(), 2)
        }
}

/// `2026-11-22T10:00:00+08:00`, with `.123` when there are milliseconds: the canonical time.
fn rfc3339(moment: &DateTime<FixedOffset>) -> String {
    let mut out = String::with_capacity(29);
    if !push_date(&mut out, moment) {
        return moment.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    }
    out.push('T');
    push_digits(&mut out, moment.hour(), 2);
    out.push(':');
    push_digits(&mut out, moment.minute(), 2);
    out.push(':');
    push_digits(&mut out, moment.second(), 2);
    let millis = moment.timestamp_subsec_millis();
    if millis > 0 && millis < 1000 {
        out.push('.');
        push_digits(&mut out, millis, 3);
    }
    push_offset(&mut out, moment.offset().local_minus_utc());
    out
}

fn push_offset(out: &mut String, seconds: i32) {
    out.push(if seconds < 0 { '-' } else { '+' });
    let minutes = seconds.unsigned_abs() / 60;
    push_digits(out, minutes / 60, 2);
    out.push(':');
    push_digits(out, minutes % 60, 2);
}

/// Formats a moment with a compiled pattern.
fn format_tokens(tokens: &[Token], moment: &DateTime<FixedOffset>) -> Option<String> {
    let mut out = String::with_capacity(24);
    for token in tokens {
        let ok = match token {
            Token::Year => push_digits(&mut out, u32::try_from(moment.year()).ok()?, 4),
            Token::Month => push_digits(&mut out, moment.month(), 2),
            Token::Day => push_digits(&mut out, moment.day(), 2),
            Token::Hour => push_digits(&mut out, moment.hour(), 2),
            Token::Minute => push_digits(&mut out, moment.minute(), 2),
            Token::Second => push_digits(&mut out, moment.second(), 2),
            Token::Millis => push_digits(&mut out, moment.timestamp_subsec_millis().min(999), 3),
            Token::Offset => {
                push_offset(&mut out, moment.offset().local_minus_utc());
                true
            }
            Token::Literal(text) => {
                out.push_str(text);
                true
            }
        };
        if !ok {
            return None;
        }
    }
    Some(out)
}

/// Reads exactly `width` ASCII digits.
fn take_digits(text: &mut &str, width: usize) -> Option<u32> {
    let digits = text.get(..width)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    *text = &text[width..];
    digits.parse().ok()
}

/// Parses a native value with a compiled pattern; times without an offset are Beijing time.
fn parse_tokens(tokens: &[Token], text: &str) -> Option<DateTime<FixedOffset>> {
    let mut rest = text;
    let (mut year, mut month, mut day, mut hour, mut minute, mut second, mut millis) = (0, 1, 1, 0, 0, 0, 0);
    let mut offset: Option<FixedOffset> = None;
    for token in tokens {
        match token {
            Token::Year => year = take_digits(&mut rest, 4)?,
            Token::Month => month = take_digits(&mut rest, 2)?,
            Token::Day => day = take_digits(&mut rest, 2)?,
            Token::Hour => hour = take_digits(&mut rest, 2)?,
            Token::Minute => minute = take_digits(&mut rest, 2)?,
            Token::Second => second = take_digits(&mut rest, 2)?,
            Token::Millis => millis = take_digits(&mut rest, 3)?,
            Token::Offset => {
                if let Some(after) = rest.strip_prefix('Z') {
                    rest = after;
                    offset = FixedOffset::east_opt(0);
                } else {
                    let sign = match rest.as_bytes().first()? {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    rest = &rest[1..];
                    let hours = take_digits(&mut rest, 2)?;
                    rest = rest.strip_prefix(':')?;
                    let minutes = take_digits(&mut rest, 2)?;
                    let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
                    offset = Some(FixedOffset::east_opt(sign * seconds)?);
                }
            }
            Token::Literal(literal) => rest = rest.strip_prefix(literal.as_str())?,
        }
    }
    if !rest.is_empty() {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_milli_opt(hour, minute, second, millis)?;
    let naive = NaiveDateTime::new(date, time);
    match offset {
        Some(offset) => offset.from_local_datetime(&naive).single(),
        None => in_beijing(naive),
    }
}

fn scalar_text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

fn epoch_number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn in_beijing(naive: NaiveDateTime) -> Option<DateTime<FixedOffset>> {
    beijing().from_local_datetime(&naive).single()
}

/// A canonical date (`2026-11-22`) or time (RFC 3339) as a moment in Beijing time.
fn parse_canonical(text: &str) -> Option<DateTime<FixedOffset>> {
    if text.len() == 10 {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        return in_beijing(NaiveDateTime::new(date, NaiveTime::MIN));
    }
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&beijing()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_round_trip_through_native() {
        let cases = [
            ("yyyyMMdd", json!("1949-12-31"), json!("19491231")),
            ("yyyy-MM-dd", json!("1949-12-31"), json!("1949-12-31")),
            ("yyyy-MM-dd HH:mm:ss", json!("2026-11-22T10:00:00+08:00"), json!("2026-11-22 10:00:00")),
            ("yyyyMMddHHmmss", json!("2026-11-22T10:00:00+08:00"), json!("20261122100000")),
            ("yyyy年MM月dd日", json!("2026-11-22"), json!("2026年11月22日")),
            ("epoch_millis", json!("2026-11-22T10:00:00+08:00"), json!(1795312800000_i64)),
            ("iso8601", json!("2026-11-22T10:00:00+08:00"), json!("2026-11-22T10:00:00+08:00")),
        ];
        for (format, canonical, native) in cases {
            let codec = DateCodec::compile(format).unwrap();
            assert_eq!(codec.to_native(&canonical).unwrap(), native, "to native with {format}");
            assert_eq!(codec.to_canonical(&native).unwrap(), canonical, "to canonical with {format}");
        }
    }

    #[test]
    fn milliseconds_offsets_and_quoted_letters() {
        let codec = DateCodec::compile("yyyy-MM-dd'T'HH:mm:ss.SSSXXX").unwrap();
        assert_eq!(
            codec.to_native(&json!("2026-11-22T10:00:00.250+08:00")).unwrap(),
            json!("2026-11-22T10:00:00.250+08:00")
        );
        assert_eq!(
            codec.to_canonical(&json!("2026-11-22T02:00:00.250Z")).unwrap(),
            json!("2026-11-22T10:00:00.250+08:00")
        );
        assert_eq!(
            codec.to_canonical(&json!("2026-11-21T21:00:00.000-05:00")).unwrap(),
            json!("2026-11-22T10:00:00+08:00")
        );
    }

    #[test]
    fn impossible_dates_and_trailing_text_are_refused() {
        let codec = DateCodec::compile("yyyyMMdd").unwrap();
        for bad in ["20260230", "2026113", "202611221", "2026-1122", "２０２６１１２２", ""] {
            assert!(codec.to_canonical(&json!(bad)).is_err(), "{bad} must be refused");
        }
        let time = DateCodec::compile("yyyy-MM-dd HH:mm:ss").unwrap();
        assert!(time.to_canonical(&json!("2026-11-22 24:00:00")).is_err());
        assert!(time.to_canonical(&json!("2026-11-22 10:00:00 ")).is_err());
    }

    #[test]
    fn other_offsets_are_shown_in_beijing_time() {
        let codec = DateCodec::compile("iso8601").unwrap();
        assert_eq!(codec.to_canonical(&json!("2026-11-22T02:00:00Z")).unwrap(), json!("2026-11-22T10:00:00+08:00"));
        let native = DateCodec::compile("yyyy-MM-dd HH:mm:ss").unwrap();
        assert_eq!(native.to_native(&json!("2026-11-22T02:00:00+00:00")).unwrap(), json!("2026-11-22 10:00:00"));
    }

    #[test]
    fn bad_values_and_patterns_are_refused() {
        let codec = DateCodec::compile("yyyyMMdd").unwrap();
        let err = codec.to_canonical(&json!("2026-11-22")).unwrap_err();
        assert_eq!(err.expected, "yyyyMMdd");
        assert!(codec.to_native(&json!("22/11/2026")).is_err());
        assert!(DateCodec::compile("YYYY-MM-DD").unwrap_err().contains("'YYYY' is not understood"));
        assert!(DateCodec::compile("HH:mm").unwrap_err().contains("must contain yyyy"));
    }
}
