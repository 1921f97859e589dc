//! Character encodings (字符编码) spoken by provincial platforms.
//!
//! Some platforms exchange UTF-8, others GBK or GB18030 (国标码). Decoding is
//! strict: a malformed byte sequence is an error with its byte offset, never a
//! silent U+FFFD, because a replaced character in a name or an ID number
//! (身份证号) is worse than a rejected request.

use std::borrow::Cow;
use std::fmt::Write as _;

use encoding_rs::{DecoderResult, EncoderResult, Encoding};

/// A character encoding (字符编码) a platform speaks on the wire.
///
/// In configuration it is written `"utf-8"`, `"gbk"` or `"gb18030"`; the
/// upper-case labels (`"UTF-8"`, `"GBK"`, `"GB18030"`) are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Charset {
    /// UTF-8 (Unicode 编码).
    #[serde(rename = "utf-8", alias = "UTF-8")]
    Utf8,
    /// GBK (汉字内码扩展规范), as written by older platforms.
    #[serde(alias = "GBK")]
    Gbk,
    /// GB18030 (国家标准 GB 18030), a superset of GBK covering all of Unicode
    /// (the few characters it still sends as references are listed at
    /// [`Charset::encode_strict`]).
    #[serde(alias = "GB18030")]
    Gb18030,
}

/// An encoding or decoding failure (编码错误).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CharsetError {
    /// The input is not valid in the charset (字节序列无效).
    #[error("malformed {charset} input at byte offset {offset}")]
    Malformed {
        /// The charset label, e.g. "GBK".
        charset: &'static str,
        /// Byte offset of the first malformed sequence in the input.
        offset: usize,
    },
    /// A character the charset cannot represent (无法编码的字符).
    #[error("character {ch:?} (U+{code:04X}) at index {index} cannot be encoded in {charset}", code = u32::from(*ch))]
    Unmappable {
        /// The charset label, e.g. "GBK".
        charset: &'static str,
        /// The first character that cannot be encoded.
        ch: char,
        /// Its index in the string, counted in chars.
        index: usize,
    },
}

