-- 0004 extend_kintell_sessions, reverted (seed 000 step 3 rollback, keeping the 0001 idempotency index). SQLite
-- drops a column only once no index uses it.
DROP INDEX kintell_sessions_batch_id_idx;
DROP INDEX kintell_sessions_program_instance_id_idx;
DROP INDEX kintell_sessions_participant_id_idx;
DROP INDEX kintell_sessions_volunteer_id_idx;
DROP INDEX kintell_sessions_completed_at_idx;
ALTER TABLE kintell_sessions DROP COLUMN batch_id;
ALTER TABLE kintell_sessions DROP COLUMN program_instance_id;
