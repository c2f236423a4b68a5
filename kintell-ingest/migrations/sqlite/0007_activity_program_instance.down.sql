-- 0007 activity_program_instance, reverted (seed 002 rollbacks, plus the lineage columns). SQLite drops a column
-- only once no index uses it.
DROP INDEX learning_progress_instance_date_idx;
DROP INDEX learning_progress_program_instance_id_idx;
DROP INDEX learning_progress_batch_id_idx;
DROP INDEX buddy_matches_instance_date_idx;
DROP INDEX buddy_matches_program_instance_id_idx;
DROP INDEX buddy_matches_batch_id_idx;
DROP INDEX kintell_sessions_instance_date_idx;

ALTER TABLE kintell_sessions DROP COLUMN source_row_number;
ALTER TABLE kintell_sessions DROP COLUMN first_batch_id;

ALTER TABLE learning_progress DROP COLUMN source_row_number;
ALTER TABLE learning_progress DROP COLUMN first_batch_id;
ALTER TABLE learning_progress DROP COLUMN program_instance_id;
ALTER TABLE learning_progress DROP COLUMN batch_id;

ALTER TABLE buddy_matches DROP COLUMN source_row_number;
ALTER TABLE buddy_matches DROP COLUMN first_batch_id;
ALTER TABLE buddy_matches DROP COLUMN program_instance_id;
ALTER TABLE buddy_matches DROP COLUMN batch_id;
