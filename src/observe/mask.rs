//! Masking personal data (个人信息脱敏) in log lines: resident ID numbers (居民身份证号), phone numbers
//! (手机号, 固定电话) and personal names (姓名) never reach a log line in the clear.
//!
//! [`mask`] works on any text — a whole formatted log line, text or JSON — in one pass, without
//! knowing the log format. It looks for:
//!
//! | what | recognised as | masked as |
//! | --- | --- | --- |
//! | resident ID, 18 chars (居民身份证号) | a run of exactly 18 digits, or of exactly 17 digits followed by `X`/`x` | first 6 and last 4 kept: `110105********002X` |
//! | resident ID, 15 digits (一代身份证) | a run of exactly 15 digits | first 6 and last 3 kept (the 6-digit birth date 出生日期 is hidden): `110105******123` |
//! | mobile number (手机号) | a run of exactly 11 digits `1[3-9]…`, or of 13 digits `861[3-9]…` (the `+86`/`86` prefix) | first 3 and last 4 kept: `138****8000`, `+86138****8000` |
//! | landline (固定电话) | area code of 3–4 digits starting with `0`, `-`, then 7–8 digits | area code and last 4 kept: `0851-****0000` |
//! | personal name (姓名) | the value of one of [`NAME_KEYS`] (see there for the forms) | first character kept: `张*`, `贵*********` |
//!
//! A "run" is a maximal sequence of ASCII digits: digits inside a longer run are never masked, so
//! epoch milliseconds (`1795312800000`, 13 digits), 14-digit timestamps, 19-digit snowflake ids and
//! long account numbers stay as they are. Letters around a run do not make it longer, so a number
//! glued to letters (`tel13800138000`) is still masked; case numbers such as `GZ2026000001` have no
//! run of a masked length and stay. Two kinds of token are skipped whole so that they stay
//! greppable: UUIDs (8-4-4-4-12 hex, the gateway's request ids) and hex digests of exactly 32, 40,
//! 64 or 128 hex characters (trace ids, SHA-1/SHA-256/SHA-512) that stand alone (not glued to more
//! letters or digits).
//!
//! Known limits: a name written in free text without one of the keys (`"applicant 张三 submitted"`)
//! cannot be recognised; phone numbers written with spaces or dashes inside (`138 0013 8000`),
//! landlines with the area code in brackets, and full-width digits (全角数字) are not recognised; an
//! unrelated number of exactly 11 (`1[3-9]…`), 15 or 18 digits is masked too — erring on the side
//! of hiding.

use std::borrow::Cow;

/// Keys whose value is a personal name (姓名), matched case-sensitively as a whole identifier (so
/// `applicant_name` matches, `username` and `Name` do not):
///
/// - `name`, `full_name`: a name (姓名);
/// - `applicant`, `applicant_name`, `sqrxm` (申请人姓名): the applicant (申请人);
/// - `legal_representative`, `fddbr` (法定代表人), `legalPerson`: a legal representative;
/// - `xm` (姓名), `hzxm` (户主姓名, head of household).
///
/// The value is found in these forms, with optional spaces around the separator:
///
/// - `key=value` (tracing's text format for `%value`): the value ends at whitespace, `,`, `}` and
///   also at `"`, `'`, `\`, `&`, `;`, `<`, `)`, `]` or an ANSI escape, none of which a name holds;
/// - `key="value"` (tracing's text format for string fields) and `key: "value"` (Rust `Debug`);
/// - `"key":"value"` (JSON), also escaped once or more inside another string (`\"key\":\"value\"`,
///   a JSON body logged as a string field);
/// - `<key>value</key>` (XML bodies), also `<key><![CDATA[value]]></key>`.
///
/// A quoted value ends at its closing quote (or, unterminated, at the end of the line). ANSI colour
/// codes between key, separator and value (tracing's coloured text format) are skipped.
pub const NAME_KEYS: &[&str] = &[
    "name",
    "applicant",
    "applicant_name",
    "legal_representative",
    "sqrxm",
    "xm",
    "fddbr",
    "legalPerson",
    "full_name",
    "hzxm",
];

