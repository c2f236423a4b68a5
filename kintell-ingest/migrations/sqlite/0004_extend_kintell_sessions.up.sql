-- 0004 extend_kintell_sessions: seed 000 step 3 (SQLite).
--
-- kintell_sessions_external_session_id_idx is not created here: it is the idempotency index of 0001.
-- batch_id keeps the default ON DELETE (no action), so a batch that rows trace to cannot be deleted.

ALTER TABLE kintell_sessions ADD COLUMN batch_id BLOB REFERENCES ingestion_batches(id);
ALTER TABLE kintell_sessions ADD COLUMN program_instance_id BLOB REFERENCES program_instances(id) ON DELETE SET NULL;

CREATE INDEX kintell_sessions_batch_id_idx ON kintell_sessions(batch_id);
CREATE INDEX kintell_sessions_program_instance_id_idx ON kintell_sessions(program_instance_id);
CREATE INDEX kintell_sessions_participant_id_idx ON kintell_sessions(participant_id);
CREATE INDEX kintell_sessions_volunteer_id_idx ON kintell_sessions(volunteer_id);
CREATE INDEX kintell_sessions_completed_at_idx ON kintell_sessions(completed_at);
