-- 0008 associations: association runs (historical backfills) and the association of every activity (SQLite;
-- types as in 0001).
--
-- activity_id has no foreign key: it names a row of one of three tables, chosen by activity_kind. batch_id and
-- company_id are plain references kept for the record, without foreign keys, so history outlives what it names.

CREATE TABLE association_runs (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  dry_run BOOLEAN NOT NULL CHECK (dry_run IN (0, 1)),
  entity TEXT NOT NULL
    CONSTRAINT association_runs_entity_check CHECK (entity IN ('sessions', 'matches', 'completions', 'all')),
  company_id BLOB CHECK (company_id IS NULL OR (typeof(company_id) = 'blob' AND length(company_id) = 16)),
  start_date TEXT CHECK (start_date IS NULL OR date(start_date) IS start_date),
  end_date TEXT CHECK (end_date IS NULL OR date(end_date) IS end_date),
  only_unassociated BOOLEAN NOT NULL DEFAULT 1 CHECK (only_unassociated IN (0, 1)),
  batch_size INTEGER NOT NULL CONSTRAINT association_runs_batch_size_check CHECK (batch_size >= 1),
  status TEXT NOT NULL DEFAULT 'pending'
    CONSTRAINT association_runs_status_check
    CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),
  checkpoint TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(checkpoint)),
  stats TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(stats)),
  lease_owner TEXT,
  lease_expires_at TEXT
    CHECK (lease_expires_at IS NULL OR (lease_expires_at LIKE '____-__-__T__:__:__%' AND (lease_expires_at LIKE '%+00:00' OR lease_expires_at LIKE '%Z') AND julianday(lease_expires_at) IS NOT NULL)),
  started_at TEXT
    CHECK (started_at IS NULL OR (started_at LIKE '____-__-__T__:__:__%' AND (started_at LIKE '%+00:00' OR started_at LIKE '%Z') AND julianday(started_at) IS NOT NULL)),
  completed_at TEXT
    CHECK (completed_at IS NULL OR (completed_at LIKE '____-__-__T__:__:__%' AND (completed_at LIKE '%+00:00' OR completed_at LIKE '%Z') AND julianday(completed_at) IS NOT NULL)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL),
  CONSTRAINT association_runs_dates_check CHECK (start_date IS NULL OR end_date IS NULL OR end_date >= start_date)
);

CREATE TABLE activity_associations (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  activity_kind TEXT NOT NULL
    CONSTRAINT activity_associations_activity_kind_check
    CHECK (activity_kind IN ('kintell_session', 'buddy_match', 'course_completion')),
  activity_id BLOB NOT NULL CHECK (typeof(activity_id) = 'blob' AND length(activity_id) = 16),
  campaign_id BLOB REFERENCES campaigns(id) ON DELETE CASCADE,
  program_instance_id BLOB REFERENCES program_instances(id) ON DELETE SET NULL,
  confidence INTEGER NOT NULL
    CONSTRAINT activity_associations_confidence_check CHECK (confidence BETWEEN 0 AND 100),
  decision TEXT NOT NULL
    CONSTRAINT activity_associations_decision_check
    CHECK (decision IN ('explicit', 'auto', 'review', 'ignored', 'none', 'accepted', 'rejected')),
  reasons TEXT NOT NULL CHECK (json_valid(reasons)),
  policy_version TEXT NOT NULL,
  candidates TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(candidates)),
  batch_id BLOB CHECK (batch_id IS NULL OR (typeof(batch_id) = 'blob' AND length(batch_id) = 16)),
  run_id BLOB REFERENCES association_runs(id) ON DELETE SET NULL,
  decided_by TEXT,
  decided_at TEXT
    CHECK (decided_at IS NULL OR (decided_at LIKE '____-__-__T__:__:__%' AND (decided_at LIKE '%+00:00' OR decided_at LIKE '%Z') AND julianday(decided_at) IS NOT NULL)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL)
);

CREATE UNIQUE INDEX activity_associations_activity_kind_activity_id_key
  ON activity_associations(activity_kind, activity_id);

-- The review queue.
CREATE INDEX activity_associations_decision_idx ON activity_associations(decision);
