//! The review queue: associations with decision `review`, listed, shown, accepted or rejected by a person.
//!
//! Accepting links the activity to the chosen instance and enrols its people; rejecting removes the link when the
//! activity is linked to the proposed instance. Both record who decided and when, and are sticky: ingestion and
//! backfill never change a human decision. Each decision is one unit of work.

use chrono::{DateTime, Utc};

use crate::domain::{
    ActivityKind, Association, AssociationId, Decision, EnrollmentRole, InstanceId, Key,
    ProgramSlug,
};
use crate::domain::{Enrollment, ProgramInstance};
use crate::ports::{ReviewFilter, ReviewItem, StoreError, UnitOfWork};
use crate::store::Store;
use chrono::NaiveDate;
use serde::Serialize;

/// Why a review operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No association has this id.
    #[error("no review item {0}")]
    NotFound(AssociationId),
    /// The association is not waiting for review.
    #[error("association {id} is not waiting for review: its decision is {decision}")]
    NotPending {
        /// The association.
        id: AssociationId,
        /// Its decision.
        decision: Decision,
    },
    /// The proposal has no instance and none was given.
    #[error("association {0} proposes no programme instance: name one to accept it")]
    InstanceRequired(AssociationId),
    /// The instance given does not exist.
    #[error("no programme instance {0}")]
    UnknownInstance(String),
    /// The instance given belongs to another campaign than the proposal.
    #[error("programme instance {instance} does not belong to the proposed campaign")]
    OtherCampaign {
        /// The instance given.
        instance: String,
    },
    /// The activity of the association no longer exists.
    #[error("the {kind} {id} of this association no longer exists")]
    ActivityGone {
        /// Its kind.
        kind: ActivityKind,
        /// Its id.
        id: crate::domain::ActivityId,
    },
    /// No company has this slug.
    #[error("no company {0}")]
    UnknownCompany(String),
    /// No campaign has this key.
    #[error("no campaign {0}")]
    UnknownCampaign(String),
    /// `by` is empty.
    #[error("who decides must be given")]
    NoDecider,
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
}

/// A review-queue filter by catalogue keys (see [`ReviewQueue::list_by`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewQuery {
    /// Only proposals of campaigns of this company (slug).
    pub company: Option<Key>,
    /// Only proposals of this campaign (key).
    pub campaign: Option<Key>,
    /// Only activities of this kind.
    pub kind: Option<ActivityKind>,
    /// Only activities on or after this date.
    pub from: Option<NaiveDate>,
    /// Only activities on or before this date.
    pub to: Option<NaiveDate>,
    /// At most this many.
    pub limit: Option<u32>,
}

/// One review item as people read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewView {
    /// The association's id: the item's id.
    pub id: AssociationId,
    /// The activity's kind.
    pub activity_kind: ActivityKind,
    /// The activity's id.
    pub activity_id: crate::domain::ActivityId,
    /// The activity time.
    pub activity_at: Option<DateTime<Utc>>,
    /// The proposed campaign's key.
    pub campaign: Option<Key>,
    /// The proposed instance's slug.
    pub instance: Option<ProgramSlug>,
    /// 0..=100.
    pub confidence: u8,
    /// `[{code, points, detail}, …]`.
    pub reasons: serde_json::Value,
    /// The top three candidates.
    pub candidates: serde_json::Value,
}

/// The review queue over a store.
#[derive(Debug, Clone)]
pub struct ReviewQueue {
    store: Store,
}

impl ReviewQueue {
    /// The queue of `store`.
    pub fn new(store: Store) -> Self {
        ReviewQueue { store }
    }

    /// Items waiting for review that pass `filter`.
    ///
    /// # Errors
    /// [`ReviewError::Store`].
    pub async fn list(&self, filter: &ReviewFilter) -> Result<Vec<ReviewItem>, ReviewError> {
        Ok(self.store.list_reviews(filter).await?)
    }

