-- 0002 program_instances, reverted (seed 000 step 1 rollback).
DROP TABLE program_instances;
