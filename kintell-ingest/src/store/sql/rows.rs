//! Rows read back from either backend, parsed again into domain records; a value that does not parse is
//! [`StoreError::Corrupt`] naming its table and column.

use crate::domain::{
    ActivityKind, ActivityLineage, Association, AssociationState, BackfillEntity, BatchId,
    BatchRecord, BatchStatus, BeneficiaryGroup, Campaign, CampaignStatus, Company, Confidence,
    Decision, Email, Enrollment, EnrollmentRole, EntityKind, GroupType, ImportMethod,
    InstanceStatus, Key, Name, PersonName, ProgramInstance, ProgramSlug, ProgramType,
    RequestedAction, RowErrorRecord, RunId, RunRecord, SessionType, StoredRow, Tags, User,
    UserRole,
};
use crate::ports::{BoxError, StoreError, StoreResult};
use crate::store::lineage::metadata_source;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// Typed access to the columns of a result row, by name; `None` is SQL `NULL`.
pub(crate) trait SqlRow {
    /// A UUID column.
    fn uuid(&self, col: &str) -> Result<Option<Uuid>, BoxError>;
    /// A text column.
    fn text(&self, col: &str) -> Result<Option<String>, BoxError>;
    /// An integer column of any width.
    fn int(&self, col: &str) -> Result<Option<i64>, BoxError>;
    /// A boolean column.
    fn boolean(&self, col: &str) -> Result<Option<bool>, BoxError>;
    /// A date column.
    fn date(&self, col: &str) -> Result<Option<NaiveDate>, BoxError>;
    /// A timestamp column.
    fn timestamp(&self, col: &str) -> Result<Option<DateTime<Utc>>, BoxError>;
    /// A JSON column.
    fn json(&self, col: &str) -> Result<Option<serde_json::Value>, BoxError>;
}

/// Reads one row of `table`, turning every failure into [`StoreError::Corrupt`].
struct Reader<'r, R> {
    row: &'r R,
    table: &'static str,
}

impl<'r, R: SqlRow> Reader<'r, R> {
    fn new(row: &'r R, table: &'static str) -> Self {
        Reader { row, table }
    }

    fn corrupt(&self, col: &str, why: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what: format!("{}.{col}: {why}", self.table),
        }
    }

    fn required<T>(&self, col: &str, v: Result<Option<T>, BoxError>) -> StoreResult<T> {
        match v {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(self.corrupt(col, "NULL where a value is required")),
            Err(e) => Err(self.corrupt(col, e)),
        }
    }

    fn optional<T>(&self, col: &str, v: Result<Option<T>, BoxError>) -> StoreResult<Option<T>> {
        v.map_err(|e| self.corrupt(col, e))
    }

    fn uuid(&self, col: &str) -> StoreResult<Uuid> {
        self.required(col, self.row.uuid(col))
    }

    fn opt_uuid(&self, col: &str) -> StoreResult<Option<Uuid>> {
        self.optional(col, self.row.uuid(col))
    }

    fn text(&self, col: &str) -> StoreResult<String> {
        self.required(col, self.row.text(col))
    }

    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        self.optional(col, self.row.text(col))
    }

    /// A text column parsed by `parse`.
    fn parse<T, E: std::fmt::Display>(
        &self,
        col: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> StoreResult<T> {
        let s = self.text(col)?;
        parse(&s).map_err(|e| self.corrupt(col, e))
    }

    /// A nullable text column parsed by `parse`.
    fn opt_parse<T, E: std::fmt::Display>(
        &self,
        col: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> StoreResult<Option<T>> {
        match self.opt_text(col)? {
            Some(s) => parse(&s).map(Some).map_err(|e| self.corrupt(col, e)),
            None => Ok(None),
        }
    }

    fn int(&self, col: &str) -> StoreResult<i64> {
        self.required(col, self.row.int(col))
    }

    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        self.optional(col, self.row.int(col))
    }

    fn int32(&self, col: &str) -> StoreResult<i32> {
        let v = self.int(col)?;
        i32::try_from(v).map_err(|e| self.corrupt(col, e))
    }

    fn opt_int32(&self, col: &str) -> StoreResult<Option<i32>> {
        self.opt_int(col)?
            .map(|v| i32::try_from(v).map_err(|e| self.corrupt(col, e)))
            .transpose()
    }

    fn boolean(&self, col: &str) -> StoreResult<bool> {
        self.required(col, self.row.boolean(col))
    }

    fn date(&self, col: &str) -> StoreResult<NaiveDate> {
        self.required(col, self.row.date(col))
    }

    fn opt_date(&self, col: &str) -> StoreResult<Option<NaiveDate>> {
        self.optional(col, self.row.date(col))
    }

    fn timestamp(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        self.required(col, self.row.timestamp(col))
    }

    fn opt_timestamp(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.optional(col, self.row.timestamp(col))
    }

    fn json(&self, col: &str) -> StoreResult<serde_json::Value> {
        self.required(col, self.row.json(col))
    }

    fn opt_json(&self, col: &str) -> StoreResult<Option<serde_json::Value>> {
        self.optional(col, self.row.json(col))
    }

    /// A JSON array of strings, normalised into tags.
    fn tags(&self, col: &str) -> StoreResult<Tags> {
        serde_json::from_value::<Tags>(self.json(col)?).map_err(|e| self.corrupt(col, e))
    }
}

