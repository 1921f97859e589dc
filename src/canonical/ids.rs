//! Identity number validators: 居民身份证号码 (GB 11643-1999) and 统一社会信用代码 (GB 32100-2015).
//!
//! Both validators are pure: they check the shape, dates and check
//! characters only. In particular the region part of an ID number (digits
//! 1–6) is never looked up in the division table, because people keep the
//! number they were issued after their county's code was retired.
//!
//! Input is taken as given (no trimming); every error's `Display` is a
//! sentence an applicant or operator can act on.

use chrono::NaiveDate;

/// A validated resident identity card number (居民身份证号码).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentId {
    /// The number with a lowercase check character `x` upper-cased. A
    /// 15-digit number stays 15 digits.
    pub normalized: String,
    /// True for the first-generation 15-digit form (一代证, no check digit).
    pub legacy_15: bool,
    /// Birth date (出生日期) encoded in the number.
    pub birth_date: NaiveDate,
    /// Digits 1–6, the address code (地址码) at issue; NOT validated against
    /// any table: codes are often retired.
    pub region_prefix: String,
}

/// Why a string is not a valid resident identity number (身份证号码无效).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    /// Neither 18 nor 15 characters long.
    #[error(
        "an ID card number has 18 characters (15 on old first-generation cards) but {len} were entered; re-enter the whole number from the ID card"
    )]
    WrongLength {
        /// Number of characters entered.
        len: usize,
    },
    /// A character that must be a digit is not (1-based position).
    #[error(
        "character {position} of the ID card number is not a digit (only the last character of an 18-character number may be 'X'); re-enter the number from the ID card"
    )]
    NotDigits {
        /// 1-based position of the first offending character.
        position: usize,
    },
    /// The first digit is 0 or 9, which no address code uses.
    #[error(
        "an ID card number starts with a digit from 1 to 8 but this one starts with '{found}'; re-enter the number from the ID card"
    )]
    BadFirstDigit {
        /// The first character entered.
        found: char,
    },
    /// The birth-date digits are not a real calendar date in range.
    #[error(
        "the birth date '{date}' in the ID card number is not a real date between 1800 and 2100 (digits 7–14, or 7–12 on a 15-digit number); check those digits against the ID card"
    )]
    BadBirthDate {
        /// The date digits as entered (yyyyMMdd, or yyMMdd for 15 digits).
        date: String,
    },
    /// The check character (校验码) does not match the first 17 digits.
    #[error(
        "the check digit should be '{expected}' but the number ends in '{found}'; re-enter the number from the ID card, as one digit is probably mistyped"
    )]
    CheckDigit {
        /// Check character computed from the first 17 digits.
        expected: char,
        /// Check character entered (upper-cased).
        found: char,
    },
}

/// GB 11643 weights for digits 1–17 (2^(18-i) mod 11).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each value of the weighted sum mod 11.
const ID_CHECK: [u8; 11] = *b"10X98765432";

