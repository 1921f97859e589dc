//! Validation shared by the six styles (通用校验): each style parses its own wire format into a
//! [`RawSubmission`] of strings, names its fields in a [`Dialect`], and [`submission`] applies the
//! common rules of `docs/platforms/README.md` with those names in every message.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::MockPlatform;

/// Why a request was refused; each style renders it in its own error format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectKind {
    /// Content type, charset, encoding or syntax is wrong (报文格式错误).
    Malformed,
    /// A required field is missing (缺少必填字段).
    Missing,
    /// A field the spec does not define (未定义字段).
    UnknownField,
    /// A value is wrong: type, code, format, check digit (字段值不合法).
    Invalid,
    /// The matter is not in the catalogue (事项不存在).
    UnknownMatter,
    /// The handling region is outside the platform (办理区划不属于本平台).
    OutOfRegion,
    /// No such case (办件不存在).
    NotFound,
    /// No such endpoint (接口不存在).
    NoRoute,
    /// The endpoint exists under another method.
    MethodNotAllowed,
    /// The body is over the 8 MiB limit.
    TooLarge,
}

/// A refusal: its kind, the offending field in the style's own naming, and a Chinese message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub kind: RejectKind,
    pub field: Option<String>,
    pub message: String,
}

impl Reject {
    pub(crate) fn new(kind: RejectKind, field: Option<&str>, message: impl Into<String>) -> Self {
        Reject { kind, field: field.map(str::to_owned), message: message.into() }
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(RejectKind::Malformed, None, message)
    }

    pub(crate) fn missing(field: &str) -> Self {
        Self::new(RejectKind::Missing, Some(field), format!("缺少必填字段 {field}"))
    }

    pub(crate) fn unknown(field: &str) -> Self {
        Self::new(RejectKind::UnknownField, Some(field), format!("存在未定义字段 {field}"))
    }

    pub(crate) fn invalid(field: &str, why: impl AsRef<str>) -> Self {
        Self::new(RejectKind::Invalid, Some(field), format!("字段 {field} 不合法：{}", why.as_ref()))
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(RejectKind::NotFound, None, format!("办件不存在：{what}"))
    }

    pub(crate) fn no_route(path: &str) -> Self {
        Self::new(RejectKind::NoRoute, None, format!("接口不存在：{path}"))
    }

    pub(crate) fn method(method: &str) -> Self {
        Self::new(RejectKind::MethodNotAllowed, None, format!("请求方法不支持：{method}"))
    }

    pub(crate) fn too_large() -> Self {
        Self::new(RejectKind::TooLarge, None, "报文超过 8 MiB")
    }
}

/// Handling mode (办理模式).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// 全程网办.
    Online,
    /// 异地代收代办.
    Proxy,
    /// 多地联办.
    MultiSite,
}

/// Applicant kind (申请人类型).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 自然人.
    Natural,
    /// 法人.
    Legal,
}

/// Certificate type (证件类型).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdType {
    /// 居民身份证.
    ResidentId,
    /// 护照.
    Passport,
    /// 港澳居民来往内地通行证.
    HkMacaoPermit,
    /// 台湾居民来往大陆通行证.
    TaiwanPermit,
    /// 外国人永久居留身份证.
    ForeignPermanentResident,
    /// 统一社会信用代码.
    Uscc,
}

/// Date format of a style (日期格式).
#[derive(Debug, Clone, Copy)]
pub(crate) enum DateFmt {
    /// `yyyy-MM-dd`.
    Dashed,
    /// `yyyyMMdd`.
    Compact,
}

/// Datetime format of a style (日期时间格式).
#[derive(Debug, Clone, Copy)]
pub(crate) enum DateTimeFmt {
    /// `yyyy-MM-dd HH:mm:ss`, Beijing time.
    Spaced,
    /// `yyyyMMddHHmmss`, Beijing time.
    Compact,
    /// Exactly `yyyy-MM-ddTHH:mm:ss+08:00`.
    IsoBeijing,
    /// RFC 3339 with seconds and any explicit offset (or `Z`), no fraction.
    Rfc3339,
    /// Epoch milliseconds in `0 ..= 4102444800000`, given as decimal digits.
    EpochMillis,
}