/// Masks resident ID numbers, mobile and landline numbers and personal names in `text` (see the
/// [module documentation](self) for the exact rules).
///
/// Returns `Cow::Borrowed` when nothing was masked — the common case, which costs one scan and no
/// allocation. Never panics, never splits a multi-byte character, runs in time linear in `text`.
pub fn mask(text: &str) -> Cow<'_, str> {
    mask_with(text, false)
}

/// [`mask`] for the lines of tracing's JSON format, whose span objects end with the span's name
/// (`"span":{"request_id":"r1","name":"request"}`): a `"name"` member that closes its object, at
/// the top level of the line (not escaped inside a string), is that name and is kept. Tracing puts
/// event fields before `target` and span fields before the span's name, so a field called `name`
/// is never in that place and is still masked.
pub(crate) fn mask_tracing_json(text: &str) -> Cow<'_, str> {
    mask_with(text, true)
}

fn mask_with(text: &str, keep_span_names: bool) -> Cow<'_, str> {
    // Quick byte scan: without a digit or a separator a name key needs, nothing can be masked.
    if !text.bytes().any(|b| b.is_ascii_digit() || matches!(b, b'=' | b':' | b'>')) {
        return Cow::Borrowed(text);
    }
    let mut masker = Masker { text, bytes: text.as_bytes(), out: None, copied: 0, keep_span_names };
    masker.run();
    match masker.out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(text.get(masker.copied..).unwrap_or_default());
            Cow::Owned(out)
        }
    }
}

/// The state of one pass: the output is built lazily, on the first replacement.
struct Masker<'t> {
    text: &'t str,
    bytes: &'t [u8],
    /// `Some` once something was masked: the text before `copied`, masked.
    out: Option<String>,
    /// Bytes of `text` before this index are already in `out`.
    copied: usize,
    /// See [`mask_tracing_json`].
    keep_span_names: bool,
}