/// The `n` of a `COUNT(*) AS n` row.
pub(super) fn count<R: SqlRow>(row: Option<&R>, table: &'static str) -> StoreResult<u64> {
    let Some(row) = row else {
        return Err(StoreError::Corrupt {
            what: format!("{table}: a count returned no row"),
        });
    };
    let r = Reader::new(row, table);
    let n = r.int("n")?;
    u64::try_from(n).map_err(|e| r.corrupt("n", e))
}

/// The `inserted` marker an upsert returns on backends that have one.
pub(super) fn inserted_flag<R: SqlRow>(row: &R, table: &'static str) -> StoreResult<bool> {
    Reader::new(row, table).boolean("inserted")
}

pub(super) fn company<R: SqlRow>(row: &R) -> StoreResult<Company> {
    let r = Reader::new(row, "companies");
    Ok(Company {
        id: r.uuid("id")?.into(),
        slug: r.parse("slug", Key::parse)?,
        name: r.parse("name", Name::parse)?,
    })
}

pub(super) fn group<R: SqlRow>(row: &R) -> StoreResult<BeneficiaryGroup> {
    let r = Reader::new(row, "beneficiary_groups");
    Ok(BeneficiaryGroup {
        id: r.uuid("id")?.into(),
        key: r.parse("key", Key::parse)?,
        name: r.parse("name", Name::parse)?,
        group_type: r.parse("group_type", GroupType::parse)?,
        tags: r.tags("tags")?,
        is_active: r.boolean("is_active")?,
    })
}

pub(super) fn campaign<R: SqlRow>(row: &R) -> StoreResult<Campaign> {
    let r = Reader::new(row, "campaigns");
    Ok(Campaign {
        id: r.uuid("id")?.into(),
        key: r.parse("key", Key::parse)?,
        name: r.parse("name", Name::parse)?,
        company_id: r.uuid("company_id")?.into(),
        beneficiary_group_id: r.uuid("beneficiary_group_id")?.into(),
        program_type: r.opt_parse("program_type", ProgramType::parse)?,
        start_date: r.date("start_date")?,
        end_date: r.date("end_date")?,
        status: r.parse("status", CampaignStatus::parse)?,
        is_active: r.boolean("is_active")?,
        target_volunteers: r.int32("target_volunteers")?,
        target_beneficiaries: r.int32("target_beneficiaries")?,
        max_sessions: r.opt_int32("max_sessions")?,
    })
}

pub(super) fn instance<R: SqlRow>(row: &R) -> StoreResult<ProgramInstance> {
    let r = Reader::new(row, "program_instances");
    Ok(ProgramInstance {
        id: r.uuid("id")?.into(),
        slug: r.parse("program_slug", ProgramSlug::parse)?,
        program_name: r.parse("program_name", Name::parse)?,
        program_type: r.parse("program_type", ProgramType::parse)?,
        company_id: r.opt_uuid("company_id")?.map(Into::into),
        campaign_id: r.opt_uuid("campaign_id")?.map(Into::into),
        start_date: r.date("start_date")?,
        end_date: r.opt_date("end_date")?,
        status: r.parse("status", InstanceStatus::parse)?,
        external_system: r.opt_text("external_system")?,
        created_at: r.timestamp("created_at")?,
    })
}

