//! Application materials (申请材料): the scanned documents that travel with a proxy acceptance
//! (异地代收代办).
//!
//! A material arrives inline (`content_base64` in the canonical JSON) or as one part of a
//! `multipart/form-data` body (RFC 7578). Either way its bytes are streamed into a staging file,
//! hashed with SHA-256 on the way, checked against the declared digest and size, and only then
//! committed to the [`MaterialStore`] (材料库) under their own digest. A refused upload (digest
//! mismatch, oversize part, malformed body) leaves nothing behind: a [`Staged`] file that is not
//! committed is deleted when it is dropped.
//!
//! Layout of the store directory:
//!
//! ```text
//! <dir>/tmp/                staging files being written (swept on open)
//! <dir>/<2 hex>/<64 hex>    committed materials, named by their SHA-256
//! ```
//!
//! One gateway process owns a store directory: [`MaterialStore::open`] deletes whatever is left
//! in `tmp/`, which would include another live process's uploads.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tempfile::{NamedTempFile, TempPath};
use tokio::io::{AsyncWriteExt, BufWriter};

/// Prefix of a stored material's reference: `urn:tongban:material:sha256:<64 hex>`.
const REFERENCE_PREFIX: &str = "urn:tongban:material:sha256:";
/// Name of the multipart part that carries the acceptance JSON document.
pub const ACCEPTANCE_PART: &str = "acceptance";
/// Staging directory inside the store directory.
const STAGING_DIR: &str = "tmp";
/// Bytes gathered before a staging write goes to the blocking pool: hyper hands over chunks of a
/// few KiB, and one pool hop per chunk would cost more than the write.
const WRITE_BUFFER: usize = 1 << 20;
/// Allowance per part for boundaries and part headers when bounding the whole multipart body.
const PART_OVERHEAD: u64 = 16 * 1024;
/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// The content-addressed material store (材料库).
#[derive(Debug, Clone)]
pub struct MaterialStore {
    dir: PathBuf,
}

/// A material committed to the store (已入库材料).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMaterial {
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl StoredMaterial {
    /// The stable reference to put in the stored application: `urn:tongban:material:sha256:<hex>`.
    pub fn reference(&self) -> String {
        reference(&self.sha256)
    }
}

/// A material being received (暂存材料): a file in the staging directory with its running
/// SHA-256 and size. Dropping it without [`Staged::commit`] deletes the file.
#[derive(Debug)]
pub struct Staged {
    file: File,
    path: TempPath,
    root: PathBuf,
    sha256: String,
    size: u64,
}

/// Limits on a `multipart/form-data` acceptance upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    /// Most bytes in the `acceptance` part (the JSON document).
    pub document_bytes: usize,
    /// Most bytes in one material part.
    pub material_bytes: u64,
    /// Most parts in one body, the `acceptance` part included.
    pub max_parts: usize,
}

/// A parsed multipart acceptance upload (多部分上传).
///
/// Dropping it deletes every staged part that was not taken and committed.
#[derive(Debug)]
pub struct Upload {
    /// The bytes of the `acceptance` part, not yet parsed.
    pub document: Bytes,
    /// The material parts by form-field name: the content id the document refers to as
    /// `"reference": "cid:<name>"`.
    pub parts: HashMap<String, Staged>,
}

