//! Simulated provincial government-service platforms (模拟省级政务服务平台).
//!
//! Twelve demo platforms speak six API styles. Each style is described in
//! `docs/platforms/<style>.md` (index: `docs/platforms/README.md`), and each mock is written from
//! that description only: it validates every request strictly in its own terms and answers in
//! its own format, so a wrong mapping in the gateway fails a test instead of slipping through.
//!
//! Every mock also serves test-only control endpoints under `/_mock/` (received requests, fault
//! injection, case state changes, certificate status); see `server.rs`.
//!
//! The mocks stand alone: they depend on no other module of this crate.

mod certificate;
mod envelope_json;
mod gbk_xml;
mod json;
mod ns_xml;
mod pinyin_json;
mod server;
mod snake_json;
mod state;
#[cfg(test)]
mod testutil;
mod upper_xml;
mod validate;
mod xml;

pub use server::MockServer;

/// API style of a platform (接口风格); each has its own document in `docs/platforms/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// 拼音首字母 JSON (贵州/云南 网上办事大厅 v2), `docs/platforms/pinyin-json.md`.
    PinyinJson,
    /// 信封式 JSON (广东/四川/广西 数字政府开放平台), `docs/platforms/envelope-json.md`.
    EnvelopeJson,
    /// 大写元素 XML (安徽/益阳 申报接口), `docs/platforms/upper-xml.md`.
    UpperXml,
    /// GBK 编码 XML (湖南/重庆 legacy), `docs/platforms/gbk-xml.md`.
    GbkXml,
    /// 嵌套 snake_case JSON (甘肃/嘉峪关 gateway v3), `docs/platforms/snake-json.md`.
    SnakeJson,
    /// 命名空间 XML (酒泉), `docs/platforms/ns-xml.md`.
    NsXml,
}

impl Style {
    /// The style's short name, as used for its document (`pinyin-json`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Style::PinyinJson => "pinyin-json",
            Style::EnvelopeJson => "envelope-json",
            Style::UpperXml => "upper-xml",
            Style::GbkXml => "gbk-xml",
            Style::SnakeJson => "snake-json",
            Style::NsXml => "ns-xml",
        }
    }
}

/// One simulated platform (模拟平台).
#[derive(Debug, PartialEq, Eq)]
pub struct MockPlatform {
    /// Adapter name, the lowercase pinyin of the place (`guizhou`).
    pub name: &'static str,
    /// Chinese title (平台名称), e.g. `贵州政务服务网`.
    pub title: &'static str,
    /// Region prefix (区划前缀) of the platform's jurisdiction: `52`, or `4309` for a city.
    pub region: &'static str,
    /// API style (接口风格).
    pub style: Style,
    /// Case number prefix (办件编号前缀), e.g. `GZ` → `GZ2026000001`.
    pub case_prefix: &'static str,
    /// Default listen address, e.g. `127.0.0.1:19052`.
    pub default_listen: &'static str,
}

impl MockPlatform {
    /// The platform's matter catalogue (事项目录).
    pub fn catalogue(&self) -> &'static [Matter] {
        catalogue_of(self.name)
    }

    /// Whether a 6-digit region code lies within this platform's jurisdiction (管辖范围).
    pub fn serves_region(&self, code: &str) -> bool {
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) && code.starts_with(self.region)
    }
}

/// One matter (事项) of a catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matter {
    /// Matter code (事项编码).
    pub code: &'static str,
    /// Matter name (事项名称).
    pub name: &'static str,
    /// Implementing department (实施部门).
    pub department: &'static str,
}

