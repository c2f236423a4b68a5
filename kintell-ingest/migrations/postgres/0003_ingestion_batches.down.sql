-- 0003 ingestion_batches, reverted (seed 000 step 2 rollback, without CASCADE).
DROP TABLE ingestion_row_errors;
DROP TABLE ingestion_batches;
