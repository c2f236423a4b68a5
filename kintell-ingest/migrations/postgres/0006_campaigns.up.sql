-- 0006 campaigns: beneficiary groups, campaigns, and the campaign of a programme instance (seed 002's world).

CREATE TABLE beneficiary_groups (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  key VARCHAR(255) NOT NULL,
  name VARCHAR(255) NOT NULL,
  group_type VARCHAR(50) NOT NULL,
  tags JSONB NOT NULL DEFAULT '[]',
  is_active BOOLEAN NOT NULL DEFAULT true,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT beneficiary_groups_key_key UNIQUE (key)
);

COMMENT ON COLUMN beneficiary_groups.tags IS 'Lower-case strings matched against user tags';

CREATE TABLE campaigns (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  key VARCHAR(255) NOT NULL,
  name VARCHAR(255) NOT NULL,
  company_id UUID NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  beneficiary_group_id UUID NOT NULL REFERENCES beneficiary_groups(id) ON DELETE RESTRICT,
  program_type VARCHAR(50),
  start_date DATE NOT NULL,
  end_date DATE NOT NULL,
  status VARCHAR(20) NOT NULL DEFAULT 'draft',
  is_active BOOLEAN NOT NULL DEFAULT true,
  target_volunteers INTEGER NOT NULL DEFAULT 0,
  target_beneficiaries INTEGER NOT NULL DEFAULT 0,
  max_sessions INTEGER,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT campaigns_key_key UNIQUE (key),
  CONSTRAINT campaigns_dates_check CHECK (end_date >= start_date),
  CONSTRAINT campaigns_status_check
    CHECK (status IN ('draft', 'planned', 'recruiting', 'active', 'paused', 'completed', 'closed')),
  CONSTRAINT campaigns_targets_check
    CHECK (target_volunteers >= 0 AND target_beneficiaries >= 0 AND (max_sessions IS NULL OR max_sessions >= 0))
);

-- The association's candidate selection: a company's active campaigns covering a date.
CREATE INDEX campaigns_company_active_dates_idx ON campaigns(company_id, is_active, start_date, end_date);

ALTER TABLE program_instances
  ADD COLUMN campaign_id UUID REFERENCES campaigns(id) ON DELETE CASCADE;

CREATE INDEX program_instances_campaign_id_idx ON program_instances(campaign_id);

COMMENT ON COLUMN program_instances.campaign_id IS 'The campaign this run belongs to';
