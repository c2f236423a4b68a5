-- 0002 program_instances, reverted (seed 000 step 1 rollback; no CASCADE, so a later migration still applied
-- makes this fail instead of silently losing its foreign keys).
DROP TABLE program_instances;
