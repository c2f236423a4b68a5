//! Campaign metrics: per campaign and per programme instance, the activities linked to them, session hours,
//! distinct people, pending reviews, and capacity utilisation with the `near_capacity` / `over_capacity` flags.
//!
//! The store counts with aggregate queries ([`crate::ports::AssociationRepository::campaign_counts`]); this module
//! joins the counts with the catalogue and computes utilisation, in exact integer arithmetic.

use serde::Serialize;
use std::collections::HashMap;

use crate::domain::{
    CampaignId, CampaignStatus, CompanyId, InstanceId, InstanceStatus, Key, ProgramSlug,
};
use crate::ports::{ActivityCounts, StoreError};
use crate::store::Store;

/// Utilisation at or above this share (in percent) is `near_capacity`.
pub const NEAR_CAPACITY_PERCENT: u64 = 80;

/// What capacity is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityBasis {
    /// Linked sessions against `max_sessions`.
    MaxSessions,
    /// Distinct participants against `target_beneficiaries`.
    TargetBeneficiaries,
}

/// Capacity utilisation of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capacity {
    /// What was measured against what.
    pub basis: CapacityBasis,
    /// Sessions or participants counted.
    pub used: u64,
    /// `max_sessions` or `target_beneficiaries`.
    pub limit: u64,
    /// `used / limit` in hundredths of a percent, rounded half up (10000 = 100 %).
    pub utilisation_basis_points: u64,
    /// At or above 80 %.
    pub near_capacity: bool,
    /// Above 100 %.
    pub over_capacity: bool,
}

impl Capacity {
    /// Utilisation of a campaign with these limits and counts: against `max_sessions` when set and positive, else
    /// against `target_beneficiaries` when positive, else none.
    pub fn of(
        max_sessions: Option<i32>,
        target_beneficiaries: i32,
        counts: &ActivityCounts,
    ) -> Option<Self> {
        let (basis, used, limit) = match max_sessions {
            Some(max) if max > 0 => (CapacityBasis::MaxSessions, counts.sessions, max as u64),
            _ if target_beneficiaries > 0 => (
                CapacityBasis::TargetBeneficiaries,
                counts.participants,
                target_beneficiaries as u64,
            ),
            _ => return None,
        };
        let basis_points =
            (u128::from(used) * 10_000 * 2 + u128::from(limit)) / (2 * u128::from(limit));
        Some(Capacity {
            basis,
            used,
            limit,
            utilisation_basis_points: u64::try_from(basis_points).unwrap_or(u64::MAX),
            near_capacity: u128::from(used) * 100
                >= u128::from(limit) * u128::from(NEAR_CAPACITY_PERCENT),
            over_capacity: used > limit,
        })
    }

    /// Utilisation as a fraction (1.0 = full), for display.
    pub fn fraction(&self) -> f64 {
        self.utilisation_basis_points as f64 / 10_000.0
    }
}

/// Metrics of one programme instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceMetrics {
    /// The instance.
    pub id: InstanceId,
    /// Its slug.
    pub slug: ProgramSlug,
    /// Its status.
    pub status: InstanceStatus,
    /// What is linked to it.
    #[serde(flatten)]
    pub counts: ActivityCounts,
}

/// Metrics of one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignMetrics {
    /// The campaign.
    pub id: CampaignId,
    /// Its key.
    pub key: Key,
    /// Its name.
    pub name: String,
    /// Its company's slug.
    pub company: Key,
    /// Its status.
    pub status: CampaignStatus,
    /// What is linked to its instances.
    #[serde(flatten)]
    pub counts: ActivityCounts,
    /// Reviews waiting that propose this campaign.
    pub pending_reviews: u64,
    /// Capacity utilisation, when the campaign has a limit.
    pub capacity: Option<Capacity>,
    /// Its instances, by slug.
    pub instances: Vec<InstanceMetrics>,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No company has this slug.
    #[error("no company {0}")]
    UnknownCompany(String),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
}

/// Reports over a store.
#[derive(Debug, Clone)]
pub struct Reports {
    store: Store,
}

impl Reports {
    /// Reports of `store`.
    pub fn new(store: Store) -> Self {
        Reports { store }
    }