impl Masker<'_> {
    fn byte(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn is_digit_at(&self, i: usize) -> bool {
        self.byte(i).is_some_and(|b| b.is_ascii_digit())
    }

    /// One pass over the text; every branch moves `i` forward, and every byte is looked at a
    /// bounded number of times.
    fn run(&mut self) {
        let len = self.bytes.len();
        let mut i = 0;
        // Whether the byte before `i` ends a token: start of text, a non-identifier byte, or an
        // ANSI escape sequence.
        let mut token_start = true;
        while i < len {
            let Some(b) = self.byte(i) else { break };
            if b == 0x1b
                && let Some(end) = ansi_end(self.bytes, i)
            {
                i = end;
                token_start = true;
                continue;
            }
            if token_start
                && b.is_ascii_hexdigit()
                && let Some(end) = self.hex_token_end(i)
            {
                // What follows stands alone: neither a letter nor a digit.
                i = end;
                token_start = false;
                continue;
            }
            if b.is_ascii_digit() {
                i = self.digit_run(i);
                token_start = !self.byte(i.saturating_sub(1)).is_some_and(is_ident);
                continue;
            }
            if token_start && b.is_ascii_alphabetic() {
                let key_end = self.ident_end(i);
                let key = self.text.get(i..key_end).unwrap_or_default();
                if NAME_KEYS.contains(&key)
                    && let Some(end) = self.name_value(i, key_end)
                {
                    i = end;
                    token_start = !self.byte(i.saturating_sub(1)).is_some_and(is_ident);
                    continue;
                }
            }
            token_start = !is_ident(b);
            i += 1;
        }
    }

    /// End of the identifier (`[A-Za-z0-9_]*`) starting at `i`.
    fn ident_end(&self, mut i: usize) -> usize {
        while self.byte(i).is_some_and(is_ident) {
            i += 1;
        }
        i
    }

    /// End of the digit run starting at `i`.
    fn digit_run_end(&self, mut i: usize) -> usize {
        while self.is_digit_at(i) {
            i += 1;
        }
        i
    }

    /// A UUID or a hex digest of a usual length starting at `i` (a token start), standing alone:
    /// returns its end so that it is kept whole.
    fn hex_token_end(&self, i: usize) -> Option<usize> {
        const UUID_DASHES: [usize; 4] = [8, 13, 18, 23];
        let stands_alone = |end: usize| !self.byte(end).is_some_and(|b| b.is_ascii_alphanumeric());
        let is_uuid = (0..36).all(|k| {
            let b = self.byte(i + k);
            if UUID_DASHES.contains(&k) { b == Some(b'-') } else { b.is_some_and(|b| b.is_ascii_hexdigit()) }
        });
        if is_uuid && stands_alone(i + 36) {
            return Some(i + 36);
        }
        let mut end = i;
        while self.byte(end).is_some_and(|b| b.is_ascii_hexdigit()) {
            end += 1;
        }
        (matches!(end - i, 32 | 40 | 64 | 128) && stands_alone(end)).then_some(end)
    }

    /// Handles the digit run starting at `start` (not preceded by a digit); returns where to go on.
    fn digit_run(&mut self, start: usize) -> usize {
        let end = self.digit_run_end(start);
        if start > 0 && self.is_digit_at(start - 1) {
            return end; // Defensive: the middle of a run is never a match.
        }
        let run = end - start;
        let next = self.byte(end);
        // Landline (固定电话): 0xx(x)-xxxxxxx(x).
        if (3..=4).contains(&run) && self.byte(start) == Some(b'0') && next == Some(b'-') {
            let number = end + 1;
            let number_end = self.digit_run_end(number);
            if (7..=8).contains(&(number_end - number)) {
                self.star(number, number_end - 4);
                return number_end;
            }
        }
        match run {
            18 => self.star(start + 6, start + 14),
            17 if matches!(next, Some(b'X' | b'x')) => {
                self.star(start + 6, start + 14);
                return end + 1;
            }
            15 => self.star(start + 6, start + 12),
            11 if self.is_mobile(start) => self.star(start + 3, start + 7),
            13 if self.byte(start) == Some(b'8') && self.byte(start + 1) == Some(b'6') && self.is_mobile(start + 2) => {
                self.star(start + 5, start + 9)
            }
            _ => {}
        }
        end
    }

    /// `1[3-9]` at `i`: the start of a mainland mobile number (手机号).
    fn is_mobile(&self, i: usize) -> bool {
        self.byte(i) == Some(b'1') && matches!(self.byte(i + 1), Some(b'3'..=b'9'))
    }

    /// Masks the value of the name key at `key_start..key_end`, if one follows in a known form;
    /// returns the end of the value.
    fn name_value(&mut self, key_start: usize, key_end: usize) -> Option<usize> {
        // XML: <key>value</key>
        if key_start > 0 && self.byte(key_start - 1) == Some(b'<') && self.byte(key_end) == Some(b'>') {
            return Some(self.xml_value(key_end + 1));
        }
        let mut p = key_end;
        let key_quote_level = self.quote_at(p).map(|(level, after)| {
            p = after;
            level
        });
        let key_quoted = key_quote_level.is_some();
        p = self.skip_blanks(p);
        let separator = self.byte(p)?;
        if separator != b'=' && separator != b':' {
            return None;
        }
        p = self.skip_blanks(p + 1);
        if let Some((level, start)) = self.quote_at(p) {
            let end = self.quoted_end(start, level);
            // Step over the closing quote's backslashes and quote, when there is one.
            let mut after = end;
            while self.byte(after) == Some(b'\\') {
                after += 1;
            }
            if self.byte(after) == Some(b'"') {
                after += 1;
            }
            let span_name = self.keep_span_names
                && self.bytes.get(key_start..key_end) == Some(b"name".as_slice())
                && key_start > 1
                && self.byte(key_start - 1) == Some(b'"')
                && self.byte(key_start - 2) != Some(b'\\')
                && key_quote_level == Some(0)
                && separator == b':'
                && level == 0
                && self.byte(end) == Some(b'"')
                && self.byte(after) == Some(b'}');
            if !span_name {
                self.mask_name(start, end);
            }
            return Some(after);
        }
        if separator == b'=' && !key_quoted {
            let mut end = p;
            while self.byte(end).is_some_and(|b| !ends_unquoted(b)) {
                end += 1;
            }
            self.mask_name(p, end);
            return Some(end);
        }
        None
    }

    /// A quote at `i`, possibly escaped (`"`, `\"`, `\\\"`, …): the number of backslashes and the
    /// index after the quote.
    fn quote_at(&self, i: usize) -> Option<(usize, usize)> {
        let mut p = i;
        while self.byte(p) == Some(b'\\') {
            p += 1;
        }
        (self.byte(p) == Some(b'"')).then_some((p - i, p + 1))
    }

    /// The end of a quoted value starting at `start`, opened by a quote escaped `level` times: the
    /// index of the closing quote's first byte, or of the end of the line when unterminated.
    fn quoted_end(&self, start: usize, level: usize) -> usize {
        let mut p = start;
        if level == 0 {
            // A plain quoted string: `\` escapes the next byte.
            while let Some(b) = self.byte(p) {
                match b {
                    b'"' | b'\n' => return p,
                    b'\\' => p += 2,
                    _ => p += 1,
                }
            }
            return self.bytes.len();
        }
        // An escaped quoted string: the closing quote is the next `"`, with its backslashes.
        while let Some(b) = self.byte(p) {
            match b {
                b'"' => {
                    let mut end = p;
                    while end > start && p - end < level && self.byte(end - 1) == Some(b'\\') {
                        end -= 1;
                    }
                    return end;
                }
                b'\n' => return p,
                _ => p += 1,
            }
        }
        self.bytes.len()
    }

    /// The end of an XML element's text starting at `start`; masks it (surrounding whitespace and
    /// a CDATA wrapper kept).
    fn xml_value(&mut self, start: usize) -> usize {
        const CDATA_OPEN: &[u8] = b"<![CDATA[";
        let mut start = start;
        while self.byte(start).is_some_and(|b| b.is_ascii_whitespace()) {
            start += 1;
        }
        let rest = self.bytes.get(start..).unwrap_or_default();
        if rest.starts_with(CDATA_OPEN) {
            let value = start + CDATA_OPEN.len();
            let tail = self.bytes.get(value..).unwrap_or_default();
            let end = tail.windows(3).position(|w| w == b"]]>").map_or(self.bytes.len(), |k| value + k);
            self.mask_name(value, end);
            return end;
        }
        let end = rest.iter().position(|&b| b == b'<').map_or(self.bytes.len(), |k| start + k);
        let mut value_end = end;
        while value_end > start && self.byte(value_end - 1).is_some_and(|b| b.is_ascii_whitespace()) {
            value_end -= 1;
        }
        self.mask_name(start, value_end);
        end
    }

    /// Spaces and tabs, and ANSI escape sequences, from `i` on.
    fn skip_blanks(&self, mut i: usize) -> usize {
        loop {
            match self.byte(i) {
                Some(b' ' | b'\t') => i += 1,
                Some(0x1b) => match ansi_end(self.bytes, i) {
                    Some(end) => i = end,
                    None => return i,
                },
                _ => return i,
            }
        }
    }

    /// Masks a name at `start..end`: its first character is kept. A value starting with an escape
    /// (`\`) is masked whole, so that no broken escape is left behind.
    fn mask_name(&mut self, start: usize, end: usize) {
        let Some(value) = self.text.get(start..end) else { return };
        let keep = match value.chars().next() {
            None | Some('\\') => 0,
            Some(first) => first.len_utf8(),
        };
        self.star(start + keep, end);
    }

    /// Replaces `start..end` (character boundaries, after everything replaced so far) by one `*`
    /// per character. Nothing happens when the range is empty or already all `*`, so masked text
    /// stays borrowed when masked again.
    fn star(&mut self, start: usize, end: usize) {
        let (Some(before), Some(masked)) = (self.text.get(self.copied..start), self.text.get(start..end)) else {
            return;
        };
        if masked.bytes().all(|b| b == b'*') {
            return;
        }
        let out = self.out.get_or_insert_with(|| String::with_capacity(self.text.len()));
        out.push_str(before);
        out.extend(std::iter::repeat_n('*', masked.chars().count()));
        self.copied = end;
    }
}