pub(super) fn user<R: SqlRow>(row: &R) -> StoreResult<User> {
    let r = Reader::new(row, "users");
    let journey_flags = match r.json("journey_flags")? {
        serde_json::Value::Object(map) => map,
        other => return Err(r.corrupt("journey_flags", format!("{other} is not an object"))),
    };
    Ok(User {
        id: r.uuid("id")?.into(),
        email: r.parse("email", Email::parse)?,
        role: r.parse("role", UserRole::parse)?,
        first_name: r.opt_parse("first_name", PersonName::parse)?,
        last_name: r.opt_parse("last_name", PersonName::parse)?,
        company_id: r.opt_uuid("company_id")?.map(Into::into),
        tags: r.tags("tags")?,
        journey_flags,
    })
}

pub(super) fn batch<R: SqlRow>(row: &R) -> StoreResult<BatchRecord> {
    let r = Reader::new(row, "ingestion_batches");
    Ok(BatchRecord {
        id: BatchId(r.uuid("id")?),
        file_name: r.text("file_name")?,
        file_hash: r.text("file_hash")?,
        file_size_bytes: r.opt_int("file_size_bytes")?,
        entity_kind: r.parse("entity_kind", EntityKind::parse)?,
        format: r.text("format")?,
        program_type: r.parse("program_type", ProgramType::parse)?,
        program_instance_id: r.opt_uuid("program_instance_id")?.map(Into::into),
        source_system: r.text("source_system")?,
        import_method: r.parse("import_method", ImportMethod::parse)?,
        status: r.parse("status", BatchStatus::parse)?,
        total_rows: r.int("total_rows")?,
        success_rows: r.int("success_rows")?,
        inserted_rows: r.int("inserted_rows")?,
        updated_rows: r.int("updated_rows")?,
        skipped_rows: r.int("skipped_rows")?,
        error_rows: r.int("error_rows")?,
        last_processed_row: r.int("last_processed_row")?,
        error_file_path: r.opt_text("error_file_path")?,
        // A batch created outside this library may lack metadata; an empty object is what ours start with.
        csv_metadata: r
            .opt_json("csv_metadata")?
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new())),
        imported_by_service: r.opt_text("imported_by_service")?,
        error_summary: r.opt_json("error_summary")?,
        lease_owner: r.opt_text("lease_owner")?,
        lease_expires_at: r.opt_timestamp("lease_expires_at")?,
        last_error: r.opt_text("last_error")?,
        requested_action: r.opt_parse("requested_action", RequestedAction::parse)?,
        started_at: r.opt_timestamp("started_at")?,
        completed_at: r.opt_timestamp("completed_at")?,
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
    })
}

pub(super) fn lineage<R: SqlRow>(row: &R, table: &'static str) -> StoreResult<ActivityLineage> {
    let r = Reader::new(row, table);
    Ok(ActivityLineage {
        batch_id: r.opt_uuid("batch_id")?.map(Into::into),
        first_batch_id: r.opt_uuid("first_batch_id")?.map(Into::into),
        source_row_number: r.opt_int("source_row_number")?,
        program_instance_id: r.opt_uuid("program_instance_id")?.map(Into::into),
    })
}

pub(super) fn association<R: SqlRow>(row: &R) -> StoreResult<Association> {
    let r = Reader::new(row, "activity_associations");
    let confidence = r.int("confidence")?;
    Ok(Association {
        id: r.uuid("id")?.into(),
        activity_kind: r.parse("activity_kind", ActivityKind::parse)?,
        activity_id: r.uuid("activity_id")?.into(),
        campaign_id: r.opt_uuid("campaign_id")?.map(Into::into),
        program_instance_id: r.opt_uuid("program_instance_id")?.map(Into::into),
        confidence: Confidence::new(confidence).map_err(|e| r.corrupt("confidence", e))?,
        decision: r.parse("decision", Decision::parse)?,
        reasons: r.json("reasons")?,
        policy_version: r.text("policy_version")?,
        candidates: r.json("candidates")?,
        batch_id: r.opt_uuid("batch_id")?.map(Into::into),
        run_id: r.opt_uuid("run_id")?.map(Into::into),
        decided_by: r.opt_text("decided_by")?,
        decided_at: r.opt_timestamp("decided_at")?,
    })
}

/// The `id` column of a row of `table`.
pub(super) fn id<R: SqlRow>(row: &R, table: &'static str) -> StoreResult<Uuid> {
    Reader::new(row, table).uuid("id")
}