    /// Metrics of every campaign (of `company` when given), by company slug then campaign key.
    ///
    /// # Errors
    /// [`ReportError::UnknownCompany`], [`ReportError::Store`].
    pub async fn campaigns(
        &self,
        company: Option<&Key>,
    ) -> Result<Vec<CampaignMetrics>, ReportError> {
        let catalog = self.store.load_catalog().await?;
        let company_id: Option<CompanyId> = match company {
            Some(slug) => Some(
                catalog
                    .company_id(slug)
                    .ok_or_else(|| ReportError::UnknownCompany(slug.to_string()))?,
            ),
            None => None,
        };
        let counts = self.store.campaign_counts(company_id).await?;
        let by_campaign: HashMap<CampaignId, (ActivityCounts, u64)> = counts
            .campaigns
            .into_iter()
            .map(|(id, c, reviews)| (id, (c, reviews)))
            .collect();
        let by_instance: HashMap<InstanceId, ActivityCounts> =
            counts.instances.into_iter().collect();
        let slugs: HashMap<CompanyId, &Key> =
            catalog.companies.iter().map(|c| (c.id, &c.slug)).collect();
        let mut out = Vec::new();
        for campaign in &catalog.campaigns {
            if company_id.is_some_and(|id| id != campaign.company_id) {
                continue;
            }
            let Some(company) = slugs.get(&campaign.company_id) else {
                return Err(ReportError::Store(StoreError::Corrupt {
                    what: format!("campaign {} names an unknown company", campaign.key),
                }));
            };
            let (counts, pending_reviews) =
                by_campaign.get(&campaign.id).copied().unwrap_or_default();
            let mut instances: Vec<InstanceMetrics> = catalog
                .instances
                .iter()
                .filter(|i| i.campaign_id == Some(campaign.id))
                .map(|i| InstanceMetrics {
                    id: i.id,
                    slug: i.slug.clone(),
                    status: i.status,
                    counts: by_instance.get(&i.id).copied().unwrap_or_default(),
                })
                .collect();
            instances.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
            out.push(CampaignMetrics {
                id: campaign.id,
                key: campaign.key.clone(),
                name: campaign.name.to_string(),
                company: (*company).clone(),
                status: campaign.status,
                capacity: Capacity::of(
                    campaign.max_sessions,
                    campaign.target_beneficiaries,
                    &counts,
                ),
                counts,
                pending_reviews,
                instances,
            });
        }
        out.sort_by(|a, b| {
            (a.company.as_str(), a.key.as_str()).cmp(&(b.company.as_str(), b.key.as_str()))
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(sessions: u64, participants: u64) -> ActivityCounts {
        ActivityCounts {
            sessions,
            participants,
            ..ActivityCounts::default()
        }
    }

    #[test]
    fn capacity_uses_max_sessions_then_target_beneficiaries_then_none() {
        let c = Capacity::of(Some(10), 50, &counts(8, 3)).expect("capacity");
        assert_eq!(
            (c.basis, c.used, c.limit),
            (CapacityBasis::MaxSessions, 8, 10)
        );
        assert_eq!(c.utilisation_basis_points, 8000);
        assert!(c.near_capacity && !c.over_capacity);

        let c = Capacity::of(None, 4, &counts(100, 5)).expect("capacity");
        assert_eq!(
            (c.basis, c.used, c.limit),
            (CapacityBasis::TargetBeneficiaries, 5, 4)
        );
        assert_eq!(c.utilisation_basis_points, 12500);
        assert!(c.near_capacity && c.over_capacity);

        let c = Capacity::of(Some(0), 3, &counts(1, 1)).expect("a zero max falls back");
        assert_eq!(c.basis, CapacityBasis::TargetBeneficiaries);
        assert_eq!(c.utilisation_basis_points, 3333);
        assert!(!c.near_capacity);

        assert_eq!(Capacity::of(None, 0, &counts(5, 5)), None);
        assert_eq!(Capacity::of(Some(0), 0, &counts(5, 5)), None);
    }

    #[test]
    fn exactly_full_is_near_but_not_over_capacity() {
        let c = Capacity::of(Some(10), 0, &counts(10, 0)).expect("capacity");
        assert!(c.near_capacity && !c.over_capacity);
        let c = Capacity::of(Some(1000), 0, &counts(799, 0)).expect("capacity");
        assert!(!c.near_capacity);
        assert_eq!(c.utilisation_basis_points, 7990);
    }
}