/// A byte of an identifier (key names, and what makes a run of letters one token).
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A byte that ends an unquoted name value.
fn ends_unquoted(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b',' | b'}' | b'"' | b'\'' | b'\\' | b'&' | b';' | b'<' | b')' | b']' | 0x1b)
}

/// The end of an ANSI SGR sequence (`ESC [ digits/; m`) starting at `i`.
fn ansi_end(bytes: &[u8], i: usize) -> Option<usize> {
    if bytes.get(i + 1) != Some(&b'[') {
        return None;
    }
    let mut p = i + 2;
    while bytes.get(p).is_some_and(|b| b.is_ascii_digit() || *b == b';') {
        p += 1;
    }
    (bytes.get(p) == Some(&b'm')).then_some(p + 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn masked(text: &str) -> String {
        mask(text).into_owned()
    }

    #[test]
    fn resident_id_18_keeps_six_and_four() {
        assert_eq!(masked("110105194912310021"), "110105********0021");
        assert_eq!(masked("身份证号：110105194912310021，已核验"), "身份证号：110105********0021，已核验");
    }

    #[test]
    fn resident_id_with_check_character_x() {
        assert_eq!(masked("id=11010519491231002X end"), "id=110105********002X end");
        assert_eq!(masked("id=11010519491231002x"), "id=110105********002x");
        assert_eq!(masked("证件11010519491231002X号"), "证件110105********002X号");
    }

    #[test]
    fn resident_id_15_hides_the_birth_date() {
        assert_eq!(masked("old=110105491231123;"), "old=110105******123;");
    }

    #[test]
    fn mobile_numbers() {
        assert_eq!(masked("phone=13800138000"), "phone=138****8000");
        assert_eq!(masked("手机13800138000联系"), "手机138****8000联系");
        assert_eq!(masked("tel:+8613800138000"), "tel:+86138****8000");
        assert_eq!(masked("tel:8619912345678,"), "tel:86199****5678,");
        assert_eq!(masked("+86 13800138000"), "+86 138****8000");
        // 11 digits not starting 1[3-9] are not a mobile number.
        assert_eq!(masked("n=12800138000"), "n=12800138000");
        assert!(matches!(mask("n=12800138000"), Cow::Borrowed(_)));
    }

    #[test]
    fn landlines() {
        assert_eq!(masked("电话 0851-85550000 转"), "电话 0851-****0000 转");
        assert_eq!(masked("010-1234567"), "010-***4567");
        assert_eq!(masked("0851-85550000-123"), "0851-****0000-123");
        // Not a landline: the area code does not start with 0, or the number is too short.
        assert_eq!(masked("2026-05-01"), "2026-05-01");
        assert_eq!(masked("0851-123456"), "0851-123456");
    }

    #[test]
    fn names_in_every_form() {
        assert_eq!(masked("name=张三 next"), "name=张* next");
        assert_eq!(masked(r#"applicant_name="贵州山水科技有限公司" x=1"#), r#"applicant_name="贵*********" x=1"#);
        assert_eq!(masked(r#"{"xm":"张三","age":3}"#), r#"{"xm":"张*","age":3}"#);
        assert_eq!(masked(r#"{"fddbr": "李四五"}"#), r#"{"fddbr": "李**"}"#);
        assert_eq!(
            masked(r#"Applicant { sqrxm: "王五", hzxm: "赵六" }"#),
            r#"Applicant { sqrxm: "王*", hzxm: "赵*" }"#
        );
        assert_eq!(
            masked("legalPerson=欧阳娜娜,legal_representative=Li}"),
            "legalPerson=欧***,legal_representative=L*}"
        );
        assert_eq!(masked("?full_name=张三&applicant=李四;"), "?full_name=张*&applicant=李*;");
        assert_eq!(masked("<xm>张三</xm><hzxm> 赵六 </hzxm>"), "<xm>张*</xm><hzxm> 赵* </hzxm>");
        assert_eq!(masked("<xm><![CDATA[张三]]></xm>"), "<xm><![CDATA[张*]]></xm>");
    }

    #[test]
    fn names_escaped_inside_strings() {
        // A JSON body logged as a string field, in the JSON and in the text format.
        assert_eq!(
            masked(r#"{"body":"{\"xm\":\"张三\",\"n\":1}","level":"INFO"}"#),
            r#"{"body":"{\"xm\":\"张*\",\"n\":1}","level":"INFO"}"#
        );
        assert_eq!(masked(r#"body="{\"name\":\"张三\"}""#), r#"body="{\"name\":\"张*\"}""#);
        assert_eq!(masked(r#"{"message":"name=\"张三\" ok"}"#), r#"{"message":"name=\"张*\" ok"}"#);
        // An unquoted value inside a JSON string stops before the string's closing quote.
        assert_eq!(masked(r#"{"message":"name=张三"}"#), r#"{"message":"name=张*"}"#);
        // A value that starts with an escape is masked whole: no broken escape is left.
        assert_eq!(masked(r#"{"name":"\u5f20三"}"#), r#"{"name":"*******"}"#);
        assert_eq!(masked(r#"{"name":"张\"三"}"#), r#"{"name":"张***"}"#);
    }

    #[test]
    fn names_only_for_listed_keys_as_whole_identifiers() {
        for text in ["username=张三", "Name=张三", "named=张三", "name 张三", r#"{"name":null}"#, "x_name2=a"] {
            assert!(matches!(mask(text), Cow::Borrowed(_)), "{text}");
        }
        assert_eq!(masked("a.name=张三"), "a.name=张*");
        // Single-character names have nothing to hide behind the first character.
        assert!(matches!(mask("name=张"), Cow::Borrowed(_)));
    }

    #[test]
    fn span_names_in_tracing_json_are_kept() {
        let line = r#"{"name":"张三","target":"t","span":{"name":"张三","request_id":"r1","name":"request"}}"#;
        assert_eq!(
            mask_tracing_json(line),
            r#"{"name":"张*","target":"t","span":{"name":"张*","request_id":"r1","name":"request"}}"#
        );
        // Only in tracing's JSON lines, and only unescaped.
        assert_eq!(mask(r#"{"name":"张三"}"#), r#"{"name":"张*"}"#);
        assert_eq!(mask_tracing_json(r#"{"m":"{\"name\":\"张三\"}"}"#), r#"{"m":"{\"name\":\"张*\"}"}"#);
        assert_eq!(mask_tracing_json(r#"{"xm":"张三"}"#), r#"{"xm":"张*"}"#);
    }

    #[test]
    fn ansi_coloured_text_format() {
        let line = "\x1b[3mname\x1b[0m\x1b[2m=\x1b[0m\"张三\" \x1b[3mphone\x1b[0m\x1b[2m=\x1b[0m\"13800138000\"";
        let out = masked(line);
        assert!(out.contains("\"张*\"") && out.contains("138****8000"), "{out:?}");
        assert!(!out.contains("张三"));
    }

    #[test]
    fn several_in_one_line() {
        let line =
            r#"INFO request_id=r1 name="张三" id_number="11010519491231002X" phone=13800138000 tel=0851-85550000"#;
        assert_eq!(
            masked(line),
            r#"INFO request_id=r1 name="张*" id_number="110105********002X" phone=138****8000 tel=0851-****0000"#
        );
    }

    #[test]
    fn nothing_to_mask_stays_borrowed() {
        for text in [
            "",
            "plain text without numbers",
            "2026-05-01T10:00:00.123456Z  INFO Request answered. status=200 elapsed_ms=12",
            "申请已受理，请等待审核。",
            "case=GZ2026000001 created_at=1795312800000",
            r#"{"timestamp":"2026-05-01T10:00:00Z","level":"INFO","status":200}"#,
        ] {
            assert!(matches!(mask(text), Cow::Borrowed(_)), "{text}");
        }
        // Masked text masked again stays as it is, borrowed.
        let once = masked(r#"name="张三" id=11010519491231002X phone=13800138000 tel=0851-85550000"#);
        assert!(matches!(mask(&once), Cow::Borrowed(_)), "{once}");
    }

    #[test]
    fn longer_digit_runs_are_not_masked() {
        for text in [
            "11010519491231002100",      // an ID inside a 20-digit run
            "1101051949123100211",       // 19 digits
            "at 1795312800000",          // epoch milliseconds, 13 digits
            "138001380001",              // 12 digits
            "x1380013800",               // 10 digits
            "20260501100000",            // 14-digit timestamp
            "8813800138000",             // 13 digits, not 86
            "order 1234567890123456789", // snowflake id
            "1101051949123100X",         // 16 digits then X
        ] {
            assert!(matches!(mask(text), Cow::Borrowed(_)), "{text}");
        }
        // 18 digits then X: the 18-digit run is an ID, the X stays.
        assert_eq!(masked("110105194912310021X"), "110105********0021X");
    }

    #[test]
    fn uuids_and_digests_stay_whole() {
        let uuid = "request_id=01968f3a-7b2c-7def-8123-a13800138000 done";
        assert!(matches!(mask(uuid), Cow::Borrowed(_)));
        let sha256 = format!("sha256={}13800138000{} x", "ab".repeat(10), "cd".repeat(16) + "e");
        assert_eq!(sha256.len() - "sha256=".len() - " x".len(), 64);
        assert!(matches!(mask(&sha256), Cow::Borrowed(_)), "{sha256}");
        // Not a digest length: the phone number glued to letters is masked.
        assert_eq!(masked("abc13800138000def"), "abc138****8000def");
    }

    #[test]
    fn multi_byte_text_is_never_split() {
        assert_eq!(masked("姓名=张三，手机13800138000。"), "姓名=张三，手机138****8000。");
        assert_eq!(masked("name=𠮷野家 ok"), "name=𠮷** ok");
        assert_eq!(masked("xm=\u{0301}e"), "xm=\u{0301}*");
        // Unterminated quotes and escapes before multi-byte characters.
        assert_eq!(masked("name=\"张三"), "name=\"张*");
        assert_eq!(masked("name=\"\\张三"), "name=\"***");
        assert_eq!(masked("<xm>张三"), "<xm>张*");
        assert_eq!(masked("name=\"张三\nphone=13800138000"), "name=\"张*\nphone=138****8000");
    }

    #[test]
    fn edges_of_the_text() {
        for text in ["1", "13800138000", "name", "name=", "name=\"", "<xm>", "\x1b", "\x1b[", "\\", "0851-", "\"xm\":"]
        {
            let _ = mask(text);
        }
        assert_eq!(masked("13800138000"), "138****8000");
        assert_eq!(masked("11010519491231002X"), "110105********002X");
    }

    proptest! {
        #[test]
        fn never_panics(text in any::<String>()) {
            let _ = mask(&text);
        }

        #[test]
        fn masking_again_only_hides_more(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    "name", "xm", "legalPerson", "=", ":", "\"", "\\", "<", ">", "</", "<![CDATA[", "]]>", " ", ",",
                    "}", "\n", "\u{1b}[3m", "\u{1b}[0m", "\u{1b}", "张三", "𠮷", "a", "X", "-", "+86", "0851", "1", "0",
                    "13800138000", "11010519491231002", "110105491231123", "85550000", "01968f3a-7b2c-7def-8123-",
                ]),
                0..24,
            ),
        ) {
            let text = parts.concat();
            let once = mask(&text).into_owned();
            let twice = mask(&once);
            // A second pass may only hide more (a masked ID's last digits can, rarely, start a
            // landline), never change anything else.
            prop_assert_eq!(once.chars().count(), twice.chars().count(), "{:?} -> {:?} -> {:?}", text, once, twice);
            for (a, b) in once.chars().zip(twice.chars()) {
                prop_assert!(a == b || b == '*', "{:?} -> {:?} -> {:?}", text, once, twice);
            }
        }

        #[test]
        fn leaves_text_without_digits_or_keys_alone(
            text in any::<String>().prop_map(|text| text.replace(|c: char| c.is_ascii_digit(), "")),
        ) {
            prop_assume!(!NAME_KEYS.iter().any(|key| text.contains(key)));
            prop_assert!(matches!(mask(&text), Cow::Borrowed(_)));
        }

        #[test]
        fn hides_numbers_between_separators(
            before in "[^0-9]{0,12}",
            after in "[^0-9]{0,12}",
            left in prop::sample::select(vec![" ", "=", ":", "\"", "，", "号", "\n"]),
            right in prop::sample::select(vec![" ", ",", "\"", "}", "。", "\n", ""]),
            number in prop_oneof![
                "1[3-9][0-9]{9}",
                "[1-9][0-9]{16}[0-9Xx]",
                "[1-9][0-9]{14}",
            ],
        ) {
            let text = format!("{before}{left}{number}{right}{after}");
            let out = mask(&text);
            prop_assert!(!out.contains(number.as_str()), "{text:?} -> {out:?}");
        }
    }
}
