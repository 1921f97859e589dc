//! The hash chain: sealing records into lines and reading lines back (format in the module docs).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sm3::Digest as _;

use super::{Algorithm, AuditEntry};

/// Hashed to give the `prev` of a file's first record.
const GENESIS: &[u8] = b"tongban-audit-v1";
/// `,"hash":"` + 64 hex digits + `"}`: what every line ends with.
const HASH_SUFFIX_LEN: usize = 75;

/// `hex(alg(parts[0] ‖ parts[1] ‖ …))`.
pub(crate) fn hash_parts(alg: Algorithm, parts: &[&[u8]]) -> String {
    match alg {
        Algorithm::Sm3 => {
            let mut hasher = sm3::Sm3::new();
            parts.iter().for_each(|part| hasher.update(part));
            hex(hasher.finalize().as_slice())
        }
        Algorithm::Sha256 => {
            let mut hasher = sha2::Sha256::new();
            parts.iter().for_each(|part| hasher.update(part));
            hex(hasher.finalize().as_slice())
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The `prev` of a file's first record.
pub(crate) fn genesis(alg: Algorithm) -> String {
    hash_parts(alg, &[GENESIS])
}

/// A record's hash from its `prev` and its body text.
pub(crate) fn link_hash(alg: Algorithm, prev: &str, body: &str) -> String {
    hash_parts(alg, &[prev.as_bytes(), b"\n", body.as_bytes()])
}

/// Times as RFC 3339, UTC, microseconds, `Z` (chrono's serde feature is not enabled).
pub(crate) mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <&str>::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}

/// The record kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Exchange,
    Start,
    Gap,
}

/// The members of a `start` record.
#[derive(Serialize, Deserialize)]
pub(crate) struct StartFields<'a> {
    #[serde(with = "rfc3339")]
    pub(crate) time: DateTime<Utc>,
    pub(crate) version: &'a str,
    /// After a rotation: where the previous file's chain ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) continues: Option<Continues>,
}

/// The last record of the file a rotated log continues from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Continues {
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

/// The members of a `gap` record.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GapFields {
    #[serde(with = "rfc3339")]
    pub(crate) time: DateTime<Utc>,
    pub(crate) lost: u64,
    #[serde(with = "rfc3339")]
    pub(crate) since: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub(crate) until: DateTime<Utc>,
}

/// A record without its hash, members in the documented order.
#[derive(Serialize)]
struct Body<'a, P: Serialize> {
    seq: u64,
    kind: Kind,
    alg: Algorithm,
    #[serde(flatten)]
    payload: P,
    prev: &'a str,
}

/// The end of the chain: the next record's `seq - 1` and `prev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) alg: Algorithm,
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

impl Chain {
    /// Continues after `tail` (seq, hash), or starts a new file.
    pub(crate) fn new(alg: Algorithm, tail: Option<(u64, String)>) -> Chain {
        let (seq, hash) = tail.unwrap_or_else(|| (0, genesis(alg)));
        Chain { alg, seq, hash }
    }

    /// Seals the next record into its line (with `\n`) and advances the chain.
    pub(crate) fn seal<P: Serialize>(&mut self, kind: Kind, payload: P) -> Result<String, serde_json::Error> {
        let seq = self.seq + 1;
        let body = serde_json::to_string(&Body { seq, kind, alg: self.alg, payload, prev: &self.hash })?;
        let hash = link_hash(self.alg, &self.hash, &body);
        // The body always ends with its closing brace; the hash goes in as the last member.
        let open = body.strip_suffix('}').unwrap_or(&body);
        let line = format!("{open},\"hash\":\"{hash}\"}}\n");
        self.seq = seq;
        self.hash = hash;
        Ok(line)
    }
}

/// The members every record has.
#[derive(Deserialize)]
struct Head {
    seq: u64,
    kind: Kind,
    alg: String,
    prev: String,
}

/// A line that holds a well-formed record (its hash not yet checked).
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) seq: u64,
    pub(crate) kind: Kind,
    pub(crate) alg: Algorithm,
    pub(crate) prev: String,
    pub(crate) hash: String,
    /// The text the hash covers.
    pub(crate) body: String,
    /// For gap records: lost, since, until.
    pub(crate) gap: Option<GapFields>,
    /// For a start record after a rotation: where the previous file ended.
    pub(crate) continues: Option<Continues>,
}

impl Parsed {
    /// Whether the stored hash matches the content.
    pub(crate) fn hash_matches(&self) -> bool {
        link_hash(self.alg, &self.prev, &self.body) == self.hash
    }
}

/// Why a line is not a record.
#[derive(Debug)]
pub(crate) enum LineError {
    /// Valid so far but cut short: what an interrupted write leaves.
    Incomplete(String),
    /// Not JSON text at all.
    Torn(String),
    /// JSON, but not a record of this format; with its seq and hash when it names them.
    Malformed { why: String, seq: Option<u64>, hash: Option<String> },
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Incomplete(why) | LineError::Torn(why) | LineError::Malformed { why, .. } => f.write_str(why),
        }
    }
}