impl Charset {
    /// The label written in an XML declaration and a Content-Type charset
    /// parameter (编码标签): "UTF-8", "GBK", "GB18030".
    pub fn label(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Gbk => "GBK",
            Charset::Gb18030 => "GB18030",
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            Charset::Utf8 => encoding_rs::UTF_8,
            Charset::Gbk => encoding_rs::GBK,
            Charset::Gb18030 => encoding_rs::GB18030,
        }
    }

    /// Decodes bytes (解码), failing with the byte offset of the first
    /// malformed sequence instead of replacing it.
    ///
    /// For UTF-8 a leading byte order mark is stripped and the result borrows
    /// the input. For GBK and GB18030 the result borrows when the input is
    /// ASCII only.
    pub fn decode(self, bytes: &[u8]) -> Result<Cow<'_, str>, CharsetError> {
        if self == Charset::Utf8 {
            let (body, skipped) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
                Some(rest) => (rest, 3),
                None => (bytes, 0),
            };
            return std::str::from_utf8(body)
                .map(Cow::Borrowed)
                .map_err(|e| CharsetError::Malformed { charset: self.label(), offset: skipped + e.valid_up_to() });
        }
        // encoding_rs reads GBK with the GB 18030 decoder; a four-byte sequence is not GBK, and
        // a platform configured for GBK would not read it back.
        if self == Charset::Gbk
            && let Some(offset) = four_byte_sequence(bytes)
        {
            return Err(CharsetError::Malformed { charset: self.label(), offset });
        }
        let encoding = self.encoding();
        if let Some(text) = encoding.decode_without_bom_handling_and_without_replacement(bytes) {
            return Ok(text);
        }
        // The fast path only says "malformed"; decode again to find where.
        Err(CharsetError::Malformed { charset: self.label(), offset: first_malformed(encoding, bytes) })
    }

    /// Encodes for XML (编码为 XML): characters the charset cannot represent
    /// are written as numeric character references (`&#NNNN;`), which is
    /// lossless inside XML text and attribute values.
    ///
    /// "Cannot represent" includes characters whose bytes decode differently
    /// across editions of the tables (see [`Charset::encode_strict`]), so
    /// every peer reads back the same character: in GBK, e.g. 䶮 (U+4DAE),
    /// which classic GBK lacks and GB 18030 added at FE9F.
    ///
    /// Borrows for UTF-8, and for ASCII-only input in any charset.
    pub fn encode_xml(self, s: &str) -> Cow<'_, [u8]> {
        let encoding = self.encoding();
        if self.first_ambiguous(s).is_none() {
            // encoding_rs writes unmappables as decimal NCRs, exactly what XML needs.
            return encoding.encode(s).0;
        }
        let mut escaped = String::with_capacity(s.len() + 16);
        for c in s.chars() {
            if self.is_ambiguous(c) {
                // Writing to a String cannot fail.
                let _ = write!(escaped, "&#{};", u32::from(c));
            } else {
                escaped.push(c);
            }
        }
        Cow::Owned(encoding.encode(&escaped).0.into_owned())
    }

    /// Encodes strictly (严格编码): fails naming the first character the
    /// charset cannot represent and its index in chars.
    ///
    /// Besides characters with no code at all (𠀀 U+20000 in GBK; U+E5E5 even
    /// in GB18030), a character counts as unrepresentable when its code means
    /// something else to another edition of the tables: the characters
    /// GB 18030 added to the two-byte area (not in classic GBK, CP936), the
    /// ones GB 18030-2022 moved (U+FE10–FE19, U+9FB4–9FBB), and the
    /// private-use block U+E766–E864 that older tables used for them.
    pub fn encode_strict(self, s: &str) -> Result<Cow<'_, [u8]>, CharsetError> {
        let encoding = self.encoding();
        let ambiguous = self.first_ambiguous(s);
        if ambiguous.is_none() {
            let (bytes, _, had_unmappables) = encoding.encode(s);
            if !had_unmappables {
                return Ok(bytes);
            }
        }
        // Error path: whichever comes first, an unmappable or an ambiguous char.
        let end = ambiguous.map_or(s.len(), |(at, _)| at);
        let before = s.get(..end).unwrap_or_default();
        let (at, ch) = match first_unmappable(encoding, before) {
            Some(ch) => (before.find(ch).unwrap_or(0), ch),
            None => ambiguous.unwrap_or((0, '\u{FFFD}')),
        };
        Err(CharsetError::Unmappable {
            charset: self.label(),
            ch,
            index: s.get(..at).unwrap_or_default().chars().count(),
        })
    }

    /// The first character (byte offset, char) that [`Self::is_ambiguous`].
    fn first_ambiguous(self, s: &str) -> Option<(usize, char)> {
        if self == Charset::Utf8 {
            return None;
        }
        // Every ambiguous code point starts with one of a few UTF-8 lead bytes (U+01F9 → C7,
        // U+1E3F → E1, U+20AC..U+4DBF → E2..E4, U+9FB4.. → E9, U+E5E5.. → EE, U+FE10.. → EF), so
        // a byte scan skips ASCII and the common CJK leads E5..E8 without decoding. This scan
        // runs on every GBK body the gateway writes.
        s.bytes().enumerate().filter(|&(_, b)| AMBIGUOUS_LEAD[usize::from(b)]).find_map(|(i, _)| {
            let c = s.get(i..).and_then(|rest| rest.chars().next())?;
            self.is_ambiguous(c).then_some((i, c))
        })
    }

    /// Characters encoding_rs maps that some peer's tables would decode to
    /// another character (or not at all), so they travel as NCRs instead.
    fn is_ambiguous(self, c: char) -> bool {
        let cp = u32::from(c);
        // Changed by GB 18030-2022, or the private-use stand-ins older
        // tables used for them (and U+E5E5, which encoding_rs never maps).
        let edition_sensitive = matches!(cp, 0x9FB4..=0x9FBB | 0xE5E5 | 0xE766..=0xE864 | 0xFE10..=0xFE19);
        match self {
            Charset::Utf8 => false,
            Charset::Gb18030 => edition_sensitive,
            // Two-byte codes GB 18030 added that classic GBK (CP936) lacks.
            // The ranges are wider than the additions; the rest of them is
            // unmappable in GBK anyway.
            Charset::Gbk => {
                edition_sensitive
                    || matches!(
                        cp,
                        0x01F9
                            | 0x1E3F
                            | 0x20AC
                            | 0x2E80..=0x2EFF
                            | 0x2FF0..=0x2FFF
                            | 0x303E
                            | 0x3400..=0x4DBF
                    )
            }
        }
    }
}

/// UTF-8 lead bytes that can start an ambiguous character (see `first_ambiguous`); a table
/// lookup per byte is the cheapest scan.
const AMBIGUOUS_LEAD: [bool; 256] = {
    let mut table = [false; 256];
    let leads = [0xC7, 0xE1, 0xE2, 0xE3, 0xE4, 0xE9, 0xEE, 0xEF];
    let mut i = 0;
    while i < leads.len() {
        table[leads[i]] = true;
        i += 1;
    }
    table
};