/// Why a material could not be received, stored or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaterialError {
    /// A material or the `acceptance` part is over its size limit.
    #[error("{}", too_large_message(.part.as_deref(), *.limit))]
    TooLarge {
        /// The multipart part, when the material came as one.
        part: Option<String>,
        /// The limit in bytes.
        limit: u64,
    },
    /// The whole multipart body is over what the limits allow in all.
    #[error(
        "the multipart body is larger than {}, the most that the acceptance document, the allowed \
         number of parts and their headers can take; send fewer or smaller materials",
        byte_count(*.limit)
    )]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The content's SHA-256 is not the declared one.
    #[error(
        "the material's content has SHA-256 {actual}, not the declared {declared}; the upload may be \
         damaged or the declared `sha256` is wrong: compute it over the exact bytes sent and send \
         the material again"
    )]
    DigestMismatch {
        /// The declared digest.
        declared: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The content's size is not the declared one.
    #[error(
        "the material's content is {actual} bytes, not the declared {declared}; the upload may have \
         been cut short or the declared `size` is wrong: send the material again with its exact size"
    )]
    SizeMismatch {
        /// The declared size.
        declared: u64,
        /// The size of what arrived.
        actual: u64,
    },
    /// The multipart body is malformed.
    #[error("the multipart body is malformed{}: {detail}", at_part(.part.as_deref()))]
    Multipart {
        /// The part being read, when known.
        part: Option<String>,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// The request body stopped arriving (client went away, connection reset).
    #[error(
        "the request body could not be read{}: {detail}; the connection may have dropped: send the \
         request again",
        at_part(.part.as_deref())
    )]
    BodyRead {
        /// The part being read, when known.
        part: Option<String>,
        /// The transport's error.
        detail: String,
    },
    /// A required part is absent.
    #[error(
        "the multipart body has no part named `{part}`; send the acceptance document as a part named \
         `{ACCEPTANCE_PART}` (Content-Type application/json) and each material as a part of its own"
    )]
    MissingPart {
        /// The missing part's name.
        part: String,
    },
    /// Two parts share a name.
    #[error(
        "the multipart body has more than one part named `{part}`; give every part its own name (a \
         material part's name is the content id its `\"reference\": \"cid:<name>\"` points at)"
    )]
    DuplicatePart {
        /// The repeated name.
        part: String,
    },
    /// More parts than allowed.
    #[error(
        "the multipart body has more than {limit} parts (the `{ACCEPTANCE_PART}` document counts as \
         one){}; send fewer materials with one acceptance",
        .part.as_deref().map(|p| format!(", part `{p}` is one too many")).unwrap_or_default()
    )]
    TooManyParts {
        /// The first part over the limit, when it has a name.
        part: Option<String>,
        /// The most parts allowed.
        limit: usize,
    },
    /// A material refers to a part that was not uploaded (or is already taken).
    #[error(
        "a material refers to `cid:{part}` but no part named `{part}` is left in the upload: it was \
         not sent, or another material already refers to it; name the part `{part}` or correct the \
         reference"
    )]
    UnknownPart {
        /// The content id referred to.
        part: String,
    },
    /// An uploaded part that no material refers to.
    #[error(
        "part `{part}` is not referred to by any material; refer to it with `\"reference\": \
         \"cid:{part}\"` or leave it out"
    )]
    UnreferencedPart {
        /// The unused part's name.
        part: String,
    },
    /// A reference or digest that is not one this store understands.
    #[error(
        "`{reference}` is not a material reference; use `cid:<part name>` for a part of this upload, \
         or `urn:tongban:material:sha256:<64 lowercase hex digits>` (or the bare digest) for a stored \
         material"
    )]
    BadReference {
        /// What was given.
        reference: String,
    },
    /// No material with that digest is stored.
    #[error(
        "no material with SHA-256 {sha256} is in the material store; send its content inline or as a \
         multipart part"
    )]
    NotFound {
        /// The digest looked up.
        sha256: String,
    },
    /// A stored file no longer matches its name.
    #[error(
        "the stored material file {path} no longer matches its SHA-256 {sha256} (it hashes to \
         {actual}): the disk or someone with access damaged it; restore the file from backup or have \
         the accepting window send the material again"
    )]
    Corrupt {
        /// The digest the file is named by.
        sha256: String,
        /// The file.
        path: String,
        /// What the file hashes to now.
        actual: String,
    },
    /// A file-system operation on the store failed.
    #[error(
        "{what} failed: {source}; check that the material directory exists, that the gateway may \
         write to it and that its disk has space"
    )]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl MaterialError {
    /// The multipart part (form-field name) the error is about, for the problem's field path.
    pub fn part(&self) -> Option<&str> {
        match self {
            Self::TooLarge { part, .. }
            | Self::Multipart { part, .. }
            | Self::BodyRead { part, .. }
            | Self::TooManyParts { part, .. } => part.as_deref(),
            Self::MissingPart { part }
            | Self::DuplicatePart { part }
            | Self::UnknownPart { part }
            | Self::UnreferencedPart { part } => Some(part),
            _ => None,
        }
    }

    /// True when the gateway, not the caller, is at fault (a 5xx problem): the store's disk
    /// failed or a stored file is damaged.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::Corrupt { .. })
    }

    /// Names the part on errors raised while it was being read.
    fn in_part(mut self, name: &str) -> Self {
        if let Self::TooLarge { part, .. } | Self::Multipart { part, .. } | Self::BodyRead { part, .. } = &mut self {
            part.get_or_insert_with(|| name.to_owned());
        }
        self
    }
}

fn too_large_message(part: Option<&str>, limit: u64) -> String {
    let limit = byte_count(limit);
    match part {
        Some(ACCEPTANCE_PART) => format!(
            "the `{ACCEPTANCE_PART}` part is larger than the limit of {limit}; send material content as \
             parts of its own, referred to as `cid:<part name>`, instead of inline base64"
        ),
        Some(part) => format!(
            "part `{part}` is larger than the limit of {limit} for one material; scan it at a lower \
             resolution or split it into several materials, then send it again"
        ),
        None => format!(
            "the material is larger than the limit of {limit}; scan it at a lower resolution or split \
             it into several materials, then send it again"
        ),
    }
}

fn at_part(part: Option<&str>) -> String {
    part.map(|p| format!(" at part `{p}`")).unwrap_or_default()
}

fn byte_count(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB ({bytes} bytes)", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> MaterialError {
    let what = what.into();
    move |source| MaterialError::Io { what, source }
}

/// True when `text` is a SHA-256 digest in the store's spelling: 64 lowercase hex digits.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The stable reference to a stored material: `urn:tongban:material:sha256:<hex>`.
pub fn reference(sha256: &str) -> String {
    format!("{REFERENCE_PREFIX}{sha256}")
}

/// The digest in a stored material's reference, or `None` when `reference` is not one.
pub fn parse_reference(reference: &str) -> Option<&str> {
    reference.strip_prefix(REFERENCE_PREFIX).filter(|hex| is_sha256_hex(hex))
}