/// A boolean column of a row of `table`.
pub(super) fn flag<R: SqlRow>(row: &R, col: &str, table: &'static str) -> StoreResult<bool> {
    Reader::new(row, table).boolean(col)
}

/// The `ord` of a look-up row: the position of the input row it answers.
pub(super) fn ord<R: SqlRow>(row: &R, table: &'static str) -> StoreResult<i64> {
    Reader::new(row, table).int("ord")
}

/// A nullable UUID column of a row of `table`.
pub(super) fn opt_uuid<R: SqlRow>(
    row: &R,
    col: &str,
    table: &'static str,
) -> StoreResult<Option<Uuid>> {
    Reader::new(row, table).opt_uuid(col)
}

/// A timestamp column of a row of `table`.
pub(super) fn timestamp<R: SqlRow>(
    row: &R,
    col: &str,
    table: &'static str,
) -> StoreResult<DateTime<Utc>> {
    Reader::new(row, table).timestamp(col)
}

/// An activity look-up row: its input position and the stored row with its lineage.
pub(super) fn stored_activity<R: SqlRow>(
    row: &R,
    table: &'static str,
) -> StoreResult<(i64, StoredRow)> {
    let r = Reader::new(row, table);
    Ok((
        r.int("ord")?,
        StoredRow {
            id: r.uuid("id")?,
            batch_id: r.opt_uuid("batch_id")?.map(BatchId),
            source_row_number: r.opt_int("source_row_number")?,
        },
    ))
}

/// A user look-up row: its input position and the user with the lineage in its external id's metadata.
pub(super) fn stored_user_source<R: SqlRow>(row: &R) -> StoreResult<(i64, StoredRow)> {
    let r = Reader::new(row, "user_external_ids");
    let (batch_id, source_row_number) = metadata_source(r.opt_json("metadata")?.as_ref())
        .map_err(|why| r.corrupt("metadata", why))?;
    Ok((
        r.int("ord")?,
        StoredRow {
            id: r.uuid("id")?,
            batch_id,
            source_row_number,
        },
    ))
}

pub(super) fn row_error<R: SqlRow>(row: &R) -> StoreResult<RowErrorRecord> {
    let r = Reader::new(row, "ingestion_row_errors");
    Ok(RowErrorRecord {
        batch_id: BatchId(r.uuid("batch_id")?),
        row_number: r.int("row_number")?,
        line_number: r.int("line_number")?,
        code: r.text("code")?,
        field: r.opt_text("field")?,
        message: r.text("message")?,
        details: r.opt_json("details")?,
        raw_record: r.json("raw_record")?,
    })
}

/// A row of a backfill page (see `backfill::page` for its columns).
pub(super) fn backfill_row<R: SqlRow>(
    row: &R,
    kind: ActivityKind,
) -> StoreResult<crate::ports::BackfillRow> {
    let table = super::query::activity_table(kind);
    let r = Reader::new(row, table);
    let program = match kind {
        ActivityKind::KintellSession => r.parse("session_type", SessionType::parse)?.program_type(),
        ActivityKind::BuddyMatch => ProgramType::Buddy,
        ActivityKind::CourseCompletion => ProgramType::Upskilling,
    };
    Ok(crate::ports::BackfillRow {
        kind,
        id: r.uuid("id")?.into(),
        program,
        at: r.opt_timestamp("s_at")?,
        participant_id: r.uuid("p_id")?.into(),
        participant_company: r.opt_uuid("p_company")?.map(Into::into),
        participant_tags: Reader::new(row, "users").tags("p_tags")?,
        volunteer_id: r.opt_uuid("v_id")?.map(Into::into),
        volunteer_company: r.opt_uuid("v_company")?.map(Into::into),
        program_instance_id: r.opt_uuid("instance")?.map(Into::into),
        association: AssociationState {
            decision: Reader::new(row, "activity_associations")
                .opt_parse("a_decision", Decision::parse)?,
            campaign: r.opt_uuid("a_campaign")?.map(Into::into),
            instance: r.opt_uuid("a_instance")?.map(Into::into),
        },
    })
}

