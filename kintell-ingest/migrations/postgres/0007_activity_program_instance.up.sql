-- 0007 activity_program_instance: seed 002 (program_instance_id, its index and the (instance, date) composite on
-- all three activity tables), the batch of buddy matches and course completions, and row-level lineage.
--
-- first_batch_id is the batch that first inserted a row, batch_id the one that last inserted or changed it;
-- source_row_number is the row's data record number in the file of batch_id. Neither batch column cascades: a
-- batch that rows trace to cannot be deleted.

ALTER TABLE buddy_matches
  ADD COLUMN batch_id UUID REFERENCES ingestion_batches(id),
  ADD COLUMN program_instance_id UUID REFERENCES program_instances(id) ON DELETE SET NULL,
  ADD COLUMN first_batch_id UUID REFERENCES ingestion_batches(id),
  ADD COLUMN source_row_number INTEGER CONSTRAINT buddy_matches_source_row_number_check CHECK (source_row_number >= 1);

ALTER TABLE learning_progress
  ADD COLUMN batch_id UUID REFERENCES ingestion_batches(id),
  ADD COLUMN program_instance_id UUID REFERENCES program_instances(id) ON DELETE SET NULL,
  ADD COLUMN first_batch_id UUID REFERENCES ingestion_batches(id),
  ADD COLUMN source_row_number INTEGER
    CONSTRAINT learning_progress_source_row_number_check CHECK (source_row_number >= 1);

ALTER TABLE kintell_sessions
  ADD COLUMN first_batch_id UUID REFERENCES ingestion_batches(id),
  ADD COLUMN source_row_number INTEGER
    CONSTRAINT kintell_sessions_source_row_number_check CHECK (source_row_number >= 1);

CREATE INDEX kintell_sessions_instance_date_idx ON kintell_sessions(program_instance_id, completed_at);

CREATE INDEX buddy_matches_batch_id_idx ON buddy_matches(batch_id);
CREATE INDEX buddy_matches_program_instance_id_idx ON buddy_matches(program_instance_id);
CREATE INDEX buddy_matches_instance_date_idx ON buddy_matches(program_instance_id, matched_at);

CREATE INDEX learning_progress_batch_id_idx ON learning_progress(batch_id);
CREATE INDEX learning_progress_program_instance_id_idx ON learning_progress(program_instance_id);
CREATE INDEX learning_progress_instance_date_idx ON learning_progress(program_instance_id, completed_at);

COMMENT ON COLUMN buddy_matches.batch_id IS 'Links to ingestion batch for data lineage';
COMMENT ON COLUMN learning_progress.batch_id IS 'Links to ingestion batch for data lineage';
COMMENT ON COLUMN kintell_sessions.first_batch_id IS 'The batch that first inserted the row';
COMMENT ON COLUMN buddy_matches.first_batch_id IS 'The batch that first inserted the row';
COMMENT ON COLUMN learning_progress.first_batch_id IS 'The batch that first inserted the row';
COMMENT ON COLUMN kintell_sessions.source_row_number IS 'Data record number in the file of batch_id';
COMMENT ON COLUMN buddy_matches.source_row_number IS 'Data record number in the file of batch_id';
COMMENT ON COLUMN learning_progress.source_row_number IS 'Data record number in the file of batch_id';