const DEMO: &[MockPlatform] = &[
    platform("guizhou", "贵州政务服务网", "52", Style::PinyinJson, "GZ", "127.0.0.1:19052"),
    platform("yunnan", "云南政务服务网", "53", Style::PinyinJson, "YN", "127.0.0.1:19053"),
    platform("sichuan", "四川政务服务网", "51", Style::EnvelopeJson, "SC", "127.0.0.1:19051"),
    platform("guangdong", "广东政务服务网", "44", Style::EnvelopeJson, "GD", "127.0.0.1:19044"),
    platform("guangxi", "广西数字政务一体化平台", "45", Style::EnvelopeJson, "GX", "127.0.0.1:19045"),
    platform("anhui", "安徽政务服务网", "34", Style::UpperXml, "AH", "127.0.0.1:19034"),
    platform("yiyang", "益阳市政务服务网", "4309", Style::UpperXml, "YY", "127.0.0.1:14309"),
    platform("hunan", "湖南政务服务网", "43", Style::GbkXml, "HN", "127.0.0.1:19043"),
    platform("chongqing", "重庆市网上办事大厅", "50", Style::GbkXml, "CQ", "127.0.0.1:19050"),
    platform("gansu", "甘肃政务服务网", "62", Style::SnakeJson, "GS", "127.0.0.1:19062"),
    platform("jiayuguan", "嘉峪关市政务服务网", "6202", Style::SnakeJson, "JYG", "127.0.0.1:16202"),
    platform("jiuquan", "酒泉市政务服务网", "6209", Style::NsXml, "JQ", "127.0.0.1:16209"),
];

const fn platform(
    name: &'static str,
    title: &'static str,
    region: &'static str,
    style: Style,
    case_prefix: &'static str,
    default_listen: &'static str,
) -> MockPlatform {
    MockPlatform { name, title, region, style, case_prefix, default_listen }
}

/// The twelve demo platforms (演示平台).
pub fn demo_platforms() -> &'static [MockPlatform] {
    DEMO
}

/// Finds a demo platform by its adapter name (`guizhou`).
pub fn find(name: &str) -> Option<&'static MockPlatform> {
    DEMO.iter().find(|p| p.name == name)
}

const HUKOU: &str = "000104001000";
const HUKOU_NAME: &str = "户口迁移";
const LICENCE: &str = "000201002000";
const LICENCE_NAME: &str = "营业执照设立登记";
const SSCARD: &str = "000301003000";
const SSCARD_NAME: &str = "社会保障卡申领";
const MEDICAL: &str = "000401004000";
const MEDICAL_NAME: &str = "医保关系转移接续";
const ESTATE: &str = "000501005000";
const ESTATE_NAME: &str = "不动产登记资料查询";
const FUND: &str = "000601006000";
const FUND_NAME: &str = "住房公积金异地转移接续";

const fn m(code: &'static str, name: &'static str, department: &'static str) -> Matter {
    Matter { code, name, department }
}