/// Check character for 17 ASCII digits, or `None` if the input is not that.
fn resident_check_char(first17: &[u8]) -> Option<char> {
    if first17.len() != 17 || !first17.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = first17.iter().zip(ID_WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    ID_CHECK.get((sum % 11) as usize).map(|&c| char::from(c))
}

/// Validates a resident identity card number (居民身份证号码, GB 11643-1999).
///
/// Accepts the 18-character form (17 digits and a check character `0`–`9`
/// or `X`, lowercase `x` allowed) and the legacy 15-digit form (year 19yy,
/// no check digit). The birth date must be a real date with a year from 1800
/// to 2100. Digits 1–6 are not looked up; only the first must be 1–8.
///
/// # Errors
/// A [`ResidentIdError`] naming the first problem found.
pub fn check_resident_id(s: &str) -> Result<ResidentId, ResidentIdError> {
    let len = s.chars().count();
    if len != 18 && len != 15 {
        return Err(ResidentIdError::WrongLength { len });
    }
    let legacy_15 = len == 15;
    // All digits except an 18-character number's last, which may be X/x.
    for (i, c) in s.chars().enumerate() {
        let last_of_18 = !legacy_15 && i == 17;
        if !(c.is_ascii_digit() || (last_of_18 && matches!(c, 'X' | 'x'))) {
            return Err(ResidentIdError::NotDigits { position: i + 1 });
        }
    }
    // From here on `s` is ASCII, so byte indices are character indices.
    let normalized = s.to_ascii_uppercase();
    let bytes = normalized.as_bytes();

    let first = bytes.first().map_or('0', |&b| char::from(b));
    if !('1'..='8').contains(&first) {
        return Err(ResidentIdError::BadFirstDigit { found: first });
    }

    let (date, birth_date) = if legacy_15 {
        let date = normalized.get(6..12).unwrap_or_default();
        (date, parse_date(&format!("19{date}")))
    } else {
        let date = normalized.get(6..14).unwrap_or_default();
        (date, parse_date(date))
    };
    let birth_date = birth_date.ok_or_else(|| ResidentIdError::BadBirthDate { date: date.to_owned() })?;

    if !legacy_15 {
        let expected = bytes.get(..17).and_then(resident_check_char);
        let found = bytes.get(17).copied().map(char::from);
        // No let chains: the crate's rust-version is 1.85.
        match (expected, found) {
            (Some(expected), Some(found)) if expected != found => {
                return Err(ResidentIdError::CheckDigit { expected, found });
            }
            _ => {}
        }
    }

    Ok(ResidentId {
        region_prefix: normalized.get(..6).unwrap_or_default().to_owned(),
        normalized,
        legacy_15,
        birth_date,
    })
}

/// Parses 8 ASCII digits `yyyyMMdd` with a year from 1800 to 2100.
fn parse_date(yyyymmdd: &str) -> Option<NaiveDate> {
    if yyyymmdd.len() != 8 || !yyyymmdd.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = yyyymmdd.get(..4)?.parse().ok()?;
    let month: u32 = yyyymmdd.get(4..6)?.parse().ok()?;
    let day: u32 = yyyymmdd.get(6..8)?.parse().ok()?;
    if !(1800..=2100).contains(&year) {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Why a string is not a valid unified social credit code (统一社会信用代码无效).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsccError {
    /// Not 18 characters long.
    #[error(
        "a unified social credit code (统一社会信用代码) has 18 characters but {len} were entered; re-enter the code from the business licence"
    )]
    WrongLength {
        /// Number of characters entered.
        len: usize,
    },
    /// A character outside `0-9 A-H J-N P-R T-U W-Y` (1-based position).
    #[error(
        "character {position} ('{ch}') cannot appear in a unified social credit code, which uses only digits and capital letters other than I, O, S, V and Z; re-enter the code from the business licence"
    )]
    BadCharacter {
        /// 1-based position of the first offending character.
        position: usize,
        /// The character as entered.
        ch: char,
    },
    /// The first character is not a registration authority (登记管理部门码) of GB 32100.
    #[error(
        "the first character '{ch}' is not a registration authority (登记管理部门码: 1–9, A, N or Y); re-enter the code from the business licence"
    )]
    BadAuthority {
        /// The character as entered.
        ch: char,
    },
    /// The check character (校验码) does not match the first 17.
    #[error(
        "the check character should be '{expected}' but the code ends in '{found}'; re-enter the code from the business licence, as one character is probably mistyped"
    )]
    CheckCharacter {
        /// Check character computed from the first 17 characters.
        expected: char,
        /// Check character entered (upper-cased).
        found: char,
    },
}

/// GB 32100 alphabet; a character's value is its index (31 characters).
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// GB 32100 weights for characters 1–17 (3^(i-1) mod 31).
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Value of an (upper-case) USCC character, or `None` if not in the alphabet.
fn uscc_value(c: char) -> Option<u32> {
    let b = u8::try_from(c).ok()?;
    USCC_CHARSET.iter().position(|&x| x == b).and_then(|i| u32::try_from(i).ok())
}

