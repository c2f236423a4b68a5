-- 0005 extend_program_enrollments, reverted (seed 000 step 4 rollback).
DROP INDEX program_enrollments_user_id_program_instance_id_role_key;
DROP INDEX program_enrollments_program_instance_id_idx;
ALTER TABLE program_enrollments DROP COLUMN program_instance_id;