/// A row of `program_enrollments`.
pub(super) fn enrollment<R: SqlRow>(row: &R) -> StoreResult<Enrollment> {
    let r = Reader::new(row, "program_enrollments");
    Ok(Enrollment {
        id: r.uuid("id")?,
        user_id: r.uuid("user_id")?.into(),
        program_instance_id: r.uuid("program_instance_id")?.into(),
        program_type: r.parse("program_type", ProgramType::parse)?,
        role: r.parse("role", EnrollmentRole::parse)?,
        enrolled_at: r.timestamp("enrolled_at")?,
    })
}

/// A row of `association_runs`.
pub(super) fn run<R: SqlRow>(row: &R) -> StoreResult<RunRecord> {
    let r = Reader::new(row, "association_runs");
    let batch_size = r.int("batch_size")?;
    Ok(RunRecord {
        id: RunId(r.uuid("id")?),
        dry_run: r.boolean("dry_run")?,
        entity: r.parse("entity", BackfillEntity::parse)?,
        company_id: r.opt_uuid("company_id")?.map(Into::into),
        start_date: r.opt_date("start_date")?,
        end_date: r.opt_date("end_date")?,
        only_unassociated: r.boolean("only_unassociated")?,
        batch_size: u32::try_from(batch_size).map_err(|e| r.corrupt("batch_size", e))?,
        status: r.parse("status", BatchStatus::parse)?,
        checkpoint: serde_json::from_value(r.json("checkpoint")?)
            .map_err(|e| r.corrupt("checkpoint", e))?,
        stats: serde_json::from_value(r.json("stats")?).map_err(|e| r.corrupt("stats", e))?,
        lease_owner: r.opt_text("lease_owner")?,
        lease_expires_at: r.opt_timestamp("lease_expires_at")?,
        started_at: r.opt_timestamp("started_at")?,
        completed_at: r.opt_timestamp("completed_at")?,
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
    })
}

/// A session with its people's emails, as [`super::webhooks::sessions_with_people`] selects it.
pub(super) fn stored_session<R: SqlRow>(row: &R) -> StoreResult<crate::domain::StoredSession> {
    use crate::domain::{DurationMinutes, LanguageLevel, Rating, SessionId, SessionRow};
    let r = Reader::new(row, "kintell_sessions");
    let users = Reader::new(row, "users");
    let topics = match r.opt_json("topics")? {
        None => None,
        Some(v) => {
            Some(serde_json::from_value::<Vec<String>>(v).map_err(|e| r.corrupt("topics", e))?)
        }
    };
    let metadata = match r.opt_json("metadata")? {
        None => None,
        Some(serde_json::Value::Object(m)) => Some(m),
        Some(_) => return Err(r.corrupt("metadata", "not a JSON object")),
    };
    let duration = r
        .opt_int("duration_minutes")?
        .map(|d| DurationMinutes::parse(&d.to_string()))
        .transpose()
        .map_err(|e| r.corrupt("duration_minutes", e))?;
    Ok(crate::domain::StoredSession {
        id: r.uuid("id")?.into(),
        row: SessionRow {
            session_id: r.parse("external_session_id", SessionId::parse)?,
            session_type: r.parse("session_type", SessionType::parse)?,
            participant_email: users.parse("p_email", Email::parse)?,
            volunteer_email: users.parse("v_email", Email::parse)?,
            scheduled_at: r.timestamp("scheduled_at")?,
            completed_at: r.opt_timestamp("completed_at")?,
            duration_minutes: duration,
            rating: r.opt_parse("rating_text", Rating::parse_unit)?,
            feedback_text: r.opt_text("feedback_text")?,
            language_level: r.opt_parse("language_level", LanguageLevel::parse)?,
            topics,
            metadata,
            program_ref: None,
        },
    })
}

/// A row of `webhook_deliveries`.
pub(super) fn delivery<R: SqlRow>(row: &R) -> StoreResult<crate::domain::DeliveryRecord> {
    use crate::domain::{DeliveryId, WebhookEvent};
    let r = Reader::new(row, "webhook_deliveries");
    let status = r.int("response_status")?;
    Ok(crate::domain::DeliveryRecord {
        delivery_id: r.parse("delivery_id", DeliveryId::parse)?,
        event: r.parse("event", WebhookEvent::parse)?,
        received_at: r.timestamp("received_at")?,
        body_sha256: r.text("body_sha256")?,
        response_status: u16::try_from(status).map_err(|e| r.corrupt("response_status", e))?,
        response_body: r.json("response_body")?,
        batch_id: r.opt_uuid("batch_id")?.map(BatchId),
    })
}