/// The content id in a `cid:` URL (RFC 2392), percent-decoded, or `None` when `reference` is not
/// a well-formed `cid:` URL. Raw UTF-8 (`cid:身份证`) is accepted as well as `cid:%E8%BA%AB...`.
pub fn content_id(reference: &str) -> Option<String> {
    let scheme = reference.get(..4)?;
    if !scheme.eq_ignore_ascii_case("cid:") {
        return None;
    }
    let encoded = reference.get(4..)?.as_bytes();
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let [high, low, tail @ ..] = tail else { return None };
            decoded.push(hex_value(*high)? << 4 | hex_value(*low)?);
            rest = tail;
        } else {
            decoded.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(decoded).ok().filter(|id| !id.is_empty())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// `dir/<first 2 hex>`; only ever called with a digest that passed [`is_sha256_hex`].
fn fan_out_dir(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(sha256.get(..2).unwrap_or_default())
}

/// `dir/<first 2 hex>/<hex>`; only ever called with a digest that passed [`is_sha256_hex`].
fn content_path(dir: &Path, sha256: &str) -> PathBuf {
    fan_out_dir(dir, sha256).join(sha256)
}

/// Makes a directory's entries (a rename, a new file) survive a power cut.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), MaterialError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(format!("syncing the directory {}", dir.display())))
}

/// Windows cannot open a directory as a file; NTFS journals renames itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), MaterialError> {
    Ok(())
}

impl MaterialStore {
    /// Opens (creating it if need be) the store in `dir`, and deletes staging files a crash left
    /// in `dir/tmp`.
    pub fn open(dir: &Path) -> Result<MaterialStore, MaterialError> {
        let staging = dir.join(STAGING_DIR);
        fs::create_dir_all(&staging)
            .map_err(io_error(format!("creating the material directory {}", staging.display())))?;
        let listing = format!("listing the staging directory {}", staging.display());
        for entry in fs::read_dir(&staging).map_err(io_error(listing.clone()))? {
            let entry = entry.map_err(io_error(listing.clone()))?;
            let path = entry.path();
            if entry.file_type().map_err(io_error(listing.clone()))?.is_file() {
                fs::remove_file(&path)
                    .map_err(io_error(format!("removing the abandoned staging file {}", path.display())))?;
            }
        }
        // All 256 fan-out directories exist from the start, so a commit never has to create one
        // and race another commit over who syncs `dir`.
        for byte in 0..=u8::MAX {
            let sub = dir.join(format!("{byte:02x}"));
            match fs::create_dir(&sub) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(io_error(format!("creating the material directory {}", sub.display()))(err)),
            }
        }
        sync_dir(dir)?;
        Ok(MaterialStore { dir: dir.to_path_buf() })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn staging(&self) -> PathBuf {
        self.dir.join(STAGING_DIR)
    }

    fn new_temp_blocking(staging: &Path) -> Result<(File, TempPath), MaterialError> {
        NamedTempFile::new_in(staging)
            .map(NamedTempFile::into_parts)
            .map_err(io_error(format!("creating a staging file in {}", staging.display())))
    }

    /// Streams a material into a staging file, hashing it on the way. Stops with
    /// [`MaterialError::TooLarge`] as soon as more than `max_bytes` have arrived; the staging
    /// file is then deleted, as it is on any error.
    pub async fn stage_stream<S, E>(&self, stream: S, max_bytes: u64) -> Result<Staged, MaterialError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        self.stage_with(stream, max_bytes, |err| MaterialError::BodyRead { part: None, detail: err.to_string() }).await
    }

    async fn stage_with<S, E, F>(&self, mut stream: S, max_bytes: u64, on_error: F) -> Result<Staged, MaterialError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        F: Fn(E) -> MaterialError,
    {
        let staging = self.staging();
        let (file, path) = match tokio::task::spawn_blocking(move || Self::new_temp_blocking(&staging)).await {
            Ok(created) => created?,
            Err(err) => return Err(io_error("creating a staging file")(io::Error::other(err))),
        };
        let what = || format!("writing the staging file {}", path.display());
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file));
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(&on_error)?;
            size = size.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
            if size > max_bytes {
                return Err(MaterialError::TooLarge { part: None, limit: max_bytes });
            }
            hasher.update(&chunk);
            writer.write_all(&chunk).await.map_err(io_error(what()))?;
        }
        writer.flush().await.map_err(io_error(what()))?;
        let file = writer.into_inner().into_std().await;
        Ok(Staged { file, path, root: self.dir.clone(), sha256: to_hex(&hasher.finalize()), size })
    }

    /// Stages inline content (already base64-decoded). Blocking: run it in `spawn_blocking`
    /// unless the content is small.
    pub fn stage_bytes(&self, bytes: &[u8]) -> Result<Staged, MaterialError> {
        let (mut file, path) = Self::new_temp_blocking(&self.staging())?;
        file.write_all(bytes).map_err(io_error(format!("writing the staging file {}", path.display())))?;
        Ok(Staged {
            file,
            path,
            root: self.dir.clone(),
            sha256: to_hex(&Sha256::digest(bytes)),
            size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        })
    }

    /// Reads a stored material by its digest (64 lowercase hex digits), checking that the file
    /// still hashes to it. Blocking.
    pub fn read(&self, sha256: &str) -> Result<Vec<u8>, MaterialError> {
        // The digest becomes a path: anything but 64 hex digits could climb out of the store.
        if !is_sha256_hex(sha256) {
            return Err(MaterialError::BadReference { reference: sha256.to_owned() });
        }
        let path = content_path(&self.dir, sha256);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(MaterialError::NotFound { sha256: sha256.to_owned() });
            }
            Err(err) => return Err(io_error(format!("reading the material file {}", path.display()))(err)),
        };
        let actual = to_hex(&Sha256::digest(&bytes));
        if actual != sha256 {
            return Err(MaterialError::Corrupt { sha256: sha256.to_owned(), path: path.display().to_string(), actual });
        }
        Ok(bytes)
    }

    /// True when a material with this digest is stored. Blocking (one `stat`).
    pub fn contains(&self, sha256: &str) -> bool {
        is_sha256_hex(sha256) && content_path(&self.dir, sha256).is_file()
    }
}

