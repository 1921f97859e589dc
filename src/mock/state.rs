//! Case store (办件库) of one running mock: case numbers, external ids, states.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, Offset, Utc};

use super::validate::{Accepted, Applicant};

/// The lifecycle states every platform knows, each under its own codes (办件状态).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaseState {
    /// 已接收.
    Received,
    /// 已受理.
    Accepted,
    /// 办理中.
    InProgress,
    /// 需补正.
    SupplementRequired,
    /// 办结（准予）.
    Approved,
    /// 不予受理/不予许可.
    Rejected,
    /// 撤回.
    Withdrawn,
}

/// One case (办件) as the platform remembers it.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub case_number: String,
    pub external_id: String,
    pub state: CaseState,
    pub opinion: Option<String>,
    pub created: DateTime<FixedOffset>,
    pub updated: DateTime<FixedOffset>,
    /// 事项编码.
    pub matter_code: String,
    /// 办理区划.
    pub handling_region: String,
    /// 申请人, as submitted.
    pub applicant: Applicant,
    /// 证照编号 of the certificate issued on approval (办结出证), once there is one.
    pub certificate_id: Option<String>,
}

/// All cases of one platform instance; sequence numbers start at 1.
#[derive(Debug, Default)]
pub(crate) struct CaseStore {
    next_seq: u32,
    cases: Vec<Case>,
    by_external: HashMap<String, usize>,
    by_number: HashMap<String, usize>,
}

/// The current time in Beijing (UTC+8), which every answer uses.
pub(crate) fn now_beijing() -> DateTime<FixedOffset> {
    let offset = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix());
    Utc::now().with_timezone(&offset)
}

impl CaseStore {
    /// Registers a submission; answers the existing case (and `false`) when the external id is
    /// already known, so a repeated submit is idempotent.
    pub(crate) fn submit(&mut self, prefix: &str, accepted: &Accepted) -> (Case, bool) {
        let external_id = accepted.external_id.as_str();
        if let Some(case) = self.by_external(external_id) {
            return (case.clone(), false);
        }
        self.next_seq += 1;
        // Deterministic numbers: fixed year, per-instance sequence, no clock.
        let case_number = format!("{prefix}2026{:06}", self.next_seq);
        let now = now_beijing();
        let case = Case {
            case_number: case_number.clone(),
            external_id: external_id.to_owned(),
            state: CaseState::Received,
            opinion: None,
            created: now,
            updated: now,
            matter_code: accepted.matter_code.clone(),
            handling_region: accepted.handling_region.clone(),
            applicant: accepted.applicant.clone(),
            certificate_id: None,
        };
        let index = self.cases.len();
        self.cases.push(case.clone());
        self.by_external.insert(external_id.to_owned(), index);
        self.by_number.insert(case_number, index);
        (case, true)
    }

    /// Looks a case up by the caller's external id (外部编号).
    pub(crate) fn by_external(&self, external_id: &str) -> Option<&Case> {
        self.by_external.get(external_id).and_then(|&i| self.cases.get(i))
    }

    /// Looks a case up by the platform's own case number (办件编号).
    pub(crate) fn by_number(&self, case_number: &str) -> Option<&Case> {
        self.by_number.get(case_number).and_then(|&i| self.cases.get(i))
    }

    /// Moves a case to a state (and sets its opinion); `None` when the case is unknown.
    pub(crate) fn set_state(&mut self, case_number: &str, state: CaseState, opinion: Option<String>) -> Option<Case> {
        let index = *self.by_number.get(case_number)?;
        let case = self.cases.get_mut(index)?;
        case.state = state;
        case.opinion = opinion;
        case.updated = now_beijing();
        Some(case.clone())
    }

    /// Records the certificate issued for a case (办结出证); `false` when the case is unknown.
    pub(crate) fn set_certificate(&mut self, case_number: &str, certificate_id: &str) -> bool {
        let Some(case) = self.by_number.get(case_number).and_then(|&i| self.cases.get_mut(i)) else {
            return false;
        };
        case.certificate_id = Some(certificate_id.to_owned());
        true
    }

    /// Every case, oldest first.
    pub(crate) fn all(&self) -> &[Case] {
        &self.cases
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::validate::IdType;

    fn accepted(external_id: &str) -> Accepted {
        Accepted {
            external_id: external_id.to_owned(),
            matter_code: "000104001000".to_owned(),
            handling_region: "520102".to_owned(),
            applicant: Applicant {
                name: "张三".to_owned(),
                id_type: IdType::ResidentId,
                id_number: "520102199003075413".to_owned(),
                address: None,
                credit_code: None,
            },
        }
    }

    #[test]
    fn numbers_are_sequential_and_submits_idempotent() {
        let mut store = CaseStore::default();
        let (a, created) = store.submit("GZ", &accepted("ext-1"));
        assert!(created);
        assert_eq!(a.case_number, "GZ2026000001");
        assert_eq!(a.applicant.name, "张三");
        assert_eq!(a.certificate_id, None);
        let (b, created) = store.submit("GZ", &accepted("ext-2"));
        assert!(created);
        assert_eq!(b.case_number, "GZ2026000002");
        let (again, created) = store.submit("GZ", &accepted("ext-1"));
        assert!(!created);
        assert_eq!(again.case_number, "GZ2026000001");
        let moved = store.set_state("GZ2026000002", CaseState::Approved, Some("准予".into()));
        assert_eq!(moved.map(|c| c.state), Some(CaseState::Approved));
        assert!(store.set_state("GZ2026000009", CaseState::Approved, None).is_none());
        assert!(store.set_certificate("GZ2026000002", "GZ2026000002-ZZ"));
        assert!(!store.set_certificate("GZ2026000009", "x"));
        assert_eq!(store.by_number("GZ2026000002").and_then(|c| c.certificate_id.as_deref()), Some("GZ2026000002-ZZ"));
        assert_eq!(store.by_number("GZ2026000001").map(|c| c.external_id.as_str()), Some("ext-1"));
        assert_eq!(store.all().len(), 2);
        assert_eq!(now_beijing().offset().local_minus_utc(), 8 * 3600);
    }
}