/// Field names of a style, used in every message (the style's own naming).
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    pub external_id: String,
    pub matter_code: String,
    pub matter_name: String,
    pub handling_region: String,
    pub accepting_region: String,
    pub mode: String,
    pub kind: String,
    pub applicant_name: String,
    pub id_type: String,
    pub id_number: String,
    pub gender: String,
    pub birth_date: String,
    pub phone: String,
    pub address: String,
    pub credit_code: String,
    pub legal_rep: String,
    pub submitted_at: String,
}

/// Material field names; `material_field(index, leaf)` builds the full path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaterialNames {
    pub name: &'static str,
    pub media_type: &'static str,
    pub sha256: &'static str,
    pub size: &'static str,
    pub content: &'static str,
    pub reference: &'static str,
}

/// Everything that makes a style's submit different: names, code tables, formats.
pub(crate) struct Dialect<'a> {
    pub names: Names,
    pub material_names: MaterialNames,
    pub material_path: &'a dyn Fn(usize, &str) -> String,
    pub form_path: &'a dyn Fn(&str) -> String,
    pub modes: &'a [(&'a str, Mode)],
    pub kinds: &'a [(&'a str, Kind)],
    pub id_types: &'a [(&'a str, IdType)],
    pub genders: &'a [&'a str],
    pub date: DateFmt,
    pub datetime: DateTimeFmt,
    /// XML styles allow line breaks inside base64 content.
    pub base64_whitespace: bool,
}

/// A submission as strings, before validation.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawSubmission {
    pub external_id: Option<String>,
    pub matter_code: Option<String>,
    pub matter_name: Option<String>,
    pub handling_region: Option<String>,
    pub accepting_region: Option<String>,
    pub mode: Option<String>,
    pub applicant: RawApplicant,
    pub materials: Vec<RawMaterial>,
    pub form: Vec<(String, String)>,
    pub submitted_at: Option<String>,
}

/// An applicant (申请人) as strings.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawApplicant {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub id_type: Option<String>,
    pub id_number: Option<String>,
    pub gender: Option<String>,
    pub birth_date: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub credit_code: Option<String>,
    pub legal_rep: Option<String>,
}

/// A material (材料) as strings.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawMaterial {
    pub name: Option<String>,
    pub media_type: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<String>,
    pub content: Option<String>,
    pub reference: Option<String>,
}

/// What the platform keeps of a valid submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub external_id: String,
    /// 事项编码.
    pub matter_code: String,
    /// 办理区划.
    pub handling_region: String,
    pub applicant: Applicant,
}

/// What the platform keeps of the applicant (申请人), e.g. to issue a certificate (出证).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applicant {
    /// 申请人姓名 (法人: 单位名称).
    pub name: String,
    /// 证件类型.
    pub id_type: IdType,
    /// 证件号码.
    pub id_number: String,
    /// 联系地址, when given.
    pub address: Option<String>,
    /// 统一社会信用代码 (法人 only).
    pub credit_code: Option<String>,
}

fn need<'v>(value: &'v Option<String>, field: &str) -> Result<&'v str, Reject> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Reject::missing(field)),
    }
}

fn must_be_absent(value: &Option<String>, field: &str, why: &str) -> Result<(), Reject> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Err(Reject::invalid(field, why)),
        _ => Ok(()),
    }
}

fn code<T: Copy>(table: &[(&str, T)], value: &str, field: &str) -> Result<T, Reject> {
    table.iter().find(|(c, _)| *c == value).map(|(_, t)| *t).ok_or_else(|| {
        let allowed: Vec<&str> = table.iter().map(|(c, _)| *c).collect();
        Reject::invalid(field, format!("代码 {value} 不在代码表中（{}）", allowed.join("、")))
    })
}