impl Staged {
    /// SHA-256 of what arrived, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Bytes that arrived.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Checks what arrived against the material's declared `size` and `sha256` (hex, either case).
    pub fn check(&self, declared_sha256: &str, declared_size: u64) -> Result<(), MaterialError> {
        // Size first: a short upload is the likelier cause, and its message says so.
        if declared_size != self.size {
            return Err(MaterialError::SizeMismatch { declared: declared_size, actual: self.size });
        }
        if !declared_sha256.eq_ignore_ascii_case(&self.sha256) {
            return Err(MaterialError::DigestMismatch {
                declared: declared_sha256.to_owned(),
                actual: self.sha256.clone(),
            });
        }
        Ok(())
    }

    /// Moves the material into the store under its digest. Blocking: run it in `spawn_blocking`.
    ///
    /// The file is synced before the rename and the directory after it: the acceptance that
    /// refers to the material is committed right after with synchronous SQLite commits, and a
    /// `202 Accepted` must never point at a file a power cut can take away.
    pub fn commit(self) -> Result<StoredMaterial, MaterialError> {
        let Staged { file, path, root, sha256, size } = self;
        file.sync_all().map_err(io_error(format!("syncing the staging file {}", path.display())))?;
        drop(file);
        let sub = fan_out_dir(&root, &sha256);
        let target = sub.join(&sha256);
        match fs::create_dir(&sub) {
            // Only when someone removed a fan-out directory after open.
            Ok(()) => sync_dir(&root)?,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_error(format!("creating the material directory {}", sub.display()))(err)),
        }
        // Same name, same content: an existing file of the right size needs no second copy. One of
        // the wrong size was damaged, and is replaced.
        let present = fs::metadata(&target).is_ok_and(|meta| meta.is_file() && meta.len() == size);
        if !present {
            path.persist(&target)
                .map_err(|err| io_error(format!("moving the material into {}", target.display()))(err.error))?;
        }
        // Synced even when the file was already there: a concurrent commit of the same content may
        // have renamed it in without having synced the directory yet.
        sync_dir(&sub)?;
        Ok(StoredMaterial { sha256, size })
    }
}

impl Upload {
    /// Takes the part a material's `reference` (`cid:<name>`) points at.
    pub fn take(&mut self, reference: &str) -> Result<Staged, MaterialError> {
        let id =
            content_id(reference).ok_or_else(|| MaterialError::BadReference { reference: reference.to_owned() })?;
        self.parts.remove(&id).ok_or(MaterialError::UnknownPart { part: id })
    }

    /// Refuses an upload with parts no material took. The first name (in sorted order) is
    /// reported, so the message is the same on every try.
    pub fn finish(self) -> Result<(), MaterialError> {
        match self.parts.into_keys().min() {
            Some(part) => Err(MaterialError::UnreferencedPart { part }),
            None => Ok(()),
        }
    }
}

/// Translates multer's errors into ones that say what to fix.
fn from_multer(err: multer::Error, part: Option<&str>) -> MaterialError {
    let part = part.map(str::to_owned);
    let malformed = |part: Option<String>, detail: String| MaterialError::Multipart { part, detail };
    match err {
        multer::Error::FieldSizeExceeded { limit, field_name } => {
            MaterialError::TooLarge { part: field_name.or(part), limit }
        }
        multer::Error::StreamSizeExceeded { limit } => MaterialError::BodyTooLarge { limit },
        multer::Error::StreamReadFailed(source) => MaterialError::BodyRead { part, detail: source.to_string() },
        multer::Error::IncompleteFieldData { field_name } => malformed(
            field_name.or(part),
            "the part's data ends without the boundary that should follow it; the body may be \
             truncated: send the whole request again"
                .to_owned(),
        ),
        multer::Error::IncompleteStream => malformed(
            part,
            "the body ends (or stops matching the boundary) before the closing `--<boundary>--` line; \
             check that the parts are separated by the boundary from Content-Type and send the whole \
             request again"
                .to_owned(),
        ),
        err @ (multer::Error::IncompleteHeaders
        | multer::Error::ReadHeaderFailed(_)
        | multer::Error::DecodeHeaderName { .. }
        | multer::Error::DecodeHeaderValue { .. }) => malformed(
            part,
            format!(
                "{err}; every part needs headers (at least `Content-Disposition: form-data; name=\"...\"`) \
                 ended by an empty line"
            ),
        ),
        other => malformed(part, format!("{other}; send a multipart/form-data body as RFC 7578 describes")),
    }
}

fn boundary_of(content_type: &str) -> Result<String, MaterialError> {
    let refuse = |why: &str| MaterialError::Multipart {
        part: None,
        detail: format!(
            "Content-Type `{content_type}` {why}; send `multipart/form-data; boundary=<1 to 70 characters>` \
             and separate the parts with that boundary"
        ),
    };
    match multer::parse_boundary(content_type) {
        Ok(boundary) if !boundary.is_empty() && boundary.len() <= MAX_BOUNDARY => Ok(boundary),
        Ok(_) => Err(refuse("has a boundary that is empty or longer than 70 characters")),
        Err(multer::Error::NoBoundary) => Err(refuse("has no boundary parameter")),
        Err(multer::Error::DecodeContentType(_)) => Err(refuse("is not a well-formed media type")),
        Err(_) => Err(refuse("is not multipart/form-data")),
    }
}