const GUIZHOU: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "贵州省公安厅"),
    m(LICENCE, LICENCE_NAME, "贵州省市场监督管理局"),
    m(SSCARD, SSCARD_NAME, "贵州省人力资源和社会保障厅"),
    m(MEDICAL, MEDICAL_NAME, "贵州省医疗保障局"),
];
const YUNNAN: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "云南省公安厅"),
    m(LICENCE, LICENCE_NAME, "云南省市场监督管理局"),
    m(ESTATE, ESTATE_NAME, "云南省自然资源厅"),
];
const SICHUAN: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "四川省公安厅"),
    m(LICENCE, LICENCE_NAME, "四川省市场监督管理局"),
    m(SSCARD, SSCARD_NAME, "四川省人力资源和社会保障厅"),
    m(MEDICAL, MEDICAL_NAME, "四川省医疗保障局"),
    m(ESTATE, ESTATE_NAME, "四川省自然资源厅"),
];
const GUANGDONG: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "广东省公安厅"),
    m(LICENCE, LICENCE_NAME, "广东省市场监督管理局"),
    m(SSCARD, SSCARD_NAME, "广东省人力资源和社会保障厅"),
    m(MEDICAL, MEDICAL_NAME, "广东省医疗保障局"),
    m(ESTATE, ESTATE_NAME, "广东省自然资源厅"),
    m(FUND, FUND_NAME, "广东省住房和城乡建设厅"),
];
const GUANGXI: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "广西壮族自治区公安厅"),
    m(LICENCE, LICENCE_NAME, "广西壮族自治区市场监督管理局"),
    m(MEDICAL, MEDICAL_NAME, "广西壮族自治区医疗保障局"),
];
const ANHUI: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "安徽省公安厅"),
    m(LICENCE, LICENCE_NAME, "安徽省市场监督管理局"),
    m(SSCARD, SSCARD_NAME, "安徽省人力资源和社会保障厅"),
    m(ESTATE, ESTATE_NAME, "安徽省自然资源厅"),
];
const YIYANG: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "益阳市公安局"),
    m(LICENCE, LICENCE_NAME, "益阳市市场监督管理局"),
    m(MEDICAL, MEDICAL_NAME, "益阳市医疗保障局"),
];
const HUNAN: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "湖南省公安厅"),
    m(LICENCE, LICENCE_NAME, "湖南省市场监督管理局"),
    m(SSCARD, SSCARD_NAME, "湖南省人力资源和社会保障厅"),
    m(MEDICAL, MEDICAL_NAME, "湖南省医疗保障局"),
    m(FUND, FUND_NAME, "湖南省住房和城乡建设厅"),
];
const CHONGQING: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "重庆市公安局"),
    m(LICENCE, LICENCE_NAME, "重庆市市场监督管理局"),
    m(ESTATE, ESTATE_NAME, "重庆市规划和自然资源局"),
];
const GANSU: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "甘肃省公安厅"),
    m(LICENCE, LICENCE_NAME, "甘肃省市场监督管理局"),
    m(SSCARD, SSCARD_NAME, "甘肃省人力资源和社会保障厅"),
    m(MEDICAL, MEDICAL_NAME, "甘肃省医疗保障局"),
    m(ESTATE, ESTATE_NAME, "甘肃省自然资源厅"),
];
const JIAYUGUAN: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "嘉峪关市公安局"),
    m(LICENCE, LICENCE_NAME, "嘉峪关市市场监督管理局"),
    m(SSCARD, SSCARD_NAME, "嘉峪关市人力资源和社会保障局"),
];
const JIUQUAN: &[Matter] = &[
    m(HUKOU, HUKOU_NAME, "酒泉市公安局"),
    m(LICENCE, LICENCE_NAME, "酒泉市市场监督管理局"),
    m(MEDICAL, MEDICAL_NAME, "酒泉市医疗保障局"),
    m(ESTATE, ESTATE_NAME, "酒泉市自然资源局"),
];
// A platform built outside the demo list still gets the two matters every platform carries.
const FALLBACK: &[Matter] = &[m(HUKOU, HUKOU_NAME, "公安机关"), m(LICENCE, LICENCE_NAME, "市场监督管理部门")];

fn catalogue_of(name: &str) -> &'static [Matter] {
    match name {
        "guizhou" => GUIZHOU,
        "yunnan" => YUNNAN,
        "sichuan" => SICHUAN,
        "guangdong" => GUANGDONG,
        "guangxi" => GUANGXI,
        "anhui" => ANHUI,
        "yiyang" => YIYANG,
        "hunan" => HUNAN,
        "chongqing" => CHONGQING,
        "gansu" => GANSU,
        "jiayuguan" => JIAYUGUAN,
        "jiuquan" => JIUQUAN,
        _ => FALLBACK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn demo_platforms_are_distinct_and_complete() {
        let all = demo_platforms();
        assert_eq!(all.len(), 12);
        let names: HashSet<_> = all.iter().map(|p| p.name).collect();
        let ports: HashSet<_> = all.iter().map(|p| p.default_listen).collect();
        let prefixes: HashSet<_> = all.iter().map(|p| p.case_prefix).collect();
        assert_eq!((names.len(), ports.len(), prefixes.len()), (12, 12, 12));
        for p in all {
            assert!(p.default_listen.parse::<std::net::SocketAddr>().is_ok());
            let cat = p.catalogue();
            assert!((3..=6).contains(&cat.len()), "{}", p.name);
            assert!(cat.iter().any(|m| m.code == HUKOU));
            assert!(cat.iter().any(|m| m.code == LICENCE));
            assert_eq!(find(p.name), Some(p));
        }
        assert_eq!(find("beijing"), None);
    }

    #[test]
    fn jurisdiction_follows_the_region_prefix() {
        let yiyang = find("yiyang").expect("yiyang is a demo platform");
        assert!(yiyang.serves_region("430902"));
        assert!(!yiyang.serves_region("430102"));
        let hunan = find("hunan").expect("hunan is a demo platform");
        assert!(hunan.serves_region("430902"));
        assert!(!hunan.serves_region("4301"));
    }
}