/// Reads one line (without its `\n`).
pub(crate) fn parse_line(line: &[u8]) -> Result<Parsed, LineError> {
    const CUT: &str =
        "the line ends before the record does: a write was interrupted (crash, full disk) or the line was cut";
    let text = std::str::from_utf8(line).map_err(|e| match e.error_len() {
        None => LineError::Incomplete(CUT.into()),
        Some(_) => LineError::Torn("not UTF-8 text: the line was damaged or overwritten".into()),
    })?;
    if text.trim().is_empty() {
        return Err(LineError::Torn("an empty line".into()));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        if e.is_eof() {
            LineError::Incomplete(CUT.into())
        } else {
            LineError::Torn(format!("not a JSON record ({e}): the line was damaged or overwritten"))
        }
    })?;
    let split = split_hash(text);
    // A malformed record that still names its seq and hash keeps the chain checkable after it.
    let malformed = |why: String| LineError::Malformed {
        why,
        seq: value.get("seq").and_then(serde_json::Value::as_u64),
        hash: split.map(|(_, hash)| hash.to_owned()),
    };
    let head = Head::deserialize(&value).map_err(|e| malformed(format!("not an audit record: {e}")))?;
    let alg = Algorithm::parse(&head.alg).ok_or_else(|| malformed(format!("unknown algorithm {:?}", head.alg)))?;
    let (open, hash) = split
        .ok_or_else(|| malformed("the line does not end with the hash member (`,\"hash\":\"<64 hex>\"}`)".into()))?;
    let (gap, continues) = match head.kind {
        Kind::Exchange => AuditEntry::deserialize(&value).map(|_| (None, None)),
        Kind::Start => StartFields::deserialize(&value).map(|start| (None, start.continues)),
        Kind::Gap => GapFields::deserialize(&value).map(|gap| (Some(gap), None)),
    }
    .map_err(|e| malformed(format!("{:?} record: {e}", head.kind)))?;
    let body = format!("{open}}}");
    Ok(Parsed { seq: head.seq, kind: head.kind, alg, prev: head.prev, hash: hash.to_owned(), body, gap, continues })
}

/// The line split before its hash member, and the hash, when it ends the way the writer ends lines.
fn split_hash(line: &str) -> Option<(&str, &str)> {
    let (open, suffix) = line.split_at_checked(line.len().checked_sub(HASH_SUFFIX_LEN)?)?;
    let hash = suffix.strip_prefix(",\"hash\":\"")?.strip_suffix("\"}")?;
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    (hash.len() == 64 && hash.bytes().all(lower_hex)).then_some((open, hash))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sha2::Digest as _;
    use sm3::Digest as _;

    use super::*;
    use crate::audit::testing::entry;

    /// The scheme, pinned: genesis values computed elsewhere (Python hashlib, OpenSSL), the body
    /// text written out by hand, the hash computed here straight from sha2 and sm3.
    #[test]
    fn first_record_matches_the_documented_scheme() {
        let independent = |alg: Algorithm, bytes: &[u8]| -> String {
            let digest: Vec<u8> = match alg {
                Algorithm::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
                Algorithm::Sm3 => sm3::Sm3::digest(bytes).to_vec(),
            };
            digest.iter().map(|b| format!("{b:02x}")).collect()
        };
        let cases = [
            (Algorithm::Sha256, "44d58c45649f1b487d09dfb5837a5913faf2421b2c264263eb1cecb06ccc2f59"),
            (Algorithm::Sm3, "8d00f1dd899a159def04b5ea8112869c62bf7b17809eb1c2d895eb9f123efa50"),
        ];
        for (alg, genesis_hex) in cases {
            assert_eq!(genesis(alg), genesis_hex);
            let line = Chain::new(alg, None).seal(Kind::Exchange, entry(1)).unwrap();
            let body = format!(
                concat!(
                    r#"{{"seq":1,"kind":"exchange","alg":"{alg}","time":"2026-11-22T07:00:01.000000Z","#,
                    r#""request_id":"req-1","partner":"partner-1","from":"110000","to":"zhejiang","#,
                    r#""to_region":"330000","route_kind":"region","matter":"M001","operation":"submit","#,
                    r#""method":"POST","path_kind":"applications.submit","request_digest":"{digest}","#,
                    r#""response_digest":null,"status":201,"problem":null,"latency_us":1001,"prev":"{genesis}"}}"#
                ),
                alg = alg.as_str(),
                digest = independent(Algorithm::Sha256, b"{}"),
                genesis = genesis_hex,
            );
            let hash = independent(alg, format!("{genesis_hex}\n{body}").as_bytes());
            assert_eq!(line, format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]));
            let parsed = parse_line(line.trim_end().as_bytes()).unwrap();
            assert_eq!((parsed.seq, parsed.body, parsed.hash), (1, body, hash));
        }
    }

    #[test]
    fn lines_are_classified() {
        assert!(matches!(parse_line(br#"{"seq":1,"kind":"exch"#), Err(LineError::Incomplete(_))));
        assert!(matches!(parse_line(b"hello"), Err(LineError::Torn(_))));
        assert!(matches!(parse_line(b""), Err(LineError::Torn(_))));
        assert!(matches!(parse_line(br#"{"hello":1}"#), Err(LineError::Malformed { seq: None, .. })));
        let line = Chain::new(Algorithm::Sm3, None).seal(Kind::Exchange, entry(1)).unwrap();
        let md5 = line.trim_end().replace(r#""alg":"sm3""#, r#""alg":"md5""#);
        assert!(matches!(parse_line(md5.as_bytes()), Err(LineError::Malformed { seq: Some(1), hash: Some(_), .. })));
    }
}
