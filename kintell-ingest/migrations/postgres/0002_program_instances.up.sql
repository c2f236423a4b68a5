-- 0002 program_instances: seed 000 step 1, its columns, indexes and comments verbatim.
--
-- Ours: the CHECKs, and program_slug is unique. The seed's index on program_slug is that unique index, so the
-- table carries no second index on the same column. campaign_id arrives in 0006.

CREATE TABLE program_instances (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),

  -- Program identification
  program_type VARCHAR(50) NOT NULL,
  program_name VARCHAR(255) NOT NULL,
  program_slug VARCHAR(255) NOT NULL,

  -- Ownership
  company_id UUID REFERENCES companies(id),

  -- Time boundaries
  start_date DATE NOT NULL,
  end_date DATE,

  -- External system linkage
  external_system_id VARCHAR(255),
  external_system VARCHAR(50),

  -- Program metadata
  description VARCHAR(1000),
  target_participants VARCHAR(500),
  program_goals JSONB,
  metadata JSONB,

  -- Status
  status VARCHAR(50) NOT NULL DEFAULT 'active',

  -- Timestamps
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),

  CONSTRAINT program_instances_program_type_check
    CHECK (program_type IN ('mentors_ukraine', 'language_ukraine', 'buddy', 'upskilling', 'kintell')),
  CONSTRAINT program_instances_status_check
    CHECK (status IN ('planned', 'active', 'paused', 'completed', 'cancelled')),
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

-- Comments
COMMENT ON TABLE program_instances IS 'Specific runs of programs (e.g., Mentors for Ukraine Q4 2024)';
COMMENT ON COLUMN program_instances.program_type IS 'mentors_ukraine, language_ukraine, buddy, upskilling';
COMMENT ON COLUMN program_instances.program_slug IS 'URL-friendly identifier (e.g., mentors-ukraine-2024-q4)';
COMMENT ON COLUMN program_instances.status IS 'active, completed, paused, cancelled';
