-- 0008 associations: association runs (historical backfills) and the association of every activity.
--
-- activity_id has no foreign key: it names a row of one of three tables, chosen by activity_kind. batch_id and
-- company_id are plain references kept for the record, without foreign keys, so history outlives what it names.

CREATE TABLE association_runs (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  dry_run BOOLEAN NOT NULL,
  entity VARCHAR(30) NOT NULL,
  company_id UUID,
  start_date DATE,
  end_date DATE,
  only_unassociated BOOLEAN NOT NULL DEFAULT true,
  batch_size INTEGER NOT NULL,
  status VARCHAR(20) NOT NULL DEFAULT 'pending',
  checkpoint JSONB NOT NULL DEFAULT '{}',
  stats JSONB NOT NULL DEFAULT '{}',
  lease_owner VARCHAR(255),
  lease_expires_at TIMESTAMPTZ,
  started_at TIMESTAMPTZ,
  completed_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT association_runs_entity_check CHECK (entity IN ('sessions', 'matches', 'completions', 'all')),
  CONSTRAINT association_runs_status_check
    CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),
  CONSTRAINT association_runs_batch_size_check CHECK (batch_size >= 1),
  CONSTRAINT association_runs_dates_check CHECK (start_date IS NULL OR end_date IS NULL OR end_date >= start_date)
);

COMMENT ON COLUMN association_runs.checkpoint IS 'Last id processed per entity';

CREATE TABLE activity_associations (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  activity_kind VARCHAR(30) NOT NULL,
  activity_id UUID NOT NULL,
  campaign_id UUID REFERENCES campaigns(id) ON DELETE CASCADE,
  program_instance_id UUID REFERENCES program_instances(id) ON DELETE SET NULL,
  confidence SMALLINT NOT NULL,
  decision VARCHAR(20) NOT NULL,
  reasons JSONB NOT NULL,
  policy_version VARCHAR(20) NOT NULL,
  candidates JSONB NOT NULL DEFAULT '[]',
  batch_id UUID,
  run_id UUID REFERENCES association_runs(id) ON DELETE SET NULL,
  decided_by VARCHAR(255),
  decided_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT activity_associations_activity_kind_activity_id_key UNIQUE (activity_kind, activity_id),
  CONSTRAINT activity_associations_activity_kind_check
    CHECK (activity_kind IN ('kintell_session', 'buddy_match', 'course_completion')),
  CONSTRAINT activity_associations_confidence_check CHECK (confidence BETWEEN 0 AND 100),
  CONSTRAINT activity_associations_decision_check
    CHECK (decision IN ('explicit', 'auto', 'review', 'ignored', 'none', 'accepted', 'rejected'))
);

-- The review queue.
CREATE INDEX activity_associations_decision_idx ON activity_associations(decision);

COMMENT ON COLUMN activity_associations.candidates IS 'Top three candidates (campaign, total, confidence) for the reviewer';
