-- 0005 extend_program_enrollments: seed 000 step 4, plus the uniqueness that makes enrolment idempotent (SQLite:
-- a unique index, as ALTER TABLE cannot add a constraint).

ALTER TABLE program_enrollments
  ADD COLUMN program_instance_id BLOB REFERENCES program_instances(id) ON DELETE SET NULL;

CREATE INDEX program_enrollments_program_instance_id_idx ON program_enrollments(program_instance_id);

CREATE UNIQUE INDEX program_enrollments_user_id_program_instance_id_role_key
  ON program_enrollments(user_id, program_instance_id, role);
