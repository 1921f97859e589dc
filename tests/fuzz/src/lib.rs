//! The code paths the fuzz targets drive, one function per target.
//!
//! Shared by the libFuzzer targets (`fuzz_targets/*.rs`, nightly, through this crate) and by the
//! stable regression test `tests/fuzz_regressions.rs` (which includes this file with `#[path]`),
//! so a crash input kept under `tests/fixtures/fuzz-regressions/` replays exactly the path that
//! found it. The property is: no panic, whatever the bytes; the few extra assertions below are
//! invariants whose failure is a bug as well.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tongban::adapter::{Adapter, Operation};
use tongban::config::Federation;
use tongban::mapping::{MessageKind, WireFormat};
use tongban::proxy::decode;
use tongban::regions::RegionTable;
use tongban::wire::charset::Charset;
use tongban::wire::xml::{self, Namespaces};
use tongban::wire::{self, NativeDoc};

/// The mapping whose namespaces `xml_decode` parses with (the only namespaced demo style).
pub const NAMESPACED_MAPPING: &str = "ns-xml/submit.toml";

/// Ceiling on any document the gateway writes from `input` bytes: far above any real expansion
/// (escaping, GBK references, added defaults), far below a blow-up.
pub fn output_ceiling(input: usize) -> usize {
    64 * input + 64 * 1024
}

/// The repository's `config/tongban.toml`: the first ancestor of this crate's manifest directory
/// that has one (the fuzz crate sits two levels below the repository; the regression test at it).
fn config_path() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("config/tongban.toml"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("no config/tongban.toml above {}", manifest.display()))
}

/// The demo federation as shipped, loaded once per process.
pub fn federation() -> &'static Federation {
    static LOADED: OnceLock<Federation> = OnceLock::new();
    LOADED.get_or_init(|| match tongban::config::load(&config_path()) {
        Ok((federation, _warnings)) => federation,
        Err(diagnostics) => panic!("the shipped config must load, but:\n{diagnostics}"),
    })
}

/// Adapters in name order, so a selector byte means the same adapter in every run.
fn adapters() -> &'static [Arc<Adapter>] {
    static ADAPTERS: OnceLock<Vec<Arc<Adapter>>> = OnceLock::new();
    ADAPTERS.get_or_init(|| federation().adapters.values().cloned().collect())
}

/// `json_decode`: native JSON decoding (UTF-8), then the canonical API's decoding and validation.
pub fn json_decode(data: &[u8]) {
    let none = Namespaces::default();
    if let Ok(doc) = wire::decode(data, WireFormat::Json, Charset::Utf8, &none) {
        // Whatever was read can be written back in UTF-8.
        let bytes = wire::encode(&doc, Charset::Utf8, &none);
        assert!(bytes.is_ok(), "a decoded JSON document does not encode back: {bytes:?}");
    }
    if let Ok(mut doc) = decode::json(data, 32) {
        let _ = decode::validated(&mut doc, RegionTable::embedded());
    }
}

/// `xml_decode`: XML decoding in UTF-8, without namespaces and with a real mapping's; what parses
/// is written back and read again.
pub fn xml_decode(data: &[u8]) {
    let none = Namespaces::default();
    let namespaced = match federation().mappings.get(NAMESPACED_MAPPING) {
        Some(mapping) => &mapping.namespaces,
        None => panic!("the demo config has no mapping {NAMESPACED_MAPPING}"),
    };
    for namespaces in [&none, namespaced] {
        if let Ok(NativeDoc::Xml(root)) = wire::decode(data, WireFormat::Xml, Charset::Utf8, namespaces) {
            let written = xml::write(&root, Charset::Utf8, namespaces);
            assert!(
                written.len() <= output_ceiling(data.len()),
                "{} bytes of XML were written back as {} bytes",
                data.len(),
                written.len()
            );
            let _ = xml::parse(&written, Charset::Utf8, namespaces);
        }
    }
    let _ = xml::parse(data, Charset::Gb18030, namespaced);
}

/// `gbk_decode`: strict GBK and GB18030 decoding, the strict encoding back, and XML in GBK.
pub fn gbk_decode(data: &[u8]) {
    for charset in [Charset::Gbk, Charset::Gb18030] {
        if let Ok(text) = charset.decode(data) {
            // Strict encoding succeeds or names a character; when it succeeds, every peer must
            // read back the text that was decoded.
            if let Ok(bytes) = charset.encode_strict(&text) {
                let back = charset.decode(&bytes);
                assert!(
                    back.as_deref() == Ok(&*text),
                    "{charset:?}: {text:?} encoded strictly as {bytes:?} decodes as {back:?}"
                );
            }
            // The XML encoding never fails and stays decodable.
            let escaped = charset.encode_xml(&text);
            let back = charset.decode(&escaped);
            assert!(back.is_ok(), "{charset:?}: encode_xml of {text:?} gave undecodable {escaped:?}: {back:?}");
        }
    }
    if let Ok(root) = xml::parse(data, Charset::Gbk, &Namespaces::default()) {
        let written = xml::write(&root, Charset::Gbk, &Namespaces::default());
        let _ = xml::parse(&written, Charset::Gbk, &Namespaces::default());
    }
}

/// `mapping`: a native document from one demo adapter through decoding and its mapping, then
/// (the translate path) into another adapter's native format.
///
/// Input: byte 0 picks the adapter (in name order), byte 1 the operation (low 7 bits, among
/// those the adapter has, in `Operation::ALL` order) and the message (high bit clear: request,
/// set: response), byte 2 the target adapter; the rest is the native document.
pub fn mapping(data: &[u8]) {
    let [from, pick, to, native @ ..] = data else { return };
    let federation = federation();
    let adapters = adapters();
    let Some(source) = adapters.get(usize::from(*from) % adapters.len()) else { return };
    let operations: Vec<Operation> =
        Operation::ALL.into_iter().filter(|op| source.operations.contains_key(op)).collect();
    if operations.is_empty() {
        return;
    }
    let operation = operations[usize::from(pick & 0x7f) % operations.len()];
    let kind = if pick & 0x80 == 0 { MessageKind::Request } else { MessageKind::Response };
    let Some(spec) = source.operations.get(&operation) else { return };
    let mapping = &spec.mapping;
    if mapping.message(kind).is_none() {
        return;
    }
    let Ok(doc) = wire::decode(native, source.format, source.charset, &mapping.namespaces) else { return };
    if kind == MessageKind::Response
        && let Some(envelope) = &source.envelope
    {
        let _ = envelope.check(&doc);
    }
    let Ok(mut canonical) = mapping.to_canonical(kind, &doc) else { return };
    if kind == MessageKind::Request && operation == Operation::Submit {
        let _ = decode::validated(&mut canonical, federation.regions);
    }
    let Some(target) = adapters.get(usize::from(*to) % adapters.len()) else { return };
    let Some(target_spec) = target.operations.get(&operation) else { return };
    if target_spec.mapping.message(kind).is_none() {
        return;
    }
    let Ok(out) = target_spec.mapping.to_native(kind, &canonical) else { return };
    if let Ok(bytes) = wire::encode(&out, target.charset, &target_spec.mapping.namespaces) {
        assert!(
            bytes.len() <= output_ceiling(native.len()),
            "{} native bytes for {} became {} bytes for {}",
            native.len(),
            source.name,
            bytes.len(),
            target.name
        );
    }
}
