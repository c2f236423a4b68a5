-- 0006 campaigns: beneficiary groups, campaigns, and the campaign of a programme instance (SQLite; types as in
-- 0001).

CREATE TABLE beneficiary_groups (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  key TEXT NOT NULL,
  name TEXT NOT NULL,
  group_type TEXT NOT NULL,
  tags TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
  is_active BOOLEAN NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL)
);

CREATE UNIQUE INDEX beneficiary_groups_key_key ON beneficiary_groups(key);

CREATE TABLE campaigns (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  key TEXT NOT NULL,
  name TEXT NOT NULL,
  company_id BLOB NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  beneficiary_group_id BLOB NOT NULL REFERENCES beneficiary_groups(id) ON DELETE RESTRICT,
  program_type TEXT,
  start_date TEXT NOT NULL CHECK (date(start_date) IS start_date),
  end_date TEXT NOT NULL CHECK (date(end_date) IS end_date),
  status TEXT NOT NULL DEFAULT 'draft'
    CONSTRAINT campaigns_status_check
    CHECK (status IN ('draft', 'planned', 'recruiting', 'active', 'paused', 'completed', 'closed')),
  is_active BOOLEAN NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
  target_volunteers INTEGER NOT NULL DEFAULT 0,
  target_beneficiaries INTEGER NOT NULL DEFAULT 0,
  max_sessions INTEGER,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL),
  CONSTRAINT campaigns_dates_check CHECK (end_date >= start_date),
  CONSTRAINT campaigns_targets_check
    CHECK (target_volunteers >= 0 AND target_beneficiaries >= 0 AND (max_sessions IS NULL OR max_sessions >= 0))
);

CREATE UNIQUE INDEX campaigns_key_key ON campaigns(key);

-- The association's candidate selection: a company's active campaigns covering a date.
CREATE INDEX campaigns_company_active_dates_idx ON campaigns(company_id, is_active, start_date, end_date);

ALTER TABLE program_instances ADD COLUMN campaign_id BLOB REFERENCES campaigns(id) ON DELETE CASCADE;

CREATE INDEX program_instances_campaign_id_idx ON program_instances(campaign_id);