/// Byte offset of the first malformed sequence in `bytes` (error path only).
fn first_malformed(encoding: &'static Encoding, bytes: &[u8]) -> usize {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut out =
        String::with_capacity(decoder.max_utf8_buffer_length_without_replacement(bytes.len()).unwrap_or(bytes.len()));
    let mut consumed = 0;
    loop {
        let rest = bytes.get(consumed..).unwrap_or_default();
        let (result, read) = decoder.decode_to_string_without_replacement(rest, &mut out, true);
        consumed += read;
        match result {
            DecoderResult::Malformed(bad, after) => {
                return consumed.saturating_sub(usize::from(bad) + usize::from(after));
            }
            DecoderResult::OutputFull => {
                out.clear();
                out.reserve(rest.len().saturating_mul(3).max(16));
            }
            // Unreachable when the fast path failed; the end is the best answer.
            DecoderResult::InputEmpty => return bytes.len(),
        }
    }
}

/// The first character of `s` that `encoding` cannot represent (error path only).
fn first_unmappable(encoding: &'static Encoding, s: &str) -> Option<char> {
    let mut encoder = encoding.new_encoder();
    let mut out = Vec::with_capacity(s.len().saturating_mul(2).max(16));
    let mut consumed = 0;
    loop {
        let rest = s.get(consumed..).unwrap_or_default();
        let (result, read) = encoder.encode_from_utf8_to_vec_without_replacement(rest, &mut out, true);
        consumed += read;
        match result {
            EncoderResult::Unmappable(ch) => return Some(ch),
            EncoderResult::OutputFull => {
                out.clear();
                out.reserve(rest.len().saturating_mul(4).max(16));
            }
            EncoderResult::InputEmpty => return None,
        }
    }
}

