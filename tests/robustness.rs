//! No input may make the gateway panic: arbitrary bytes through every adapter's native decoding
//! and mapping (native ingress), and arbitrary or damaged JSON through canonical decoding and
//! validation (the canonical API).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use proptest::prelude::*;
use serde_json::{Map, Value};
use tongban::adapter::Operation;
use tongban::mapping::MessageKind;
use tongban::proxy::decode;
use tongban::wire;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,24}".prop_map(Value::String),
        "[0-9X]{15,18}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,16}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// Replaces one leaf of a document (chosen by `pick`) with `value`.
fn damage(doc: &mut Value, pick: usize, value: Value) {
    fn nth_leaf(doc: &mut Value, n: &mut usize, value: &Value) -> bool {
        match doc {
            Value::Object(map) => map.values_mut().any(|v| nth_leaf(v, n, value)),
            Value::Array(items) => items.iter_mut().any(|v| nth_leaf(v, n, value)),
            leaf => {
                if *n == 0 {
                    *leaf = value.clone();
                    true
                } else {
                    *n -= 1;
                    false
                }
            }
        }
    }
    let mut count = 0usize;
    count_leaves(doc, &mut count);
    let mut n = pick % count.max(1);
    nth_leaf(doc, &mut n, &value);
}

fn count_leaves(doc: &Value, count: &mut usize) {
    match doc {
        Value::Object(map) => map.values().for_each(|v| count_leaves(v, count)),
        Value::Array(items) => items.iter().for_each(|v| count_leaves(v, count)),
        _ => *count += 1,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_through_native_ingress_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let federation = common::shared_federation();
        for adapter in federation.adapters.values() {
            for operation in Operation::ALL {
                let Some(spec) = adapter.operations.get(&operation) else { continue };
                let mapping = &spec.mapping;
                if let Ok(native) = wire::decode(&bytes, adapter.format, adapter.charset, &mapping.namespaces) {
                    for kind in [MessageKind::Request, MessageKind::Response] {
                        if mapping.message(kind).is_some()
                            && let Ok(mut canonical) = mapping.to_canonical(kind, &native) {
                                let _ = decode::validated(&mut canonical, federation.regions);
                            }
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_json_through_the_canonical_api_never_panics(doc in json_value()) {
        let federation = common::shared_federation();
        let mut doc = doc;
        let _ = decode::validated(&mut doc, federation.regions);
        let _ = decode::json(doc.to_string().as_bytes(), 32);
    }

    #[test]
    fn damaged_applications_never_panic(pick in any::<usize>(), value in json_value(), legal in any::<bool>()) {
        let federation = common::shared_federation();
        let mut doc = common::canonical(if legal { "legal_person" } else { "natural_person" });
        damage(&mut doc, pick, value);
        if let Ok((_, _)) = decode::validated(&mut doc, federation.regions) {
            // A valid application must translate for every platform or be refused cleanly.
            for adapter in federation.adapters.values() {
                if let Some(spec) = adapter.operations.get(&Operation::Submit)
                    && let Ok(native) = spec.mapping.to_native(MessageKind::Request, &doc) {
                        let _ = wire::encode(&native, adapter.charset, &spec.mapping.namespaces);
                    }
            }
        }
    }
}