    /// Items waiting for review, filtered by catalogue keys, with the proposal's campaign key and instance slug.
    ///
    /// # Errors
    /// [`ReviewError::UnknownCompany`], [`ReviewError::UnknownCampaign`], [`ReviewError::Store`].
    pub async fn list_by(&self, query: &ReviewQuery) -> Result<Vec<ReviewView>, ReviewError> {
        let catalog = self.store.load_catalog().await?;
        let company = match &query.company {
            Some(slug) => Some(
                catalog
                    .company_id(slug)
                    .ok_or_else(|| ReviewError::UnknownCompany(slug.to_string()))?,
            ),
            None => None,
        };
        let campaign = match &query.campaign {
            Some(key) => Some(
                catalog
                    .campaigns
                    .iter()
                    .find(|c| &c.key == key)
                    .map(|c| c.id)
                    .ok_or_else(|| ReviewError::UnknownCampaign(key.to_string()))?,
            ),
            None => None,
        };
        let filter = ReviewFilter {
            company,
            campaign,
            kind: query.kind,
            from: query.from,
            to: query.to,
            limit: query.limit,
        };
        let items = self.store.list_reviews(&filter).await?;
        Ok(items
            .into_iter()
            .map(|item| {
                let a = &item.association;
                ReviewView {
                    campaign: a.campaign_id.and_then(|id| {
                        catalog
                            .campaigns
                            .iter()
                            .find(|c| c.id == id)
                            .map(|c| c.key.clone())
                    }),
                    instance: a.program_instance_id.and_then(|id| {
                        catalog
                            .instances
                            .iter()
                            .find(|i| i.id == id)
                            .map(|i| i.slug.clone())
                    }),
                    id: a.id,
                    activity_kind: a.activity_kind,
                    activity_id: a.activity_id,
                    activity_at: item.activity.at,
                    confidence: a.confidence.get(),
                    reasons: a.reasons.clone(),
                    candidates: a.candidates.clone(),
                }
            })
            .collect())
    }

    /// One association with its reasons and candidates (whatever its decision, so that a decided item can still
    /// be shown).
    ///
    /// # Errors
    /// [`ReviewError::NotFound`], [`ReviewError::Store`].
    pub async fn show(&self, id: AssociationId) -> Result<Association, ReviewError> {
        self.store
            .get_association(id)
            .await?
            .ok_or(ReviewError::NotFound(id))
    }