/// Reads the `acceptance` part into memory, refusing it past `limit` bytes.
async fn read_document<S>(field: &mut S, limit: usize) -> Result<Bytes, MaterialError>
where
    S: Stream<Item = Result<Bytes, multer::Error>> + Unpin,
{
    let mut document = BytesMut::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|err| from_multer(err, Some(ACCEPTANCE_PART)))?;
        if document.len().saturating_add(chunk.len()) > limit {
            return Err(MaterialError::TooLarge {
                part: Some(ACCEPTANCE_PART.to_owned()),
                limit: u64::try_from(limit).unwrap_or(u64::MAX),
            });
        }
        document.extend_from_slice(&chunk);
    }
    Ok(document.freeze())
}

/// Reads a `multipart/form-data` acceptance upload (RFC 7578): the `acceptance` part (the JSON
/// document, `application/json` or no Content-Type) into memory, every other part into a staging
/// file of the store under its form-field name. Any error drops what was staged so far. The
/// whole body may be at most `document_bytes + max_parts × material_bytes` plus 16 KiB per part
/// for boundaries and headers ([`MaterialError::BodyTooLarge`] past that).
///
/// `content_type` is the request's `Content-Type` header; `body` its data frames (for a hyper
/// `Incoming`: `http_body_util::BodyExt::into_data_stream`).
pub async fn read_multipart<S, E>(
    content_type: &str,
    body: S,
    limits: &MultipartLimits,
    store: &MaterialStore,
) -> Result<Upload, MaterialError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let boundary = boundary_of(content_type)?;
    // multer buffers part headers until their blank line, with no limit of its own: bounding the
    // whole body bounds that buffer too.
    let parts = u64::try_from(limits.max_parts).unwrap_or(u64::MAX);
    let whole = u64::try_from(limits.document_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(parts.saturating_mul(limits.material_bytes))
        .saturating_add(parts.saturating_add(1).saturating_mul(PART_OVERHEAD));
    let constraints = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(whole));
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);

    let mut document: Option<Bytes> = None;
    let mut staged: HashMap<String, Staged> = HashMap::new();
    let mut count: usize = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(|err| from_multer(err, None))? {
        count += 1;
        let name = field.name().filter(|name| !name.is_empty()).map(str::to_owned);
        if count > limits.max_parts {
            return Err(MaterialError::TooManyParts { part: name, limit: limits.max_parts });
        }
        let Some(name) = name else {
            return Err(MaterialError::Multipart {
                part: None,
                detail: format!(
                    "part {count} has no name; give every part `Content-Disposition: form-data; name=\"...\"`: \
                     `{ACCEPTANCE_PART}` for the JSON document, the content id for each material"
                ),
            });
        };
        if name == ACCEPTANCE_PART {
            if document.is_some() {
                return Err(MaterialError::DuplicatePart { part: name });
            }
            if let Some(media_type) = field.content_type().filter(|media| media.essence_str() != "application/json") {
                return Err(MaterialError::Multipart {
                    part: Some(name),
                    detail: format!(
                        "its Content-Type is `{media_type}`; send the acceptance document as application/json"
                    ),
                });
            }
            document = Some(read_document(&mut field, limits.document_bytes).await?);
        } else {
            if staged.contains_key(&name) {
                return Err(MaterialError::DuplicatePart { part: name });
            }
            let part = store
                .stage_with(&mut field, limits.material_bytes, |err| from_multer(err, Some(&name)))
                .await
                .map_err(|err| err.in_part(&name))?;
            staged.insert(name, part);
        }
    }
    let document = document.ok_or_else(|| MaterialError::MissingPart { part: ACCEPTANCE_PART.to_owned() })?;
    Ok(Upload { document, parts: staged })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use futures_util::stream;

    const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const BOUNDARY: &str = "tongban-test-boundary";

    fn store() -> (tempfile::TempDir, MaterialStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = MaterialStore::open(&dir.path().join("materials")).unwrap();
        (dir, store)
    }

    fn staging_entries(store: &MaterialStore) -> Vec<PathBuf> {
        fs::read_dir(store.dir().join(STAGING_DIR)).unwrap().map(|entry| entry.unwrap().path()).collect()
    }

    fn assert_staging_empty(store: &MaterialStore) {
        let left = staging_entries(store);
        assert!(left.is_empty(), "expected no staging files after a refused upload, found {left:?}");
    }

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin + Send + 'static {
        stream::iter(parts.iter().map(|part| Ok(Bytes::copy_from_slice(part))).collect::<Vec<_>>())
    }

    /// A multipart body cut into `chunk`-byte frames, so boundaries straddle frames.
    fn body(raw: &[u8], chunk: usize) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin + Send + 'static {
        stream::iter(raw.chunks(chunk).map(|piece| Ok(Bytes::copy_from_slice(piece))).collect::<Vec<_>>())
    }

    fn part(name: Option<&str>, content_type: Option<&str>, data: &[u8]) -> Vec<u8> {
        let mut out = format!("--{BOUNDARY}\r\n").into_bytes();
        match name {
            Some(name) => out.extend(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}.pdf\"\r\n").bytes(),
            ),
            None => out.extend(b"Content-Disposition: form-data\r\n"),
        }
        if let Some(content_type) = content_type {
            out.extend(format!("Content-Type: {content_type}\r\n").bytes());
        }
        out.extend(b"\r\n");
        out.extend(data);
        out.extend(b"\r\n");
        out
    }

    fn multipart(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = parts.concat();
        out.extend(format!("--{BOUNDARY}--\r\n").bytes());
        out
    }

    fn content_type() -> String {
        format!("multipart/form-data; boundary={BOUNDARY}")
    }

    const LIMITS: MultipartLimits = MultipartLimits { document_bytes: 1024, material_bytes: 4096, max_parts: 4 };

    const DOCUMENT: &[u8] =
        br#"{"application":{"materials":[{"reference":"cid:id-card"},{"reference":"cid:licence"}]}}"#;

    async fn upload(raw: &[u8], store: &MaterialStore) -> Result<Upload, MaterialError> {
        read_multipart(&content_type(), body(raw, 7), &LIMITS, store).await
    }

    #[test]
    fn stage_and_commit_puts_the_file_at_its_content_path() {
        let (_dir, store) = store();
        let staged = store.stage_bytes(b"hello").unwrap();
        assert_eq!(staged.sha256(), HELLO_SHA256);
        assert_eq!(staged.size(), 5);
        staged.check(HELLO_SHA256, 5).unwrap();
        let stored = staged.commit().unwrap();
        assert_eq!(stored, StoredMaterial { sha256: HELLO_SHA256.to_owned(), size: 5 });
        let path = store.dir().join("2c").join(HELLO_SHA256);
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        assert_eq!(to_hex(&Sha256::digest(fs::read(&path).unwrap())), HELLO_SHA256);
        assert!(store.contains(HELLO_SHA256));
        assert_eq!(store.read(HELLO_SHA256).unwrap(), b"hello");
        assert_eq!(stored.reference(), format!("urn:tongban:material:sha256:{HELLO_SHA256}"));
        assert_staging_empty(&store);
    }

    #[test]
    fn identical_content_committed_twice_leaves_one_file() {
        let (_dir, store) = store();
        store.stage_bytes(b"hello").unwrap().commit().unwrap();
        store.stage_bytes(b"hello").unwrap().commit().unwrap();
        let files: Vec<_> = fs::read_dir(store.dir().join("2c")).unwrap().collect();
        assert_eq!(files.len(), 1, "expected one stored file, found {files:?}");
        assert_staging_empty(&store);
    }

    #[test]
    fn a_damaged_stored_file_is_replaced_on_commit_and_refused_on_read() {
        let (_dir, store) = store();
        let path = store.dir().join("2c").join(HELLO_SHA256);
        fs::write(&path, b"hellx").unwrap();
        let err = store.read(HELLO_SHA256).unwrap_err();
        assert!(matches!(err, MaterialError::Corrupt { .. }), "expected Corrupt, got {err:?}");
        assert!(err.is_internal());
        fs::write(&path, b"hell").unwrap();
        store.stage_bytes(b"hello").unwrap().commit().unwrap();
        assert_eq!(store.read(HELLO_SHA256).unwrap(), b"hello");
    }

    #[test]
    fn dropping_a_staged_material_leaves_no_file() {
        let (_dir, store) = store();
        let staged = store.stage_bytes(b"hello").unwrap();
        assert_eq!(staging_entries(&store).len(), 1);
        drop(staged);
        assert_staging_empty(&store);
        assert!(!store.contains(HELLO_SHA256));
    }

    #[test]
    fn open_sweeps_abandoned_staging_files() {
        let (_dir, store) = store();
        fs::write(store.dir().join(STAGING_DIR).join(".tmpCRASH"), b"half an upload").unwrap();
        let store = MaterialStore::open(store.dir()).unwrap();
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn a_stream_is_hashed_across_chunks() {
        let (_dir, store) = store();
        let staged = store.stage_stream(chunks(&[b"he", b"", b"llo"]), 5).await.unwrap();
        assert_eq!(staged.sha256(), HELLO_SHA256);
        assert_eq!(staged.size(), 5);
        staged.commit().unwrap();
        assert_eq!(store.read(HELLO_SHA256).unwrap(), b"hello");
    }

    #[tokio::test]
    async fn an_oversize_stream_stops_with_too_large() {
        let (_dir, store) = store();
        let stream = chunks(&[b"hel", b"lo!", b"never read"]);
        let err = store.stage_stream(stream, 5).await.unwrap_err();
        assert!(matches!(err, MaterialError::TooLarge { part: None, limit: 5 }), "got {err:?}");
        assert!(err.to_string().contains("larger than the limit of 5 bytes"), "{err}");
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn a_failing_stream_is_a_body_read_error() {
        let (_dir, store) = store();
        let stream = stream::iter(vec![Ok(Bytes::from_static(b"he")), Err(io::Error::other("connection reset"))]);
        let err = store.stage_stream(stream, 100).await.unwrap_err();
        assert!(matches!(err, MaterialError::BodyRead { .. }), "got {err:?}");
        assert!(err.to_string().contains("connection reset"), "{err}");
        assert_staging_empty(&store);
    }

    #[test]
    fn mismatches_say_what_arrived_and_what_to_do() {
        let (_dir, store) = store();
        let staged = store.stage_bytes(b"hello").unwrap();

        let err = staged.check(HELLO_SHA256, 6).unwrap_err();
        assert!(matches!(err, MaterialError::SizeMismatch { declared: 6, actual: 5 }), "got {err:?}");
        let text = err.to_string();
        assert!(text.contains("5 bytes, not the declared 6") && text.contains("send the material again"), "{text}");

        let declared = "0".repeat(64);
        let err = staged.check(&declared, 5).unwrap_err();
        assert!(matches!(err, MaterialError::DigestMismatch { .. }), "got {err:?}");
        let text = err.to_string();
        assert!(text.contains(HELLO_SHA256) && text.contains(&declared), "{text}");
        assert!(text.contains("send the material again"), "{text}");

        staged.check(&HELLO_SHA256.to_uppercase(), 5).unwrap();
    }

    #[test]
    fn read_refuses_anything_but_a_digest() {
        let (_dir, store) = store();
        for bad in ["../../etc/passwd", "", "2C", &HELLO_SHA256.to_uppercase(), &format!("{HELLO_SHA256}0")] {
            let err = store.read(bad).unwrap_err();
            assert!(matches!(err, MaterialError::BadReference { .. }), "{bad:?}: got {err:?}");
            assert!(!store.contains(bad));
        }
        let err = store.read(&"a".repeat(64)).unwrap_err();
        assert!(matches!(err, MaterialError::NotFound { .. }), "got {err:?}");
    }

    #[test]
    fn references_round_trip() {
        let reference = reference(HELLO_SHA256);
        assert_eq!(parse_reference(&reference), Some(HELLO_SHA256));
        assert_eq!(parse_reference("urn:tongban:material:sha256:../x"), None);
        assert_eq!(parse_reference(HELLO_SHA256), None);
        assert_eq!(content_id("cid:id-card").as_deref(), Some("id-card"));
        assert_eq!(content_id("CID:%E8%BA%AB%E4%BB%BD%E8%AF%81").as_deref(), Some("身份证"));
        assert_eq!(content_id("cid:身份证").as_deref(), Some("身份证"));
        assert_eq!(content_id("cid:"), None);
        assert_eq!(content_id("cid:%E8"), None);
        assert_eq!(content_id("cid:%zz"), None);
        assert_eq!(content_id("https://example.org/x"), None);
    }

    #[tokio::test]
    async fn a_multipart_upload_yields_the_document_and_staged_parts() {
        let (_dir, store) = store();
        let raw = multipart(&[
            part(Some("id-card"), Some("application/pdf"), b"hello"),
            part(Some(ACCEPTANCE_PART), Some("application/json; charset=utf-8"), DOCUMENT),
            // Data that looks like a boundary line but is not one.
            part(Some("licence"), None, b"--tongban-test-boundar\r\n--x"),
        ]);
        let mut upload = upload(&raw, &store).await.unwrap();
        assert_eq!(upload.document, DOCUMENT);
        assert_eq!(upload.parts.len(), 2);

        let id_card = upload.take("cid:id-card").unwrap();
        id_card.check(HELLO_SHA256, 5).unwrap();
        let licence = upload.take("cid:licence").unwrap();
        assert_eq!(licence.size(), 27);
        let err = upload.take("cid:licence").unwrap_err();
        assert!(matches!(err, MaterialError::UnknownPart { .. }), "got {err:?}");
        assert_eq!(err.part(), Some("licence"));
        upload.finish().unwrap();

        id_card.commit().unwrap();
        let stored = licence.commit().unwrap();
        assert_eq!(store.read(&stored.sha256).unwrap(), b"--tongban-test-boundar\r\n--x");
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn an_unreferenced_part_is_refused_by_finish() {
        let (_dir, store) = store();
        let raw = multipart(&[part(Some(ACCEPTANCE_PART), None, DOCUMENT), part(Some("stray"), None, b"x")]);
        let upload = upload(&raw, &store).await.unwrap();
        let err = upload.finish().unwrap_err();
        assert!(matches!(err, MaterialError::UnreferencedPart { .. }), "got {err:?}");
        assert!(err.to_string().contains("cid:stray"), "{err}");
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn a_missing_acceptance_part_is_refused() {
        let (_dir, store) = store();
        let raw = multipart(&[part(Some("id-card"), None, b"hello")]);
        let err = upload(&raw, &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::MissingPart { .. }), "got {err:?}");
        assert_eq!(err.part(), Some(ACCEPTANCE_PART));
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn duplicate_part_names_are_refused() {
        let (_dir, store) = store();
        let raw = multipart(&[
            part(Some(ACCEPTANCE_PART), None, DOCUMENT),
            part(Some("id-card"), None, b"hello"),
            part(Some("id-card"), None, b"again"),
        ]);
        let err = upload(&raw, &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::DuplicatePart { .. }), "got {err:?}");
        assert_eq!(err.part(), Some("id-card"));
        assert_staging_empty(&store);

        let raw =
            multipart(&[part(Some(ACCEPTANCE_PART), None, DOCUMENT), part(Some(ACCEPTANCE_PART), None, DOCUMENT)]);
        let err = upload(&raw, &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::DuplicatePart { .. }), "got {err:?}");
        assert_eq!(err.part(), Some(ACCEPTANCE_PART));
    }

    #[tokio::test]
    async fn too_many_parts_are_refused() {
        let (_dir, store) = store();
        let mut parts = vec![part(Some(ACCEPTANCE_PART), None, DOCUMENT)];
        parts.extend((0..4).map(|n| part(Some(&format!("m{n}")), None, b"hello")));
        let err = upload(&multipart(&parts), &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::TooManyParts { limit: 4, .. }), "got {err:?}");
        assert_eq!(err.part(), Some("m3"));
        assert!(err.to_string().contains("more than 4 parts"), "{err}");
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn an_oversize_material_part_is_refused() {
        let (_dir, store) = store();
        let big = vec![b'x'; 4097];
        let raw = multipart(&[
            part(Some(ACCEPTANCE_PART), None, DOCUMENT),
            part(Some("id-card"), None, b"hello"),
            part(Some("scan"), None, &big),
        ]);
        let err = upload(&raw, &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::TooLarge { limit: 4096, .. }), "got {err:?}");
        assert_eq!(err.part(), Some("scan"));
        assert!(err.to_string().contains("part `scan` is larger than the limit of 4096 bytes"), "{err}");
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn an_oversize_document_is_refused() {
        let (_dir, store) = store();
        let raw = multipart(&[part(Some("id-card"), None, b"hello"), part(Some(ACCEPTANCE_PART), None, &[b' '; 1025])]);
        let err = upload(&raw, &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::TooLarge { limit: 1024, .. }), "got {err:?}");
        assert_eq!(err.part(), Some(ACCEPTANCE_PART));
        assert!(err.to_string().contains("instead of inline base64"), "{err}");
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn a_truncated_body_is_malformed() {
        let (_dir, store) = store();
        let mut raw = part(Some(ACCEPTANCE_PART), None, DOCUMENT);
        raw.extend(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"scan\"\r\n\r\nhalf a sc").bytes());
        let err = upload(&raw, &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::Multipart { .. }), "got {err:?}");
        assert_eq!(err.part(), Some("scan"));
        assert!(err.to_string().contains("truncated"), "{err}");
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn a_body_without_the_boundary_is_malformed() {
        let (_dir, store) = store();
        let err = upload(b"{\"this\": \"is not multipart\"}", &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::Multipart { part: None, .. }), "got {err:?}");
        assert!(err.to_string().contains("--<boundary>--"), "{err}");
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn a_nameless_part_is_malformed() {
        let (_dir, store) = store();
        let raw = multipart(&[part(Some(ACCEPTANCE_PART), None, DOCUMENT), part(None, None, b"hello")]);
        let err = upload(&raw, &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::Multipart { part: None, .. }), "got {err:?}");
        assert!(err.to_string().contains("part 2 has no name"), "{err}");
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn the_document_must_be_json() {
        let (_dir, store) = store();
        let raw = multipart(&[part(Some(ACCEPTANCE_PART), Some("text/xml"), b"<a/>")]);
        let err = upload(&raw, &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::Multipart { .. }), "got {err:?}");
        assert_eq!(err.part(), Some(ACCEPTANCE_PART));
        assert!(err.to_string().contains("application/json"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_content_type_is_refused() {
        let (_dir, store) = store();
        let raw = multipart(&[part(Some(ACCEPTANCE_PART), None, DOCUMENT)]);
        for (content_type, why) in [
            ("application/json", "is not multipart/form-data"),
            ("multipart/form-data", "has no boundary parameter"),
            ("multipart/form-data; boundary=\"\"", "is not a well-formed media type"),
            (
                "multipart/form-data; boundary=0123456789012345678901234567890123456789012345678901234567890123456789x",
                "longer than 70",
            ),
        ] {
            let err = read_multipart(content_type, body(&raw, 64), &LIMITS, &store).await.unwrap_err();
            assert!(matches!(err, MaterialError::Multipart { part: None, .. }), "{content_type}: got {err:?}");
            assert!(err.to_string().contains(why), "{content_type}: {err}");
        }
    }

    #[tokio::test]
    async fn a_body_that_fails_mid_part_is_a_read_error() {
        let (_dir, store) = store();
        let mut raw = part(Some(ACCEPTANCE_PART), None, DOCUMENT);
        raw.extend(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"scan\"\r\n\r\nhalf").bytes());
        let frames = vec![Ok(Bytes::from(raw)), Err(io::Error::other("connection reset by peer"))];
        // The failure comes after a pause, as on a socket, once `scan` is being read.
        let frames = stream::iter(frames).then(|frame| async {
            if frame.is_err() {
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
            }
            frame
        });
        let err = read_multipart(&content_type(), frames, &LIMITS, &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::BodyRead { .. }), "got {err:?}");
        assert_eq!(err.part(), Some("scan"));
        assert_staging_empty(&store);
    }

    #[tokio::test]
    async fn a_body_past_the_whole_limit_is_refused() {
        let (_dir, store) = store();
        let limits = MultipartLimits { document_bytes: 16, material_bytes: 16, max_parts: 1 };
        // An endless part header: the bound on the whole body stops it.
        let mut raw = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"acceptance\"\r\n").into_bytes();
        raw.extend(std::iter::repeat_n(b'x', 64 * 1024));
        let err = read_multipart(&content_type(), body(&raw, 4096), &limits, &store).await.unwrap_err();
        assert!(matches!(err, MaterialError::BodyTooLarge { .. }), "got {err:?}");
        assert_staging_empty(&store);
    }

    #[test]
    fn read_multipart_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let (_dir, store) = store();
        let future = read_multipart("multipart/form-data; boundary=x", body(b"", 1), &LIMITS, &store);
        assert_send(&future);
    }
}
