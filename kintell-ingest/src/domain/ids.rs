//! Row ids: typed UUIDs, and the stable UUIDv5 ids of catalogue rows.

use std::fmt;
use uuid::Uuid;

/// Defines a typed UUID id.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The UUID.
            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }
    };
}

id_type!(
    /// Id of a company (stable UUIDv5).
    CompanyId
);
id_type!(
    /// Id of a user (stable UUIDv5 of the lower-cased email).
    UserId
);
id_type!(
    /// Id of a beneficiary group (stable UUIDv5).
    GroupId
);
id_type!(
    /// Id of a campaign (stable UUIDv5).
    CampaignId
);
id_type!(
    /// Id of a programme instance (stable UUIDv5 of its slug).
    InstanceId
);
id_type!(
    /// Id of an ingestion batch (UUIDv7).
    BatchId
);
id_type!(
    /// Id of an activity row: a session, a match or a completion (UUIDv7).
    ActivityId
);
id_type!(
    /// Id of an association (UUIDv7); also the id of a review item.
    AssociationId
);
id_type!(
    /// Id of a backfill run (UUIDv7).
    RunId
);

/// The kinds of catalogue row whose ids are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StableKind {
    /// `companies`, keyed by slug.
    Company,
    /// `beneficiary_groups`, keyed by key.
    BeneficiaryGroup,
    /// `campaigns`, keyed by key.
    Campaign,
    /// `program_instances`, keyed by slug.
    ProgramInstance,
    /// `users`, keyed by lower-cased email.
    User,
}

impl StableKind {
    const fn name(self) -> &'static str {
        match self {
            StableKind::Company => "company",
            StableKind::BeneficiaryGroup => "beneficiary_group",
            StableKind::Campaign => "campaign",
            StableKind::ProgramInstance => "program_instance",
            StableKind::User => "user",
        }
    }
}

/// The stable id of a catalogue row: UUIDv5 in the URL namespace of `kintell-ingest:<kind>:<key>`, the same on
/// every machine and every import.
pub fn stable_id(kind: StableKind, key: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("kintell-ingest:{}:{key}", kind.name()).as_bytes(),
    )
}

impl CompanyId {
    /// The stable id of the company with this slug.
    pub fn stable(slug: &str) -> Self {
        CompanyId(stable_id(StableKind::Company, slug))
    }
}

impl GroupId {
    /// The stable id of the beneficiary group with this key.
    pub fn stable(key: &str) -> Self {
        GroupId(stable_id(StableKind::BeneficiaryGroup, key))
    }
}

impl CampaignId {
    /// The stable id of the campaign with this key.
    pub fn stable(key: &str) -> Self {
        CampaignId(stable_id(StableKind::Campaign, key))
    }
}

impl InstanceId {
    /// The stable id of the programme instance with this slug.
    pub fn stable(slug: &crate::domain::ProgramSlug) -> Self {
        InstanceId(stable_id(StableKind::ProgramInstance, slug.as_str()))
    }
}

impl UserId {
    /// The stable id of the user with this email.
    pub fn stable(email: &crate::domain::Email) -> Self {
        UserId(stable_id(StableKind::User, email.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_ids_use_the_url_namespace() {
        assert_eq!(
            Uuid::NAMESPACE_URL.to_string(),
            "6ba7b811-9dad-11d1-80b4-00c04fd430c8"
        );
        let a = stable_id(StableKind::Campaign, "acme-mentors-2024");
        assert_eq!(
            a,
            Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                b"kintell-ingest:campaign:acme-mentors-2024"
            )
        );
        assert_eq!(a.get_version_num(), 5);
        assert_ne!(a, stable_id(StableKind::Company, "acme-mentors-2024"));
    }
}
