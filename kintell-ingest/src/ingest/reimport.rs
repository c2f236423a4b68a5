//! The re-import check: what to do with a file whose bytes some batch has seen before, keyed on (entity, hash).

use chrono::{DateTime, TimeDelta, Utc};

use crate::batch::LeaseOwner;
use crate::domain::{BatchRecord, BatchStatus};

/// What the ledger says about a file's bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// No batch to resume and nothing refusing: create one.
    New,
    /// A completed batch imported these bytes (and the import is not forced).
    AlreadyImported(BatchRecord),
    /// A live worker is importing these bytes.
    InProgress {
        /// Its batch.
        batch: BatchRecord,
        /// Its lease holder.
        owner: String,
        /// The end of its lease.
        until: DateTime<Utc>,
    },
    /// Resume this batch (take it over when it is `running`).
    Resume {
        /// The batch.
        batch: BatchRecord,
        /// For a running batch: whether its holder is a dead process of this host.
        holder_dead: bool,
    },
}

/// The lease owner an [`Verdict::InProgress`] names for a `pending` batch younger than a lease: it has no lease
/// yet, and its creator is presumed to be starting it.
pub(crate) const STARTING_OWNER: &str = "the import that created it (starting)";

/// Decides from every batch of the same entity and hash, newest first.
///
/// In order: a live `running` batch refuses; a `running` batch whose lease expired or whose holder is dead is
/// taken over; a `pending` batch created less than `lease` ago refuses (its creator is starting it); an older
/// `pending` one or a `paused` one (at most one is in flight) is resumed; a `completed` batch refuses unless
/// `force`; a `failed` batch newer than every completed one is resumed; otherwise a new batch is created.
/// `holder_dead` says whether a lease owner (as stored) is a dead process of this host.
pub(crate) fn decide(
    batches: &[BatchRecord],
    force: bool,
    now: DateTime<Utc>,
    lease: TimeDelta,
    holder_dead: &dyn Fn(&str) -> bool,
) -> Verdict {
    if let Some(b) = batches.iter().find(|b| b.status == BatchStatus::Running) {
        let dead = b.lease_owner.as_deref().is_some_and(holder_dead);
        if let (Some(owner), Some(until)) = (&b.lease_owner, b.lease_expires_at)
            && now < until
            && !dead
        {
            return Verdict::InProgress {
                batch: b.clone(),
                owner: owner.clone(),
                until,
            };
        }
        return Verdict::Resume {
            batch: b.clone(),
            holder_dead: dead,
        };
    }
    if let Some(b) = batches
        .iter()
        .find(|b| matches!(b.status, BatchStatus::Pending | BatchStatus::Paused))
    {
        let starting_until = b.created_at.checked_add_signed(lease).unwrap_or(now);
        if b.status == BatchStatus::Pending && now < starting_until {
            return Verdict::InProgress {
                batch: b.clone(),
                owner: STARTING_OWNER.to_owned(),
                until: starting_until,
            };
        }
        return Verdict::Resume {
            batch: b.clone(),
            holder_dead: false,
        };
    }
    let completed = batches
        .iter()
        .position(|b| b.status == BatchStatus::Completed);
    if let Some(i) = completed
        && !force
        && let Some(b) = batches.get(i)
    {
        return Verdict::AlreadyImported(b.clone());
    }
    let newer = &batches[..completed.unwrap_or(batches.len())];
    match newer.iter().find(|b| b.status == BatchStatus::Failed) {
        Some(b) => Verdict::Resume {
            batch: b.clone(),
            holder_dead: false,
        },
        None => Verdict::New,
    }
}

/// The notices of an import: earlier batches with the same file name and other bytes, and with the same bytes
/// under another name (`me` excluded). Each names the newest such batch and how many others there are.
pub(crate) fn notices(
    file_name: &str,
    file_hash: &str,
    by_hash: &[BatchRecord],
    by_name: &[BatchRecord],
    me: Option<crate::domain::BatchId>,
) -> Vec<String> {
    let mut out = Vec::new();
    let other_content: Vec<&BatchRecord> = by_name
        .iter()
        .filter(|b| b.file_hash != file_hash && Some(b.id) != me)
        .collect();
    if let Some(b) = other_content.first() {
        out.push(format!(
            "batch {} ({}, {}) imported a file of the same name {file_name:?} with different content{}",
            b.id,
            b.status,
            b.created_at.to_rfc3339(),
            more(other_content.len())
        ));
    }
    let other_name: Vec<&BatchRecord> = by_hash
        .iter()
        .filter(|b| b.file_name != file_name && Some(b.id) != me)
        .collect();
    if let Some(b) = other_name.first() {
        out.push(format!(
            "batch {} ({}, {}) imported the same content under the name {:?}{}",
            b.id,
            b.status,
            b.created_at.to_rfc3339(),
            b.file_name,
            more(other_name.len())
        ));
    }
    out
}

fn more(n: usize) -> String {
    match n {
        0 | 1 => String::new(),
        2 => " (and 1 other batch)".to_owned(),
        n => format!(" (and {} other batches)", n - 1),
    }
}

/// Whether the holder of a lease is a process of `host` that no longer exists. Only Linux's `/proc` can tell; where
/// it is missing the holder is presumed alive (its lease then has to expire). This process itself is alive.
pub(crate) fn holder_is_dead(owner: &str, host: &str) -> bool {
    let Ok(owner) = LeaseOwner::parse(owner) else {
        return false;
    };
    if !owner.is_on_host(host) || owner.pid() == std::process::id() {
        return false;
    }
    let proc = std::path::Path::new("/proc");
    proc.join("self").exists() && !proc.join(owner.pid().to_string()).exists()
}