    /// Accepts an item: the proposed instance, or `instance` (an instance of the same campaign). Links the
    /// activity, enrols its people, and records `by` and `now`.
    ///
    /// # Errors
    /// [`ReviewError::NotFound`], [`ReviewError::NotPending`], [`ReviewError::InstanceRequired`],
    /// [`ReviewError::UnknownInstance`], [`ReviewError::OtherCampaign`], [`ReviewError::ActivityGone`],
    /// [`ReviewError::NoDecider`], [`ReviewError::Store`]; on error nothing is written.
    pub async fn accept(
        &self,
        id: AssociationId,
        instance: Option<&ProgramSlug>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Association, ReviewError> {
        let by = decider(by)?;
        let chosen = match instance {
            Some(slug) => Some(
                self.store
                    .instance_by_slug(slug)
                    .await?
                    .ok_or_else(|| ReviewError::UnknownInstance(slug.to_string()))?,
            ),
            None => None,
        };
        let mut unit = self.store.begin().await?;
        let result = accept_in(&mut *unit, id, chosen, by, now).await;
        finish(unit, result).await
    }

    /// Rejects an item: records `by` and `now`, and unlinks the activity if it is linked to the proposed instance.
    ///
    /// # Errors
    /// [`ReviewError::NotFound`], [`ReviewError::NotPending`], [`ReviewError::NoDecider`],
    /// [`ReviewError::Store`]; on error nothing is written.
    pub async fn reject(
        &self,
        id: AssociationId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Association, ReviewError> {
        let by = decider(by)?;
        let mut unit = self.store.begin().await?;
        let result = reject_in(&mut *unit, id, by, now).await;
        finish(unit, result).await
    }
}

fn decider(by: &str) -> Result<&str, ReviewError> {
    let by = by.trim();
    if by.is_empty() {
        Err(ReviewError::NoDecider)
    } else {
        Ok(by)
    }
}

async fn finish(
    unit: Box<dyn UnitOfWork>,
    result: Result<Association, ReviewError>,
) -> Result<Association, ReviewError> {
    match result {
        Ok(association) => {
            unit.commit().await?;
            Ok(association)
        }
        Err(e) => {
            // The error that stopped the work matters more than a failed rollback, which leaves nothing either.
            let _ = unit.rollback().await;
            Err(e)
        }
    }
}

async fn pending(unit: &mut dyn UnitOfWork, id: AssociationId) -> Result<Association, ReviewError> {
    let association = unit
        .association_by_id(id)
        .await?
        .ok_or(ReviewError::NotFound(id))?;
    if association.decision != Decision::Review {
        return Err(ReviewError::NotPending {
            id,
            decision: association.decision,
        });
    }
    Ok(association)
}

async fn accept_in(
    unit: &mut dyn UnitOfWork,
    id: AssociationId,
    chosen: Option<ProgramInstance>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Association, ReviewError> {
    let mut association = pending(unit, id).await?;
    let instance = match chosen {
        Some(instance) => {
            if association.campaign_id.is_some() && instance.campaign_id != association.campaign_id
            {
                return Err(ReviewError::OtherCampaign {
                    instance: instance.slug.to_string(),
                });
            }
            instance
        }
        None => {
            let proposed = association
                .program_instance_id
                .ok_or(ReviewError::InstanceRequired(id))?;
            instance_by_id(unit, proposed).await?
        }
    };
    let activity = unit
        .activity_summary(association.activity_kind, association.activity_id)
        .await?
        .ok_or(ReviewError::ActivityGone {
            kind: association.activity_kind,
            id: association.activity_id,
        })?;
    unit.set_activity_instance(
        association.activity_kind,
        association.activity_id,
        Some(instance.id),
    )
    .await?;
    let enrolled_at = activity.at.unwrap_or(now);
    let mut enrolments = vec![enrolment(
        activity.participant_id,
        &instance,
        EnrollmentRole::Participant,
        enrolled_at,
    )];
    if let Some(volunteer) = activity.volunteer_id {
        enrolments.push(enrolment(
            volunteer,
            &instance,
            EnrollmentRole::Volunteer,
            enrolled_at,
        ));
    }
    unit.upsert_enrollments(&enrolments).await?;
    association.decision = Decision::Accepted;
    association.program_instance_id = Some(instance.id);
    if association.campaign_id.is_none() {
        association.campaign_id = instance.campaign_id;
    }
    association.decided_by = Some(by.to_owned());
    association.decided_at = Some(now);
    unit.upsert_associations(std::slice::from_ref(&association))
        .await?;
    Ok(association)
}

async fn reject_in(
    unit: &mut dyn UnitOfWork,
    id: AssociationId,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Association, ReviewError> {
    let mut association = pending(unit, id).await?;
    if let Some(proposed) = association.program_instance_id {
        let linked = unit
            .activity_summary(association.activity_kind, association.activity_id)
            .await?
            .and_then(|a| a.program_instance_id);
        if linked == Some(proposed) {
            unit.set_activity_instance(association.activity_kind, association.activity_id, None)
                .await?;
        }
    }
    association.decision = Decision::Rejected;
    association.decided_by = Some(by.to_owned());
    association.decided_at = Some(now);
    unit.upsert_associations(std::slice::from_ref(&association))
        .await?;
    Ok(association)
}

async fn instance_by_id(
    unit: &mut dyn UnitOfWork,
    id: InstanceId,
) -> Result<ProgramInstance, ReviewError> {
    unit.instances_by_id(&[id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ReviewError::UnknownInstance(id.to_string()))
}

fn enrolment(
    user: crate::domain::UserId,
    instance: &ProgramInstance,
    role: EnrollmentRole,
    at: DateTime<Utc>,
) -> Enrollment {
    Enrollment {
        id: uuid::Uuid::now_v7(),
        user_id: user,
        program_instance_id: instance.id,
        program_type: instance.program_type,
        role,
        enrolled_at: at,
    }
}
