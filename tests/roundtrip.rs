//! Property: for every demo mapping, canonical → native (bytes, in the platform's own encoding)
//! → canonical is lossless on the fields the mapping maps.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod common;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tongban::mapping::MessageKind;
use tongban::mapping::path::JsonPath;
use tongban::mapping::plan::{Paths, Rule, Subject, Test};
use tongban::mapping::tree::Tree;
use tongban::mapping::{MapError, Message};
use tongban::wire;

const HANZI: &str = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许邓冯韩曹曾彭萧蔡潘田董袁于余叶蒋杜苏魏程吕丁沈任姚卢傅钟姜崔谭廖范汪陆金石戴贾韦夏邱方侯邹熊孟秦白江阎薛尹段雷黎史龙陶贺顾毛郝龚邵万钱严覃武戴莫孔向汤省市区县路号楼街道镇村科技有限公司";

fn hanzi(min: usize, max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = HANZI.chars().collect();
    proptest::collection::vec(proptest::sample::select(chars), min..=max).prop_map(|c| c.into_iter().collect())
}

fn resident_id() -> impl Strategy<Value = String> {
    (110000u32..660000, 1950i32..2010, 1u32..13, 1u32..29, 0u32..1000)
        .prop_map(|(region, y, m, d, seq)| common::resident_id(&format!("{region:06}{y:04}{m:02}{d:02}{seq:03}")))
}

fn material() -> impl Strategy<Value = Value> {
    (
        hanzi(2, 8),
        prop_oneof![Just("application/pdf"), Just("image/jpeg")],
        "[0-9a-f]{64}",
        1u64..10_000_000,
        any::<bool>(),
        "[A-Za-z0-9+/]{4,40}",
    )
        .prop_map(|(name, media, sha, size, inline, content)| {
            let mut m = json!({"name": name, "media_type": media, "sha256": sha, "size": size});
            if inline {
                m["content_base64"] = Value::String(content);
            } else {
                m["reference"] = Value::String(format!("https://files.zwfw.gov.cn/m/{sha}.pdf"));
            }
            m
        })
}

fn application() -> impl Strategy<Value = Value> {
    let regions = [
        "520102", "440106", "510104", "530102", "450103", "340102", "430902", "430102", "500103", "620102", "620200",
        "620902",
    ];
    (
        (
            any::<bool>(),
            hanzi(2, 12),
            resident_id(),
            prop_oneof![Just("male"), Just("female"), Just("unknown"), Just("unspecified")],
        ),
        (proptest::sample::select(regions.to_vec()), proptest::sample::select(regions.to_vec())),
        prop_oneof![Just("online"), Just("proxy_acceptance"), Just("multi_site")],
        ("1[3-9][0-9]{9}", hanzi(4, 20), (1950i32..2010, 1u32..13, 1u32..29)),
        proptest::collection::vec(material(), 0..3),
        proptest::collection::btree_map("[a-z][a-z_]{0,7}", hanzi(1, 10), 0..3),
        (0i64..1_900_000_000, "[0-9A-Za-z-]{8,36}"),
    )
        .prop_map(
            |(
                (legal, name, id, gender),
                (handling, accepting),
                mode,
                (phone, address, (y, m, d)),
                materials,
                form,
                (time, app_id),
            )| {
                let submitted = chrono::DateTime::from_timestamp(time, 0)
                    .unwrap()
                    .with_timezone(&tongban::mapping::datetime::beijing());
                let mut applicant = json!({"name": name, "phone": phone, "address": address});
                if legal {
                    applicant["kind"] = "legal_person".into();
                    applicant["id_type"] = "uscc".into();
                    applicant["id_number"] = "91350100M000100Y43".into();
                    applicant["uscc"] = "91350100M000100Y43".into();
                    applicant["legal_representative"] = json!({"name": "李四"});
                } else {
                    applicant["kind"] = "natural_person".into();
                    applicant["id_type"] = "resident_id".into();
                    applicant["id_number"] = id.into();
                    applicant["gender"] = gender.into();
                    applicant["birth_date"] = format!("{y:04}-{m:02}-{d:02}").into();
                }
                json!({
                    "application_id": app_id,
                    "matter": {"code": "000104001000", "name": "户口迁移"},
                    "handling_region": handling, "accepting_region": accepting, "mode": mode,
                    "applicant": applicant, "materials": materials,
                    "form": form.into_iter().map(|(k, v)| (k, Value::String(v))).collect::<Map<String, Value>>(),
                    "submitted_at": submitted.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
                })
            },
        )
}

