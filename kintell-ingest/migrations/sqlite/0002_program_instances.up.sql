-- 0002 program_instances: seed 000 step 1, its columns and indexes verbatim (SQLite; types as in 0001, no
-- comments: SQLite has no COMMENT).
--
-- Ours: the CHECKs, and program_slug is unique. The seed's index on program_slug is that unique index, so the
-- table carries no second index on the same column. campaign_id arrives in 0006.

CREATE TABLE program_instances (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),

  -- Program identification
  program_type TEXT NOT NULL
    CONSTRAINT program_instances_program_type_check
    CHECK (program_type IN ('mentors_ukraine', 'language_ukraine', 'buddy', 'upskilling', 'kintell')),
  program_name TEXT NOT NULL,
  program_slug TEXT NOT NULL,

  -- Ownership
  company_id BLOB REFERENCES companies(id),

  -- Time boundaries
  start_date TEXT NOT NULL CHECK (date(start_date) IS start_date),
  end_date TEXT CHECK (end_date IS NULL OR date(end_date) IS end_date),

  -- External system linkage
  external_system_id TEXT,
  external_system TEXT,

  -- Program metadata
  description TEXT,
  target_participants TEXT,
  program_goals TEXT CHECK (program_goals IS NULL OR json_valid(program_goals)),
  metadata TEXT CHECK (metadata IS NULL OR json_valid(metadata)),

  -- Status
  status TEXT NOT NULL DEFAULT 'active'
    CONSTRAINT program_instances_status_check
    CHECK (status IN ('planned', 'active', 'paused', 'completed', 'cancelled')),

  -- Timestamps
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL),

  CONSTRAINT program_instances_dates_check CHECK (end_date IS NULL OR end_date >= start_date)
);

-- Indexes
CREATE INDEX program_instances_program_type_idx ON program_instances(program_type);
CREATE INDEX program_instances_company_id_idx ON program_instances(company_id);
CREATE UNIQUE INDEX program_instances_program_slug_idx ON program_instances(program_slug);
CREATE INDEX program_instances_status_idx ON program_instances(status);
CREATE INDEX program_instances_start_date_idx ON program_instances(start_date);
CREATE INDEX program_instances_company_program_idx ON program_instances(company_id, program_type);
CREATE INDEX program_instances_external_system_idx ON program_instances(external_system, external_system_id);
