-- 0005 extend_program_enrollments: seed 000 step 4, plus the uniqueness that makes enrolment idempotent.

ALTER TABLE program_enrollments
  ADD COLUMN program_instance_id UUID REFERENCES program_instances(id) ON DELETE SET NULL;

CREATE INDEX program_enrollments_program_instance_id_idx ON program_enrollments(program_instance_id);

ALTER TABLE program_enrollments
  ADD CONSTRAINT program_enrollments_user_id_program_instance_id_role_key UNIQUE (user_id, program_instance_id, role);

COMMENT ON COLUMN program_enrollments.program_instance_id IS 'Links enrollment to specific program instance';
