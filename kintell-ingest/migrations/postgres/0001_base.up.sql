-- 0001 base: the tables that existed before the four steps of seed 000.
--
-- kintell_sessions has no batch_id/program_instance_id yet (0004), program_enrollments no program_instance_id
-- (0005), buddy_matches and learning_progress no batch_id/program_instance_id (0007). Every uniqueness carries a
-- name, the same on both backends, so upserts and error mapping do not depend on generated names.

CREATE TABLE companies (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name VARCHAR(255) NOT NULL,
  slug VARCHAR(255) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT companies_slug_key UNIQUE (slug)
);

CREATE TABLE users (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  email VARCHAR(255) NOT NULL,
  role VARCHAR(50) NOT NULL,
  first_name VARCHAR(100),
  last_name VARCHAR(100),
  company_id UUID REFERENCES companies(id) ON DELETE SET NULL,
  tags JSONB NOT NULL DEFAULT '[]',
  journey_flags JSONB NOT NULL DEFAULT '{}',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT users_email_key UNIQUE (email),
  CONSTRAINT users_role_check CHECK (role IN ('participant', 'volunteer', 'company_user', 'admin'))
);

COMMENT ON COLUMN users.email IS 'Stored lower-case';
COMMENT ON COLUMN users.tags IS 'Lower-case strings: the beneficiary profile used for campaign scoring';

CREATE TABLE user_external_ids (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  provider VARCHAR(50) NOT NULL,
  external_id VARCHAR(255) NOT NULL,
  metadata JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT user_external_ids_provider_external_id_key UNIQUE (provider, external_id)
);

CREATE INDEX user_external_ids_user_id_idx ON user_external_ids(user_id);

CREATE TABLE kintell_sessions (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  source_system VARCHAR(50) NOT NULL DEFAULT 'kintell',
  external_session_id VARCHAR(255) NOT NULL,
  session_type VARCHAR(50) NOT NULL,
  participant_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  volunteer_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  scheduled_at TIMESTAMPTZ,
  completed_at TIMESTAMPTZ,
  duration_minutes INTEGER,
  rating NUMERIC(3,2),
  feedback_text TEXT,
  language_level VARCHAR(10),
  topics JSONB,
  metadata JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT kintell_sessions_session_type_check CHECK (session_type IN ('language', 'mentorship')),
  CONSTRAINT kintell_sessions_duration_minutes_check CHECK (duration_minutes BETWEEN 1 AND 480),
  CONSTRAINT kintell_sessions_rating_check CHECK (rating >= 0 AND rating <= 1),
  CONSTRAINT kintell_sessions_language_level_check
    CHECK (language_level IN ('A1', 'A2', 'B1', 'B2', 'C1', 'C2'))
);

-- The idempotency key. Its leading column makes it also the index on external_session_id that seed 000 step 3
-- names, so 0004 does not create that one again.
CREATE UNIQUE INDEX kintell_sessions_external_session_id_idx
  ON kintell_sessions(external_session_id, source_system);

COMMENT ON COLUMN kintell_sessions.rating IS 'Normalised to 0..1';

CREATE TABLE program_enrollments (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  program_type VARCHAR(50) NOT NULL,
  role VARCHAR(20) NOT NULL,
  enrolled_at TIMESTAMPTZ NOT NULL,
  status VARCHAR(50) NOT NULL DEFAULT 'active',
  completed_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT program_enrollments_role_check CHECK (role IN ('participant', 'volunteer')),
  CONSTRAINT program_enrollments_status_check CHECK (status IN ('active', 'completed', 'dropped'))
);

COMMENT ON COLUMN program_enrollments.enrolled_at IS 'Time of the first linked activity';

CREATE TABLE buddy_matches (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  external_match_id VARCHAR(255),
  participant_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  buddy_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  matched_at TIMESTAMPTZ NOT NULL,
  status VARCHAR(50) NOT NULL DEFAULT 'active',
  ended_at TIMESTAMPTZ,
  end_reason VARCHAR(50),
  language VARCHAR(50),
  interests JSONB,
  location VARCHAR(255),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT buddy_matches_participant_id_buddy_id_matched_at_key UNIQUE (participant_id, buddy_id, matched_at),
  CONSTRAINT buddy_matches_status_check CHECK (status IN ('active', 'inactive', 'ended'))
);

CREATE TABLE learning_progress (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  provider VARCHAR(100) NOT NULL,
  course_id VARCHAR(255) NOT NULL,
  course_name VARCHAR(255),
  status VARCHAR(50) NOT NULL,
  progress_percent INTEGER,
  started_at TIMESTAMPTZ,
  completed_at TIMESTAMPTZ,
  final_score NUMERIC(6,2),
  credential_ref VARCHAR(255),
  metadata JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT learning_progress_user_id_provider_course_id_key UNIQUE (user_id, provider, course_id),
  CONSTRAINT learning_progress_status_check CHECK (status IN ('enrolled', 'in_progress', 'completed', 'dropped')),
  CONSTRAINT learning_progress_progress_percent_check CHECK (progress_percent BETWEEN 0 AND 100),
  CONSTRAINT learning_progress_final_score_check CHECK (final_score >= 0 AND final_score <= 100)
);
