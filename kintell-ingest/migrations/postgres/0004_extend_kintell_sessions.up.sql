-- 0004 extend_kintell_sessions: seed 000 step 3.
--
-- kintell_sessions_external_session_id_idx is not created here: it is the idempotency index of 0001.
-- batch_id keeps the default ON DELETE (no action), so a batch that rows trace to cannot be deleted.

ALTER TABLE kintell_sessions
  ADD COLUMN batch_id UUID REFERENCES ingestion_batches(id),
  ADD COLUMN program_instance_id UUID REFERENCES program_instances(id) ON DELETE SET NULL;

CREATE INDEX kintell_sessions_batch_id_idx ON kintell_sessions(batch_id);
CREATE INDEX kintell_sessions_program_instance_id_idx ON kintell_sessions(program_instance_id);
CREATE INDEX kintell_sessions_participant_id_idx ON kintell_sessions(participant_id);
CREATE INDEX kintell_sessions_volunteer_id_idx ON kintell_sessions(volunteer_id);
CREATE INDEX kintell_sessions_completed_at_idx ON kintell_sessions(completed_at);

COMMENT ON COLUMN kintell_sessions.batch_id IS 'Links to ingestion batch for data lineage';
COMMENT ON COLUMN kintell_sessions.program_instance_id IS 'Links to specific program instance (Q4 2024 vs Q1 2025)';