fn text(value: &str, field: &str, max_chars: usize) -> Result<(), Reject> {
    let n = value.chars().count();
    if n > max_chars {
        return Err(Reject::invalid(field, format!("长度超过 {max_chars} 个字符")));
    }
    if value.chars().any(char::is_control) {
        return Err(Reject::invalid(field, "含有控制字符"));
    }
    Ok(())
}

/// Validates a submission against the common rules; the result names the platform's case key.
pub(crate) fn submission(platform: &MockPlatform, raw: &RawSubmission, d: &Dialect<'_>) -> Result<Accepted, Reject> {
    let n = &d.names;
    let external_id = need(&raw.external_id, &n.external_id)?;
    check_external_id(external_id).map_err(|why| Reject::invalid(&n.external_id, why))?;
    let matter_code = need(&raw.matter_code, &n.matter_code)?;
    text(matter_code, &n.matter_code, 64)?;
    let matter_name = need(&raw.matter_name, &n.matter_name)?;
    text(matter_name, &n.matter_name, 100)?;
    let handling = need(&raw.handling_region, &n.handling_region)?;
    check_region(handling).map_err(|why| Reject::invalid(&n.handling_region, why))?;
    let accepting = need(&raw.accepting_region, &n.accepting_region)?;
    check_region(accepting).map_err(|why| Reject::invalid(&n.accepting_region, why))?;
    code(d.modes, need(&raw.mode, &n.mode)?, &n.mode)?;
    let applicant = applicant(&raw.applicant, d)?;
    for (i, m) in raw.materials.iter().enumerate() {
        material(i, m, d)?;
    }
    for (key, value) in &raw.form {
        let field = (d.form_path)(key);
        check_form_key(key).map_err(|why| Reject::invalid(&field, why))?;
        text(value, &field, 2000)?;
    }
    let submitted = need(&raw.submitted_at, &n.submitted_at)?;
    check_datetime(submitted, d.datetime).map_err(|why| Reject::invalid(&n.submitted_at, why))?;

    if !platform.catalogue().iter().any(|m| m.code == matter_code) {
        return Err(Reject::new(
            RejectKind::UnknownMatter,
            Some(&n.matter_code),
            format!("事项不存在：{} = {matter_code}", n.matter_code),
        ));
    }
    if !platform.serves_region(handling) {
        return Err(Reject::new(
            RejectKind::OutOfRegion,
            Some(&n.handling_region),
            format!(
                "办理区划不属于本平台：{} = {handling}（{}只办理区划 {} 开头的办件）",
                n.handling_region, platform.title, platform.region
            ),
        ));
    }
    Ok(Accepted {
        external_id: external_id.to_owned(),
        matter_code: matter_code.to_owned(),
        handling_region: handling.to_owned(),
        applicant,
    })
}