/// Offset of the first GB 18030 four-byte sequence (a lead byte followed by a digit byte).
fn four_byte_sequence(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x81..=0xFE => {
                if matches!(bytes.get(i + 1), Some(0x30..=0x39)) {
                    return Some(i);
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(Charset::Utf8.label(), "UTF-8");
        assert_eq!(Charset::Gbk.label(), "GBK");
        assert_eq!(Charset::Gb18030.label(), "GB18030");
    }

    #[test]
    fn serde_names() {
        let all = [Charset::Utf8, Charset::Gbk, Charset::Gb18030];
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(json, r#"["utf-8","gbk","gb18030"]"#);
        let back: Vec<Charset> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, all);
        let upper: Vec<Charset> = serde_json::from_str(r#"["UTF-8","GBK","GB18030"]"#).unwrap();
        assert_eq!(upper, all);
        assert!(serde_json::from_str::<Charset>(r#""latin1""#).is_err());
    }

    #[test]
    fn utf8_borrows_and_strips_bom() {
        let bytes = "\u{FEFF}张三".as_bytes();
        let text = Charset::Utf8.decode(bytes).unwrap();
        assert!(matches!(text, Cow::Borrowed("张三")));
        assert!(matches!(Charset::Utf8.encode_xml("张三"), Cow::Borrowed(_)));
        assert!(matches!(Charset::Utf8.encode_strict("𠀀"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn utf8_malformed_offset_counts_the_bom() {
        let err = Charset::Utf8.decode(b"\xEF\xBB\xBFab\xFFc").unwrap_err();
        assert_eq!(err, CharsetError::Malformed { charset: "UTF-8", offset: 5 });
        let err = Charset::Utf8.decode(b"ab\xE5\xBC").unwrap_err();
        assert_eq!(err, CharsetError::Malformed { charset: "UTF-8", offset: 2 });
    }

    #[test]
    fn gbk_golden_bytes() {
        let bytes = b"\xD5\xC5\xC8\xFD \xC4\xD0";
        assert_eq!(Charset::Gbk.decode(bytes).unwrap(), "张三 男");
        assert_eq!(Charset::Gb18030.decode(bytes).unwrap(), "张三 男");
        assert_eq!(&*Charset::Gbk.encode_xml("张三 男"), bytes);
        assert_eq!(&*Charset::Gbk.encode_strict("张三 男").unwrap(), bytes);
    }

    #[test]
    fn ascii_borrows_in_gbk() {
        assert!(matches!(Charset::Gbk.decode(b"<a/>"), Ok(Cow::Borrowed("<a/>"))));
        assert!(matches!(Charset::Gbk.encode_xml("<a/>"), Cow::Borrowed(_)));
        assert!(matches!(Charset::Gb18030.encode_strict("<a/>"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn gbk_malformed_offsets() {
        // 0xFF is never valid; a truncated lead byte at the end is malformed too.
        for (bytes, offset) in [(&b"\xD5\xC5\xFF\xC8\xFD"[..], 2), (&b"ab\xD5"[..], 2), (&b"\xD5\xC5\xD5\x20"[..], 2)] {
            for cs in [Charset::Gbk, Charset::Gb18030] {
                assert_eq!(
                    cs.decode(bytes).unwrap_err(),
                    CharsetError::Malformed { charset: cs.label(), offset },
                    "{bytes:?} in {cs:?}"
                );
            }
        }
    }

    #[test]
    fn gbk_unmappable_becomes_ncr() {
        let s = "张𠀀三䶮";
        let bytes = Charset::Gbk.encode_xml(s);
        let text = Charset::Gbk.decode(&bytes).unwrap();
        assert_eq!(text, "张&#131072;三&#19886;");
        let err = Charset::Gbk.encode_strict(s).unwrap_err();
        assert_eq!(err, CharsetError::Unmappable { charset: "GBK", ch: '𠀀', index: 1 });
        assert!(err.to_string().contains("U+20000"));
        // 䶮 has a code in encoding_rs's GBK (FE9F, from GB 18030), but
        // classic GBK peers would not read it: strict refuses it too.
        assert_eq!(
            Charset::Gbk.encode_strict("张三䶮").unwrap_err(),
            CharsetError::Unmappable { charset: "GBK", ch: '䶮', index: 2 }
        );
        assert_eq!(&*Charset::Gb18030.encode_strict("䶮").unwrap(), b"\xFE\x9F");
        assert_eq!(Charset::Gbk.decode(b"\xFE\x9F").unwrap(), "䶮");
    }

    #[test]
    fn edition_sensitive_characters_travel_as_references() {
        // GB 18030-2022 moved these; U+E5E5 is mapped nowhere.
        for cs in [Charset::Gbk, Charset::Gb18030] {
            for (ch, ncr) in [
                ('\u{FE10}', "&#65040;"),
                ('\u{9FB4}', "&#40884;"),
                ('\u{E78D}', "&#59277;"),
                ('\u{E81E}', "&#59422;"),
                ('\u{E5E5}', "&#58853;"),
            ] {
                let s = format!("a{ch}");
                assert_eq!(&*cs.encode_xml(&s), format!("a{ncr}").as_bytes(), "{cs:?} {ch:?}");
                assert_eq!(
                    cs.encode_strict(&s).unwrap_err(),
                    CharsetError::Unmappable { charset: cs.label(), ch, index: 1 }
                );
            }
        }
        // User-defined private-use characters (用户自定义区) keep their codes.
        assert_eq!(&*Charset::Gbk.encode_strict("\u{E000}").unwrap(), b"\xAA\xA1");
    }

    /// Undoes decimal NCRs (the input holds no other `&`).
    fn unescape_ncrs(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find("&#") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find(';').unwrap() + i;
            let cp: u32 = rest[i + 2..end].parse().unwrap();
            out.push(char::from_u32(cp).unwrap());
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn encode_xml_then_decode_is_lossless() {
        // The whole BMP (where all the tables live) and samples beyond it;
        // all of Unicode takes seconds in an unoptimized build.
        let all: String = (1..=0xFFFF_u32)
            .chain(0x1_0000..0x1_0100)
            .chain(0x2_0000..0x2_0400)
            .chain(0x10_FF00..=0x10_FFFF)
            .filter_map(char::from_u32)
            .filter(|&c| c != '&')
            .collect();
        for cs in [Charset::Utf8, Charset::Gbk, Charset::Gb18030] {
            let bytes = cs.encode_xml(&all);
            let text = cs.decode(&bytes).unwrap();
            assert!(unescape_ncrs(&text) == all, "{cs:?}");
            // Strict encoding agrees with encode_xml about what is
            // representable (on every 5th char: encoding_rs is slow unoptimized).
            let plain: String =
                all.chars().step_by(5).filter(|c| cs.encode_strict(c.encode_utf8(&mut [0; 4])).is_ok()).collect();
            assert_eq!(cs.encode_strict(&plain).unwrap(), cs.encode_xml(&plain), "{cs:?}");
        }
    }

    #[test]
    fn gb18030_covers_everything_outside_gbk() {
        let s = "张𠀀三䶮广东省广州市天河区体育西路1号";
        let bytes = Charset::Gb18030.encode_strict(s).unwrap();
        assert_eq!(Charset::Gb18030.decode(&bytes).unwrap(), s);
        assert_eq!(Charset::Gb18030.encode_xml(s), bytes);
    }
}