/// Check character for the first 17 values of a USCC.
fn uscc_check_char(values: &[u32]) -> Option<char> {
    if values.len() != 17 {
        return None;
    }
    let sum: u32 = values.iter().zip(USCC_WEIGHTS).map(|(v, w)| v * w).sum();
    let index = (31 - sum % 31) % 31;
    USCC_CHARSET.get(index as usize).map(|&c| char::from(c))
}

/// Validates a unified social credit code (统一社会信用代码, GB 32100-2015).
///
/// Checks the length (18), the alphabet (`0-9 A-H J-N P-R T-U W-Y`, lowercase
/// accepted) and the check character. The embedded organization code's own
/// check digit (GB 11714) is not checked.
///
/// # Errors
/// A [`UsccError`] naming the first problem found.
pub fn check_uscc(s: &str) -> Result<(), UsccError> {
    let len = s.chars().count();
    if len != 18 {
        return Err(UsccError::WrongLength { len });
    }
    let mut values = Vec::with_capacity(18);
    for (i, ch) in s.chars().enumerate() {
        match uscc_value(ch.to_ascii_uppercase()) {
            Some(v) => values.push(v),
            None => {
                return Err(UsccError::BadCharacter { position: i + 1, ch });
            }
        }
    }
    // 1 机构编制, 2 外交, 3 司法行政, 4 文化, 5 民政, 6 旅游, 7 宗教, 8 工会, 9 市场监管 (工商),
    // A 中央军委改革和编制办公室, N 农业, Y 其他.
    if let Some(first) = s.chars().next().map(|c| c.to_ascii_uppercase())
        && !matches!(first, '1'..='9' | 'A' | 'N' | 'Y')
    {
        return Err(UsccError::BadAuthority { ch: first });
    }
    let expected = uscc_check_char(values.get(..17).unwrap_or_default());
    let found = values.get(17).and_then(|&v| USCC_CHARSET.get(v as usize)).map(|&c| char::from(c));
    match (expected, found) {
        (Some(expected), Some(found)) if expected != found => Err(UsccError::CheckCharacter { expected, found }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Appends the computed check digit to 17 digits.
    fn with_check(first17: &str) -> String {
        let c = resident_check_char(first17.as_bytes()).expect("17 digits");
        format!("{first17}{c}")
    }

    fn with_uscc_check(first17: &str) -> String {
        let values: Vec<u32> = first17.chars().map(|c| uscc_value(c).expect("USCC character")).collect();
        let c = uscc_check_char(&values).expect("17 characters");
        format!("{first17}{c}")
    }

    #[test]
    fn known_valid_resident_id() {
        let id = check_resident_id("11010519491231002X").expect("valid");
        assert_eq!(id.normalized, "11010519491231002X");
        assert!(!id.legacy_15);
        assert_eq!(id.birth_date, NaiveDate::from_ymd_opt(1949, 12, 31).unwrap());
        assert_eq!(id.region_prefix, "110105");
    }

    #[test]
    fn lowercase_x_is_normalized() {
        let id = check_resident_id("11010519491231002x").expect("valid");
        assert_eq!(id.normalized, "11010519491231002X");
    }

    #[test]
    fn retired_region_codes_are_accepted() {
        // 510122 双流县 was retired in 2015; old cards keep it.
        let id = with_check("51012219800101123");
        let parsed = check_resident_id(&id).expect("valid");
        assert_eq!(parsed.region_prefix, "510122");
        // Not a code that ever existed, but the first digit is fine.
        assert!(check_resident_id(&with_check("89999919800101123")).is_ok());
    }

    #[test]
    fn legacy_15_digit_form() {
        let id = check_resident_id("110105491231002").expect("valid");
        assert!(id.legacy_15);
        assert_eq!(id.normalized, "110105491231002");
        assert_eq!(id.birth_date, NaiveDate::from_ymd_opt(1949, 12, 31).unwrap());
        assert_eq!(check_resident_id("110105490230002"), Err(ResidentIdError::BadBirthDate { date: "490230".into() }));
        // No X allowed in 15-digit numbers.
        assert_eq!(check_resident_id("11010549123100X"), Err(ResidentIdError::NotDigits { position: 15 }));
    }

    #[test]
    fn resident_id_errors() {
        use ResidentIdError::*;
        let cases = [
            ("", WrongLength { len: 0 }),
            ("11010519491231002", WrongLength { len: 17 }),
            ("11010519491231002XX", WrongLength { len: 19 }),
            ("1101051949123100２X", NotDigits { position: 17 }),
            ("110105194912310023 ", WrongLength { len: 19 }),
            ("1101051949123100X2", NotDigits { position: 17 }),
            ("11010519491231002Y", NotDigits { position: 18 }),
            ("01010519491231002X", BadFirstDigit { found: '0' }),
            ("91010519491231002X", BadFirstDigit { found: '9' }),
            ("11010519490229002X", BadBirthDate { date: "19490229".into() }),
            ("11010517991231002X", BadBirthDate { date: "17991231".into() }),
            ("11010521010101002X", BadBirthDate { date: "21010101".into() }),
            ("110105194912310023", CheckDigit { expected: 'X', found: '3' }),
        ];
        for (input, err) in cases {
            assert_eq!(check_resident_id(input), Err(err), "{input:?}");
        }
        // Leap day and the range ends are fine.
        assert!(check_resident_id(&with_check("11010520000229002")).is_ok());
        assert!(check_resident_id(&with_check("11010518000101002")).is_ok());
        assert!(check_resident_id(&with_check("11010521001231002")).is_ok());
    }

    #[test]
    fn resident_id_messages_are_actionable() {
        let e = ResidentIdError::CheckDigit { expected: 'X', found: '3' };
        assert_eq!(
            e.to_string(),
            "the check digit should be 'X' but the number ends in '3'; re-enter the number from the ID card, as one digit is probably mistyped"
        );
        let e = check_resident_id("123").unwrap_err().to_string();
        assert!(e.contains("3 were entered"), "{e}");
        let e = check_resident_id("11010519491331002X").unwrap_err().to_string();
        assert!(e.contains("'19491331'"), "{e}");
    }

    #[test]
    fn known_valid_uscc() {
        assert_eq!(check_uscc("91350100M000100Y43"), Ok(()));
        assert_eq!(check_uscc("91350100m000100y43"), Ok(()));
        assert_eq!(with_uscc_check("91350100M000100Y4"), "91350100M000100Y43");
    }

    #[test]
    fn uscc_errors() {
        use UsccError::*;
        assert_eq!(check_uscc(""), Err(WrongLength { len: 0 }));
        assert_eq!(check_uscc("91350100M000100Y4"), Err(WrongLength { len: 17 }));
        assert_eq!(check_uscc("91350100M0O0100Y43"), Err(BadCharacter { position: 11, ch: 'O' }));
        for (i, bad) in ['I', 'O', 'Z', 'S', 'V', 'i', '-', '统'].into_iter().enumerate() {
            let mut s: Vec<char> = "91350100M000100Y43".chars().collect();
            s[i] = bad;
            let s: String = s.into_iter().collect();
            assert_eq!(check_uscc(&s), Err(BadCharacter { position: i + 1, ch: bad }));
        }
        assert_eq!(check_uscc("91350100M000100Y44"), Err(CheckCharacter { expected: '3', found: '4' }));
        assert_eq!(check_uscc("91350100M000100Y4x"), Err(CheckCharacter { expected: '3', found: 'X' }));
    }

    #[test]
    fn uscc_check_char_can_be_a_letter() {
        // Some prefix has a letter check character; find one and check it.
        let letter = (0..1000)
            .map(|n| with_uscc_check(&format!("91520100MA{n:07}")))
            .find(|s| s.ends_with(|c: char| c.is_ascii_uppercase()))
            .expect("some check character is a letter");
        assert_eq!(check_uscc(&letter), Ok(()));
    }

    #[test]
    fn the_first_character_is_a_registration_authority() {
        for first in ['0', 'B', 'X', 'W'] {
            let code = with_uscc_check(&format!("{first}1350100M000100Y4"));
            assert_eq!(check_uscc(&code), Err(UsccError::BadAuthority { ch: first }), "{code}");
        }
        assert_eq!(check_uscc(&with_uscc_check("N1350100M000100Y4")), Ok(()));
    }

    fn date_strategy() -> impl Strategy<Value = NaiveDate> {
        (1800i32..=2100, 1u32..=12, 1u32..=31)
            .prop_filter_map("real date", |(y, m, d)| NaiveDate::from_ymd_opt(y, m, d))
    }

    fn valid_id_strategy() -> impl Strategy<Value = String> {
        ("[1-8][0-9]{5}", date_strategy(), "[0-9]{3}")
            .prop_map(|(region, date, seq)| with_check(&format!("{region}{}{seq}", date.format("%Y%m%d"))))
    }

    proptest! {
        #[test]
        fn valid_resident_ids_pass(id in valid_id_strategy()) {
            let parsed = check_resident_id(&id);
            prop_assert!(parsed.is_ok(), "{id}: {parsed:?}");
            let lower = id.to_ascii_lowercase();
            prop_assert_eq!(check_resident_id(&lower).map(|p| p.normalized), Ok(id.clone()));
        }

        #[test]
        fn single_digit_change_fails(id in valid_id_strategy(), pos in 0usize..18, delta in 1u8..11) {
            let mut bytes = id.into_bytes();
            let alphabet = b"0123456789X";
            let current = alphabet.iter().position(|&c| c == bytes[pos]).unwrap();
            // Positions 1-17 take digits only; the check position also X.
            let modulus = if pos == 17 { 11 } else { 10 };
            let delta = usize::from(delta) % modulus;
            prop_assume!(delta != 0);
            bytes[pos] = alphabet[(current + delta) % modulus];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(check_resident_id(&changed).is_err(), "{changed}");
        }

        #[test]
        fn valid_legacy_ids_pass(region in "[1-8][0-9]{5}", y in 0u32..100, m in 1u32..=12, d in 1u32..=28, seq in "[0-9]{3}") {
            let id = format!("{region}{y:02}{m:02}{d:02}{seq}");
            let parsed = check_resident_id(&id);
            prop_assert!(matches!(&parsed, Ok(p) if p.legacy_15), "{id}: {parsed:?}");
        }

        #[test]
        fn valid_usccs_pass(body in "[1-9ANY][0-9A-HJ-NP-RTUW-Y]{16}") {
            let code = with_uscc_check(&body);
            prop_assert_eq!(check_uscc(&code), Ok(()));
            prop_assert_eq!(check_uscc(&code.to_ascii_lowercase()), Ok(()));
        }

        #[test]
        fn uscc_single_change_fails(body in "[0-9A-HJ-NP-RTUW-Y]{17}", pos in 0usize..18, delta in 1usize..31) {
            let mut chars: Vec<u8> = with_uscc_check(&body).into_bytes();
            let current = USCC_CHARSET.iter().position(|&c| c == chars[pos]).unwrap();
            chars[pos] = USCC_CHARSET[(current + delta) % 31];
            let changed = String::from_utf8(chars).unwrap();
            prop_assert!(check_uscc(&changed).is_err(), "{changed}");
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,40}") {
            let _ = check_resident_id(&s).map_err(|e| e.to_string());
            let _ = check_uscc(&s).map_err(|e| e.to_string());
        }

        #[test]
        fn near_miss_strings_never_panic(s in "[0-9xX\u{FF10}-\u{FF19}é统 ]{13,20}") {
            let _ = check_resident_id(&s);
            let _ = check_uscc(&s);
        }
    }
}
