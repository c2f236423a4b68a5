-- 0003 ingestion_batches: seed 000 step 2, its columns and indexes verbatim, plus our columns and constraints,
-- plus ingestion_row_errors (SQLite; types as in 0001).
--
-- As on PostgreSQL: program_instance_id and imported_by are SET NULL on delete, so removing a catalogue entry or
-- a user never fails because of, or deletes, the ledger.

CREATE TABLE ingestion_batches (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),

  -- Source identification
  file_name TEXT NOT NULL,
  file_hash TEXT NOT NULL,
  file_size_bytes INTEGER,

  -- Program context
  program_type TEXT NOT NULL,
  program_instance_id BLOB REFERENCES program_instances(id) ON DELETE SET NULL,

  -- Source system
  source_system TEXT NOT NULL DEFAULT 'kintell',
  import_method TEXT NOT NULL DEFAULT 'csv_upload',

  -- Statistics
  total_rows INTEGER NOT NULL DEFAULT 0,
  success_rows INTEGER NOT NULL DEFAULT 0,
  error_rows INTEGER NOT NULL DEFAULT 0,
  skipped_rows INTEGER NOT NULL DEFAULT 0,

  -- Processing metadata
  last_processed_row INTEGER NOT NULL DEFAULT 0,
  error_file_path TEXT,
  csv_metadata TEXT CHECK (csv_metadata IS NULL OR json_valid(csv_metadata)),

  -- Audit
  imported_by BLOB REFERENCES users(id) ON DELETE SET NULL,
  imported_by_service TEXT,

  -- Status
  status TEXT NOT NULL DEFAULT 'pending'
    CONSTRAINT ingestion_batches_status_check
    CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),

  -- Error summary
  error_summary TEXT CHECK (error_summary IS NULL OR json_valid(error_summary)),

  -- Timestamps
  started_at TEXT
    CHECK (started_at IS NULL OR (started_at LIKE '____-__-__T__:__:__%' AND (started_at LIKE '%+00:00' OR started_at LIKE '%Z') AND julianday(started_at) IS NOT NULL)),
  completed_at TEXT
    CHECK (completed_at IS NULL OR (completed_at LIKE '____-__-__T__:__:__%' AND (completed_at LIKE '%+00:00' OR completed_at LIKE '%Z') AND julianday(completed_at) IS NOT NULL)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL),

  -- Ours: what was imported, who holds it, what was asked of it
  entity_kind TEXT NOT NULL
    CONSTRAINT ingestion_batches_entity_kind_check
    CHECK (entity_kind IN ('kintell_sessions', 'kintell_users', 'buddy_matches', 'course_completions')),
  format TEXT NOT NULL,
  lease_owner TEXT,
  lease_expires_at TEXT
    CHECK (lease_expires_at IS NULL OR (lease_expires_at LIKE '____-__-__T__:__:__%' AND (lease_expires_at LIKE '%+00:00' OR lease_expires_at LIKE '%Z') AND julianday(lease_expires_at) IS NOT NULL)),
  last_error TEXT,
  requested_action TEXT
    CONSTRAINT ingestion_batches_requested_action_check CHECK (requested_action IN ('pause', 'cancel')),
  inserted_rows INTEGER NOT NULL DEFAULT 0,
  updated_rows INTEGER NOT NULL DEFAULT 0,

  CONSTRAINT ingestion_batches_counters_check
    CHECK (success_rows + error_rows + skipped_rows = last_processed_row AND last_processed_row <= total_rows),
  CONSTRAINT ingestion_batches_success_rows_check CHECK (success_rows = inserted_rows + updated_rows),
  CONSTRAINT ingestion_batches_counters_nonnegative_check
    CHECK (total_rows >= 0 AND success_rows >= 0 AND error_rows >= 0 AND skipped_rows >= 0
           AND inserted_rows >= 0 AND updated_rows >= 0)
);

-- Indexes
CREATE INDEX ingestion_batches_file_hash_idx ON ingestion_batches(file_hash);
CREATE INDEX ingestion_batches_program_type_idx ON ingestion_batches(program_type);
CREATE INDEX ingestion_batches_program_instance_id_idx ON ingestion_batches(program_instance_id);
CREATE INDEX ingestion_batches_status_idx ON ingestion_batches(status);
CREATE INDEX ingestion_batches_started_at_idx ON ingestion_batches(started_at);
CREATE INDEX ingestion_batches_created_at_idx ON ingestion_batches(created_at);
CREATE INDEX ingestion_batches_imported_by_idx ON ingestion_batches(imported_by);
CREATE INDEX ingestion_batches_source_system_idx ON ingestion_batches(source_system);

-- One in-flight batch per file and entity.
CREATE UNIQUE INDEX ingestion_batches_in_flight_uq ON ingestion_batches(entity_kind, file_hash)
  WHERE status IN ('pending', 'running', 'paused');

CREATE TABLE ingestion_row_errors (
  id INTEGER PRIMARY KEY,
  batch_id BLOB NOT NULL REFERENCES ingestion_batches(id) ON DELETE CASCADE,
  row_number INTEGER NOT NULL,
  line_number INTEGER NOT NULL,
  code TEXT NOT NULL,
  field TEXT,
  message TEXT NOT NULL,
  details TEXT CHECK (details IS NULL OR json_valid(details)),
  raw_record TEXT NOT NULL CHECK (json_valid(raw_record)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  CONSTRAINT ingestion_row_errors_numbers_check CHECK (row_number >= 1 AND line_number >= 1)
);

CREATE UNIQUE INDEX ingestion_row_errors_batch_id_row_number_key ON ingestion_row_errors(batch_id, row_number);
