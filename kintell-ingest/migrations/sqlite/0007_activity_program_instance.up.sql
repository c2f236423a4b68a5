-- 0007 activity_program_instance: seed 002 (program_instance_id, its index and the (instance, date) composite on
-- all three activity tables), the batch of buddy matches and course completions, and row-level lineage (SQLite:
-- one ALTER TABLE per column; a REFERENCES column may be added because its default is NULL).
--
-- first_batch_id is the batch that first inserted a row, batch_id the one that last inserted or changed it;
-- source_row_number is the row's data record number in the file of batch_id. Neither batch column cascades: a
-- batch that rows trace to cannot be deleted.

ALTER TABLE buddy_matches ADD COLUMN batch_id BLOB REFERENCES ingestion_batches(id);
ALTER TABLE buddy_matches ADD COLUMN program_instance_id BLOB REFERENCES program_instances(id) ON DELETE SET NULL;
ALTER TABLE buddy_matches ADD COLUMN first_batch_id BLOB REFERENCES ingestion_batches(id);
ALTER TABLE buddy_matches ADD COLUMN source_row_number INTEGER
  CONSTRAINT buddy_matches_source_row_number_check CHECK (source_row_number >= 1);

ALTER TABLE learning_progress ADD COLUMN batch_id BLOB REFERENCES ingestion_batches(id);
ALTER TABLE learning_progress ADD COLUMN program_instance_id BLOB REFERENCES program_instances(id) ON DELETE SET NULL;
ALTER TABLE learning_progress ADD COLUMN first_batch_id BLOB REFERENCES ingestion_batches(id);
ALTER TABLE learning_progress ADD COLUMN source_row_number INTEGER
  CONSTRAINT learning_progress_source_row_number_check CHECK (source_row_number >= 1);

ALTER TABLE kintell_sessions ADD COLUMN first_batch_id BLOB REFERENCES ingestion_batches(id);
ALTER TABLE kintell_sessions ADD COLUMN source_row_number INTEGER
  CONSTRAINT kintell_sessions_source_row_number_check CHECK (source_row_number >= 1);

CREATE INDEX kintell_sessions_instance_date_idx ON kintell_sessions(program_instance_id, completed_at);

CREATE INDEX buddy_matches_batch_id_idx ON buddy_matches(batch_id);
CREATE INDEX buddy_matches_program_instance_id_idx ON buddy_matches(program_instance_id);
CREATE INDEX buddy_matches_instance_date_idx ON buddy_matches(program_instance_id, matched_at);

CREATE INDEX learning_progress_batch_id_idx ON learning_progress(batch_id);
CREATE INDEX learning_progress_program_instance_id_idx ON learning_progress(program_instance_id);
CREATE INDEX learning_progress_instance_date_idx ON learning_progress(program_instance_id, completed_at);