/// This machine's host name: `/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `localhost`.
pub(crate) fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BatchId, EntityKind, ImportMethod, ProgramType};
    use chrono::TimeZone;

    fn at(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            + chrono::TimeDelta::minutes(min)
    }

    fn batch(n: u128, status: BatchStatus) -> BatchRecord {
        BatchRecord {
            id: BatchId(uuid::Uuid::from_u128(n)),
            file_name: "a.csv".into(),
            file_hash: "h".into(),
            file_size_bytes: None,
            entity_kind: EntityKind::KintellSessions,
            format: "kintell-sessions".into(),
            program_type: ProgramType::Kintell,
            program_instance_id: None,
            source_system: "kintell".into(),
            import_method: ImportMethod::CsvUpload,
            status,
            total_rows: 0,
            success_rows: 0,
            inserted_rows: 0,
            updated_rows: 0,
            skipped_rows: 0,
            error_rows: 0,
            last_processed_row: 0,
            error_file_path: None,
            csv_metadata: serde_json::json!({}),
            imported_by_service: None,
            error_summary: None,
            lease_owner: (status == BatchStatus::Running).then(|| "host:1:n".to_owned()),
            lease_expires_at: (status == BatchStatus::Running).then(|| at(10)),
            last_error: None,
            requested_action: None,
            started_at: None,
            completed_at: None,
            created_at: at(-(n as i64)),
            updated_at: at(0),
        }
    }

    fn check(batches: &[BatchRecord], force: bool, now: i64, dead: bool) -> String {
        match decide(batches, force, at(now), TimeDelta::minutes(1), &|_| dead) {
            Verdict::New => "new".into(),
            Verdict::AlreadyImported(b) => format!("already {}", b.id.0.as_u128()),
            Verdict::InProgress { batch, owner, .. } => {
                format!("in progress {} by {owner}", batch.id.0.as_u128())
            }
            Verdict::Resume { batch, holder_dead } => {
                format!("resume {} dead={holder_dead}", batch.id.0.as_u128())
            }
        }
    }

    #[test]
    fn every_outcome() {
        use BatchStatus as S;
        assert_eq!(check(&[], false, 0, false), "new");
        assert_eq!(
            check(&[batch(1, S::Completed)], false, 0, false),
            "already 1"
        );
        assert_eq!(check(&[batch(1, S::Completed)], true, 0, false), "new");
        assert_eq!(check(&[batch(1, S::Cancelled)], false, 0, false), "new");
        // A pending batch (created a minute before `now`) is being started by its creator for a lease's
        // length; after that it is an orphan.
        assert_eq!(
            check(&[batch(1, S::Pending)], false, 0, false),
            "resume 1 dead=false"
        );
        assert_eq!(
            check(&[batch(1, S::Pending)], false, -1, false),
            format!("in progress 1 by {STARTING_OWNER}")
        );
        assert_eq!(
            check(&[batch(1, S::Paused)], true, 0, false),
            "resume 1 dead=false"
        );
        assert_eq!(
            check(&[batch(1, S::Failed)], false, 0, false),
            "resume 1 dead=false"
        );
        let running = [batch(1, S::Running)];
        assert_eq!(check(&running, true, 0, false), "in progress 1 by host:1:n");
        assert_eq!(check(&running, false, 10, false), "resume 1 dead=false");
        assert_eq!(check(&running, false, 0, true), "resume 1 dead=true");
        // An in-flight batch is finished even when a completed one exists.
        assert_eq!(
            check(
                &[batch(1, S::Paused), batch(2, S::Completed)],
                false,
                0,
                false
            ),
            "resume 1 dead=false"
        );
        // A failed forced re-import is resumed; failures older than the completion are history.
        assert_eq!(
            check(
                &[batch(1, S::Failed), batch(2, S::Completed)],
                true,
                0,
                false
            ),
            "resume 1 dead=false"
        );
        assert_eq!(
            check(
                &[batch(1, S::Completed), batch(2, S::Failed)],
                true,
                0,
                false
            ),
            "new"
        );
        assert_eq!(
            check(
                &[batch(1, S::Completed), batch(2, S::Failed)],
                false,
                0,
                false
            ),
            "already 1"
        );
    }

    #[test]
    fn notices_name_the_newest_batch_and_count_the_rest() {
        let mut same_name = batch(1, BatchStatus::Completed);
        same_name.file_hash = "other".into();
        let mut other_name = batch(2, BatchStatus::Failed);
        other_name.file_name = "b.csv".into();
        let n = notices(
            "a.csv",
            "h",
            &[other_name.clone(), other_name],
            &[same_name],
            None,
        );
        assert_eq!(n.len(), 2);
        assert!(
            n[0].contains("same name \"a.csv\" with different content"),
            "{n:?}"
        );
        assert!(
            n[1].contains("under the name \"b.csv\" (and 1 other batch)"),
            "{n:?}"
        );
    }

    #[test]
    fn a_holder_elsewhere_or_alive_is_not_dead() {
        let me = std::process::id();
        assert!(!holder_is_dead(&format!("other-host:{me}:n"), "this-host"));
        assert!(!holder_is_dead(&format!("this-host:{me}:n"), "this-host"));
        assert!(!holder_is_dead("not an owner", "this-host"));
        if std::path::Path::new("/proc/self").exists() {
            assert!(holder_is_dead("this-host:4000000000:n", "this-host"));
        }
    }
}