/// What a mapping should bring back: the input restricted to the canonical paths its rules map.
fn project<P>(rules: &[Rule<P>], input: &Value, out: &mut Value) {
    for rule in rules {
        if let Some(condition) = &rule.when
            && let Subject::Canonical(path) = &condition.subject
        {
            let value = input.get_value(path).map(|v| tongban::mapping::table::native_key(&v));
            let holds = match &condition.test {
                Test::Equals(v) => value.as_deref() == Some(v.as_str()),
                Test::NotEquals(v) => value.as_deref() != Some(v.as_str()),
                Test::Exists(present) => value.is_some() == *present,
            };
            if !holds {
                continue;
            }
        }
        let paths: Vec<&JsonPath> = match &rule.canonical {
            Paths::None => continue,
            Paths::One(path) => vec![path],
            Paths::Many(paths) => paths.iter().collect(),
        };
        if let (Some(each), [path]) = (&rule.each, paths.as_slice()) {
            for item in input.items(path) {
                let mut projected = Value::Object(Map::new());
                project(each, item, &mut projected);
                out.push_item(path, projected).unwrap();
            }
        } else if rule.subtree {
            if let Some(values) = input.get_subtree(paths[0]) {
                out.set_subtree(paths[0], values).unwrap();
            }
        } else if let Some(constant) = &rule.constant {
            out.set_value(paths[0], constant.clone()).unwrap();
        } else {
            for path in paths {
                if let Some(value) = input.get_value(path).or_else(|| rule.default.clone()) {
                    out.set_value(path, value).unwrap();
                }
            }
        }
    }
}

fn strip_empty(value: &mut Value) {
    if let Value::Object(map) = value {
        map.values_mut().for_each(strip_empty);
        map.retain(|_, v| {
            !matches!(v, Value::Object(m) if m.is_empty()) && !matches!(v, Value::Array(a) if a.is_empty())
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn canonical_to_native_and_back_is_lossless(app in application()) {
        let federation = common::shared_federation();
        for adapter in federation.adapters.values() {
            // Applications travel through submit; status and matters requests carry a region or an id.
            if let Some(spec) = adapter.operations.get(&tongban::adapter::Operation::Submit) {
                let mapping = &spec.mapping;
                let Some(message) = mapping.message(MessageKind::Request) else { continue };
                let native = match mapping.to_native(MessageKind::Request, &app) {
                    Ok(native) => native,
                    // Codes a platform has no word for (e.g. 'unspecified' gender) are refused, not lost.
                    Err(MapError::UnknownCode { .. }) => continue,
                    Err(error) => panic!("{}: {error}", mapping.name),
                };
                let bytes = wire::encode(&native, adapter.charset, &mapping.namespaces).unwrap();
                let decoded = wire::decode(&bytes, adapter.format, adapter.charset, &mapping.namespaces).unwrap();
                let mut back = mapping.to_canonical(MessageKind::Request, &decoded)
                    .unwrap_or_else(|e| panic!("{} ({}): {e}", mapping.name, adapter.name));
                let mut expected = Value::Object(Map::new());
                match message {
                    Message::Json(rules) => project(rules, &app, &mut expected),
                    Message::Xml { rules, .. } => project(rules, &app, &mut expected),
                }
                strip_empty(&mut back);
                strip_empty(&mut expected);
                prop_assert_eq!(&back, &expected, "{} via {}", mapping.name, adapter.name);
            }
        }
    }
}