fn applicant(a: &RawApplicant, d: &Dialect<'_>) -> Result<Applicant, Reject> {
    let n = &d.names;
    let kind = code(d.kinds, need(&a.kind, &n.kind)?, &n.kind)?;
    let name = need(&a.name, &n.applicant_name)?;
    text(name, &n.applicant_name, 100)?;
    let id_type = code(d.id_types, need(&a.id_type, &n.id_type)?, &n.id_type)?;
    let id_number = need(&a.id_number, &n.id_number)?;
    check_id_number(id_type, id_number).map_err(|why| Reject::invalid(&n.id_number, why))?;
    let phone = need(&a.phone, &n.phone)?;
    check_phone(phone).map_err(|why| Reject::invalid(&n.phone, why))?;
    if let Some(address) = a.address.as_deref() {
        text(address, &n.address, 200)?;
    }
    match kind {
        Kind::Natural => {
            if id_type == IdType::Uscc {
                return Err(Reject::invalid(&n.id_type, "自然人不能使用统一社会信用代码"));
            }
            let gender = need(&a.gender, &n.gender)?;
            if !d.genders.contains(&gender) {
                return Err(Reject::invalid(
                    &n.gender,
                    format!("代码 {gender} 不在代码表中（{}）", d.genders.join("、")),
                ));
            }
            let birth = need(&a.birth_date, &n.birth_date)?;
            check_date(birth, d.date).map_err(|why| Reject::invalid(&n.birth_date, why))?;
            must_be_absent(&a.credit_code, &n.credit_code, "自然人不应填写统一社会信用代码")?;
            must_be_absent(&a.legal_rep, &n.legal_rep, "自然人不应填写法定代表人")?;
        }
        Kind::Legal => {
            if id_type != IdType::Uscc {
                return Err(Reject::invalid(&n.id_type, "法人的证件类型必须是统一社会信用代码"));
            }
            must_be_absent(&a.gender, &n.gender, "法人不应填写性别")?;
            must_be_absent(&a.birth_date, &n.birth_date, "法人不应填写出生日期")?;
            let credit = need(&a.credit_code, &n.credit_code)?;
            check_uscc(credit).map_err(|why| Reject::invalid(&n.credit_code, why))?;
            text(need(&a.legal_rep, &n.legal_rep)?, &n.legal_rep, 100)?;
        }
    }
    let given = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(Applicant {
        name: name.to_owned(),
        id_type,
        id_number: id_number.to_owned(),
        address: given(&a.address),
        credit_code: given(&a.credit_code),
    })
}

fn material(index: usize, m: &RawMaterial, d: &Dialect<'_>) -> Result<(), Reject> {
    let mn = d.material_names;
    let path = |leaf: &str| (d.material_path)(index, leaf);
    text(need(&m.name, &path(mn.name))?, &path(mn.name), 200)?;
    let media = need(&m.media_type, &path(mn.media_type))?;
    check_media_type(media).map_err(|why| Reject::invalid(&path(mn.media_type), why))?;
    let sha = need(&m.sha256, &path(mn.sha256))?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Reject::invalid(&path(mn.sha256), "必须是 64 位十六进制 SHA-256 摘要"));
    }
    let size_text = need(&m.size, &path(mn.size))?;
    let size: u64 = if size_text.bytes().all(|b| b.is_ascii_digit()) {
        size_text.parse().map_err(|_| Reject::invalid(&path(mn.size), "超出范围"))?
    } else {
        return Err(Reject::invalid(&path(mn.size), "必须是非负整数（字节数）"));
    };
    let content = m.content.as_deref().filter(|c| !c.is_empty());
    let reference = m.reference.as_deref().filter(|r| !r.is_empty());
    match (content, reference) {
        (Some(_), Some(_)) => {
            Err(Reject::invalid(&path(mn.content), format!("{} 与 {} 只能填写其一", mn.content, mn.reference)))
        }
        (None, None) => Err(Reject::new(
            RejectKind::Missing,
            Some(&path(mn.content)),
            format!("缺少必填字段 {}（或 {}）", path(mn.content), path(mn.reference)),
        )),
        (Some(content), None) => {
            let decoded =
                decode_base64(content, d.base64_whitespace).map_err(|why| Reject::invalid(&path(mn.content), why))?;
            if decoded.len() as u64 != size {
                return Err(Reject::invalid(&path(mn.size), format!("与内容实际长度 {} 字节不符", decoded.len())));
            }
            Ok(())
        }
        (None, Some(url)) => check_url(url).map_err(|why| Reject::invalid(&path(mn.reference), why)),
    }
}

/// Checks an external id (外部编号): 1–64 chars from `A–Z a–z 0–9 - _ . :`.
pub(crate) fn check_external_id(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 64 {
        return Err("长度必须为 1–64".into());
    }
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')) {
        return Err("只能包含字母、数字和 - _ . :".into());
    }
    Ok(())
}

