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

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone};
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
    /// A pattern compiled to chrono items once.
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// Compiled formatting items.
        items: Vec<Item<'static>>,
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
        let mut strftime = String::new();
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
                    push_literal(&mut strftime, chars[j]);
                    j += 1;
                }
                if j == chars.len() {
                    return Err(format!("date format '{format}' has an unclosed quote"));
                }
                i = j + 1;
                continue;
            }
            if !c.is_ascii_alphabetic() {
                push_literal(&mut strftime, c);
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
                    "%Y"
                }
                ('M', 2) => {
                    has_month = true;
                    "%m"
                }
                ('d', 2) => {
                    has_day = true;
                    "%d"
                }
                ('H', 2) => {
                    has_time = true;
                    "%H"
                }
                ('m', 2) => {
                    has_time = true;
                    "%M"
                }
                ('s', 2) => {
                    has_time = true;
                    "%S"
                }
                ('S', 3) => "%3f",
                ('X', 3) => {
                    has_offset = true;
                    "%:z"
                }
                _ => {
                    let letters: String = std::iter::repeat_n(c, run).collect();
                    return Err(format!(
                        "date format '{format}': '{letters}' is not understood; use yyyy, MM, dd, HH, mm, ss, SSS, XXX, quote other letters ('T'), or one of epoch_millis, epoch_seconds, iso8601"
                    ));
                }
            };
            strftime.push_str(spec);
            i += run;
        }
        if !(has_year && has_month && has_day) {
            return Err(format!("date format '{format}' must contain yyyy, MM and dd"));
        }
        let items = StrftimeItems::new(&strftime)
            .parse_to_owned()
            .map_err(|_| format!("date format '{format}' could not be compiled"))?;
        Ok(DateCodec::Pattern { pattern: format.to_owned(), items, has_time, has_offset })
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
            DateCodec::Pattern { items, .. } => Value::String(moment.format_with_items(items.iter()).to_string()),
            DateCodec::EpochMillis => Value::from(moment.timestamp_millis()),
            DateCodec::EpochSeconds => Value::from(moment.timestamp()),
            DateCodec::Iso8601 => Value::String(moment.to_rfc3339_opts(SecondsFormat::AutoSi, false)),
        })
    }

    /// Native value → canonical value.
    pub fn to_canonical(&self, native: &Value) -> Result<Value, DateError> {
        let text = scalar_text(native);
        let error = || DateError { value: text.to_string(), expected: self.describe() };
        let moment: DateTime<FixedOffset> = match self {
            DateCodec::Pattern { items, has_time, has_offset, .. } => {
                let mut parsed = Parsed::new();
                chrono::format::parse(&mut parsed, &text, items.iter()).map_err(|_| error())?;
                if *has_offset {
                    parsed.to_datetime().map_err(|_| error())?
                } else {
                    let date = parsed.to_naive_date().map_err(|_| error())?;
                    let time = if *has_time { parsed.to_naive_time().map_err(|_| error())? } else { NaiveTime::MIN };
                    in_beijing(NaiveDateTime::new(date, time)).ok_or_else(error)?
                }
            }
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
        Ok(Value::String(if self.canonical_is_time() {
            moment.to_rfc3339_opts(SecondsFormat::AutoSi, false)
        } else {
            moment.format("%Y-%m-%d").to_string()
        }))
    }
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
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