/// Checks a GB/T 2260 region code: exactly 6 digits.
pub(crate) fn check_region(v: &str) -> Result<(), String> {
    if v.len() == 6 && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("区划代码必须是 6 位数字".into())
    }
}

/// Checks a certificate number against its type.
pub(crate) fn check_id_number(t: IdType, v: &str) -> Result<(), String> {
    match t {
        IdType::ResidentId => check_resident_id(v),
        IdType::Uscc => check_uscc(v),
        _ => {
            if (5..=20).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Ok(())
            } else {
                Err("证件号码必须是 5–20 位字母或数字".into())
            }
        }
    }
}

/// GB 11643 citizen id number: 17 digits and a check character, or 15 digits.
pub(crate) fn check_resident_id(v: &str) -> Result<(), String> {
    let b = v.as_bytes();
    if b.len() == 15 && b.iter().all(u8::is_ascii_digit) {
        return Ok(());
    }
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return Err("居民身份证号码必须是 18 位（17 位数字加校验位）或 15 位数字".into());
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = b[..17].iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    let expected = CHECK[(sum % 11) as usize];
    if b[17] == expected { Ok(()) } else { Err("居民身份证号码校验位错误".into()) }
}

/// 统一社会信用代码: 18 characters of the GB 32100 charset.
pub(crate) fn check_uscc(v: &str) -> Result<(), String> {
    const CHARSET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    if v.len() == 18 && v.bytes().all(|b| CHARSET.contains(&b)) {
        Ok(())
    } else {
        Err("统一社会信用代码必须是 18 位（数字及除 I O S V Z 外的大写字母）".into())
    }
}

fn check_phone(v: &str) -> Result<(), String> {
    if (5..=20).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'+') {
        Ok(())
    } else {
        Err("联系电话必须是 5–20 位数字、- 或 +".into())
    }
}

fn check_media_type(v: &str) -> Result<(), String> {
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    match v.split_once('/') {
        Some((a, b)) if token(a) && token(b) => Ok(()),
        _ => Err("媒体类型必须形如 type/subtype（如 application/pdf）".into()),
    }
}

fn check_url(v: &str) -> Result<(), String> {
    let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !v.chars().any(char::is_whitespace) => Ok(()),
        _ => Err("引用地址必须是 http:// 或 https:// 开头的 URL".into()),
    }
}

fn check_form_key(k: &str) -> Result<(), String> {
    let mut bytes = k.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && k.len() <= 64 && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err("表单字段名必须匹配 [A-Za-z_][A-Za-z0-9_]*".into())
    }
}

fn decode_base64(v: &str, allow_whitespace: bool) -> Result<Vec<u8>, String> {
    let cleaned: String;
    let input = if allow_whitespace {
        cleaned = v.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        cleaned.as_str()
    } else {
        v
    };
    STANDARD.decode(input).map_err(|e| format!("不是合法的 base64 内容（{e}）"))
}

/// Checks a date in a style's format, as a real calendar date.
pub(crate) fn check_date(v: &str, fmt: DateFmt) -> Result<NaiveDate, String> {
    let (pattern, shown) = match fmt {
        DateFmt::Dashed => ("%Y-%m-%d", "yyyy-MM-dd"),
        DateFmt::Compact => ("%Y%m%d", "yyyyMMdd"),
    };
    NaiveDate::parse_from_str(v, pattern)
        .ok()
        // Round-tripping insists on the exact shape (chrono accepts `2026-1-2`).
        .filter(|d| d.format(pattern).to_string() == v)
        .ok_or_else(|| format!("日期格式必须是 {shown}"))
}

/// Checks a datetime in a style's format.
pub(crate) fn check_datetime(v: &str, fmt: DateTimeFmt) -> Result<(), String> {
    let ok = match fmt {
        DateTimeFmt::Spaced => naive_exact(v, "%Y-%m-%d %H:%M:%S"),
        DateTimeFmt::Compact => naive_exact(v, "%Y%m%d%H%M%S"),
        DateTimeFmt::IsoBeijing => DateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%:z").ok().is_some_and(|t| {
            t.offset().local_minus_utc() == 8 * 3600 && t.format("%Y-%m-%dT%H:%M:%S+08:00").to_string() == v
        }),
        DateTimeFmt::Rfc3339 => rfc3339_exact(v),
        DateTimeFmt::EpochMillis => {
            v.bytes().all(|b| b.is_ascii_digit()) && v.parse::<u64>().is_ok_and(|ms| ms <= 4_102_444_800_000)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(match fmt {
            DateTimeFmt::Spaced => "时间格式必须是 yyyy-MM-dd HH:mm:ss",
            DateTimeFmt::Compact => "时间格式必须是 yyyyMMddHHmmss",
            DateTimeFmt::IsoBeijing => "时间格式必须是 yyyy-MM-ddTHH:mm:ss+08:00",
            DateTimeFmt::Rfc3339 => "时间格式必须是 yyyy-MM-ddTHH:mm:ss±hh:mm（或 Z）",
            DateTimeFmt::EpochMillis => "时间必须是 0 到 4102444800000 之间的毫秒时间戳",
        }
        .into())
    }
}

fn naive_exact(v: &str, pattern: &str) -> bool {
    NaiveDateTime::parse_from_str(v, pattern).ok().is_some_and(|t| t.format(pattern).to_string() == v)
}

fn rfc3339_exact(v: &str) -> bool {
    // `yyyy-MM-ddTHH:mm:ss` then `Z` or `±hh:mm`; no fraction.
    if v.len() < 20 || !v.is_char_boundary(19) {
        return false;
    }
    let (local, offset) = v.split_at(19);
    let offset_ok = offset == "Z"
        || (offset.len() == 6
            && DateTime::parse_from_str(&format!("2000-01-01T00:00:00{offset}"), "%Y-%m-%dT%H:%M:%S%:z").is_ok()
            && (offset.starts_with('+') || offset.starts_with('-')));
    offset_ok && naive_exact(local, "%Y-%m-%dT%H:%M:%S")
}

/// Splits a `Content-Type` into its lower-cased media type and charset parameter.
pub(crate) fn content_type(header: Option<&str>) -> (String, Option<String>) {
    let Some(h) = header else {
        return (String::new(), None);
    };
    let mut parts = h.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"').to_owned())
    });
    (media, charset)
}

/// Checks that the media type is one of `allowed` and the charset, if any, is `charset`.
pub(crate) fn require_content_type(
    header: Option<&str>,
    allowed: &[&str],
    charset: &str,
    charset_required: bool,
) -> Result<(), Reject> {
    let (media, cs) = content_type(header);
    if !allowed.contains(&media.as_str()) {
        return Err(Reject::malformed(format!(
            "Content-Type 必须是 {}（收到 {}）",
            allowed.join(" 或 "),
            header.unwrap_or("无")
        )));
    }
    match cs {
        Some(c) if !c.eq_ignore_ascii_case(charset) => {
            Err(Reject::malformed(format!("字符集必须是 {charset}（收到 {c}）")))
        }
        None if charset_required => Err(Reject::malformed(format!("Content-Type 必须声明 charset={charset}"))),
        _ => Ok(()),
    }
}

/// Parses a query string into decoded pairs (UTF-8, `%XX`, `+` as space).
pub(crate) fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, Reject> {
    let Some(q) = query else {
        return Ok(Vec::new());
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Reads the single allowed parameter of a query; others are unknown fields.
pub(crate) fn single_param(query: Option<&str>, key: &str) -> Result<Option<String>, Reject> {
    let mut found = None;
    for (k, v) in query_pairs(query)? {
        if k != key {
            return Err(Reject::unknown(&k));
        }
        if found.is_some() {
            return Err(Reject::invalid(key, "参数重复"));
        }
        found = Some(v);
    }
    Ok(found.filter(|v| !v.is_empty()))
}

/// Decodes `%XX` escapes (and `+`) into a UTF-8 string.
pub(crate) fn percent_decode(s: &str) -> Result<String, Reject> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Reject::malformed("URL 中的 % 转义不合法"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Reject::malformed("URL 参数不是合法的 UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_check_digit() {
        assert!(check_resident_id("520102199003075413").is_ok());
        assert!(check_resident_id("11010519491231002X").is_ok());
        assert!(check_resident_id("51010719870228181X").is_ok());
        assert!(check_resident_id("520102199003075414").is_err());
        assert!(check_resident_id("11010519491231002x").is_err());
        assert!(check_resident_id("110105491231002").is_ok());
        assert!(check_resident_id("11010549123100").is_err());
        assert!(check_resident_id("52010219900307541３").is_err());
    }

    #[test]
    fn uscc_shape() {
        assert!(check_uscc("91520102MA6DL8K3XN").is_ok());
        assert!(check_uscc("91520102MA6DL8K3XI").is_err());
        assert!(check_uscc("91520102MA6DL8K3X").is_err());
    }

    #[test]
    fn dates_and_times_are_exact() {
        assert!(check_date("1990-03-07", DateFmt::Dashed).is_ok());
        assert!(check_date("1990-3-7", DateFmt::Dashed).is_err());
        assert!(check_date("1990-02-30", DateFmt::Dashed).is_err());
        assert!(check_date("19900307", DateFmt::Compact).is_ok());
        assert!(check_datetime("2026-11-22 10:00:00", DateTimeFmt::Spaced).is_ok());
        assert!(check_datetime("2026-11-22T10:00:00", DateTimeFmt::Spaced).is_err());
        assert!(check_datetime("20261122100000", DateTimeFmt::Compact).is_ok());
        assert!(check_datetime("2026-11-22T10:00:00+08:00", DateTimeFmt::IsoBeijing).is_ok());
        assert!(check_datetime("2026-11-22T02:00:00Z", DateTimeFmt::IsoBeijing).is_err());
        assert!(check_datetime("2026-11-22T10:00:00+09:00", DateTimeFmt::IsoBeijing).is_err());
        assert!(check_datetime("2026-11-22T02:00:00Z", DateTimeFmt::Rfc3339).is_ok());
        assert!(check_datetime("2026-11-22T10:00:00+08:00", DateTimeFmt::Rfc3339).is_ok());
        assert!(check_datetime("2026-11-22T10:00:00.5+08:00", DateTimeFmt::Rfc3339).is_err());
        assert!(check_datetime("2026-11-22T10:00:00", DateTimeFmt::Rfc3339).is_err());
        assert!(check_datetime("1795312800000", DateTimeFmt::EpochMillis).is_ok());
        assert!(check_datetime("-1", DateTimeFmt::EpochMillis).is_err());
    }

    #[test]
    fn query_and_content_type() {
        assert_eq!(
            query_pairs(Some("a=%E5%8A%A1%E5%B7%A5&b=x+y")).ok(),
            Some(vec![("a".into(), "务工".into()), ("b".into(), "x y".into())])
        );
        assert!(single_param(Some("wbbh=1&x=2"), "wbbh").is_err());
        assert_eq!(
            content_type(Some("Application/JSON; Charset=\"utf-8\"")),
            ("application/json".into(), Some("utf-8".into()))
        );
        assert!(require_content_type(Some("text/xml; charset=GBK"), &["text/xml"], "GBK", true).is_ok());
        assert!(require_content_type(Some("text/xml"), &["text/xml"], "GBK", true).is_err());
    }
}
