-- 0001 base: the tables that existed before the four steps of seed 000 (SQLite).
--
-- How the PostgreSQL types are stored here, the same in every migration:
-- * UUID: 16-byte BLOB (sqlx's encoding of uuid::Uuid), checked on primary keys and on references without a
--   foreign key, so a UUID written as text fails loudly instead of never matching.
-- * TIMESTAMPTZ: RFC 3339 TEXT in UTC, `YYYY-MM-DDTHH:MM:SS[.fff…]+00:00` (or `Z`). The default writes
--   `strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')`, the same shape sqlx writes for chrono::DateTime<Utc>; with the
--   `+00:00` suffix, text order is time order whatever the number of fraction digits.
-- * DATE: `YYYY-MM-DD` TEXT, checked with date(). BOOLEAN: 0 or 1.
-- * JSONB: TEXT checked with json_valid(); a nullable column tests NULL apart, because before SQLite 3.45
--   json_valid(NULL) is 0, not NULL.
-- * NUMERIC(3,2) rating and NUMERIC(6,2) final_score: exact decimal TEXT with exactly two fraction digits
--   (`0.75`, `87.50`, `100.00`), the rendering of the domain's hundredths; never binary floating point.
-- * Named uniqueness is a named unique index (PostgreSQL has a constraint of the same name), so both backends
--   carry the same index names.

CREATE TABLE companies (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  name TEXT NOT NULL,
  slug TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL)
);

CREATE UNIQUE INDEX companies_slug_key ON companies(slug);

CREATE TABLE users (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  email TEXT NOT NULL,
  role TEXT NOT NULL
    CONSTRAINT users_role_check CHECK (role IN ('participant', 'volunteer', 'company_user', 'admin')),
  first_name TEXT,
  last_name TEXT,
  company_id BLOB REFERENCES companies(id) ON DELETE SET NULL,
  tags TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
  journey_flags TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(journey_flags)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL)
);

CREATE UNIQUE INDEX users_email_key ON users(email);

CREATE TABLE user_external_ids (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  provider TEXT NOT NULL,
  external_id TEXT NOT NULL,
  metadata TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL)
);

CREATE UNIQUE INDEX user_external_ids_provider_external_id_key ON user_external_ids(provider, external_id);
CREATE INDEX user_external_ids_user_id_idx ON user_external_ids(user_id);

CREATE TABLE kintell_sessions (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  source_system TEXT NOT NULL DEFAULT 'kintell',
  external_session_id TEXT NOT NULL,
  session_type TEXT NOT NULL
    CONSTRAINT kintell_sessions_session_type_check CHECK (session_type IN ('language', 'mentorship')),
  participant_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  volunteer_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  scheduled_at TEXT
    CHECK (scheduled_at IS NULL OR (scheduled_at LIKE '____-__-__T__:__:__%' AND (scheduled_at LIKE '%+00:00' OR scheduled_at LIKE '%Z') AND julianday(scheduled_at) IS NOT NULL)),
  completed_at TEXT
    CHECK (completed_at IS NULL OR (completed_at LIKE '____-__-__T__:__:__%' AND (completed_at LIKE '%+00:00' OR completed_at LIKE '%Z') AND julianday(completed_at) IS NOT NULL)),
  duration_minutes INTEGER
    CONSTRAINT kintell_sessions_duration_minutes_check CHECK (duration_minutes BETWEEN 1 AND 480),
  rating TEXT
    CONSTRAINT kintell_sessions_rating_check CHECK (rating GLOB '0.[0-9][0-9]' OR rating = '1.00'),
  feedback_text TEXT,
  language_level TEXT
    CONSTRAINT kintell_sessions_language_level_check
    CHECK (language_level IN ('A1', 'A2', 'B1', 'B2', 'C1', 'C2')),
  topics TEXT CHECK (topics IS NULL OR json_valid(topics)),
  metadata TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL)
);

-- The idempotency key. Its leading column makes it also the index on external_session_id that seed 000 step 3
-- names, so 0004 does not create that one again.
CREATE UNIQUE INDEX kintell_sessions_external_session_id_idx
  ON kintell_sessions(external_session_id, source_system);

CREATE TABLE program_enrollments (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  program_type TEXT NOT NULL,
  role TEXT NOT NULL
    CONSTRAINT program_enrollments_role_check CHECK (role IN ('participant', 'volunteer')),
  enrolled_at TEXT NOT NULL
    CHECK (enrolled_at LIKE '____-__-__T__:__:__%' AND (enrolled_at LIKE '%+00:00' OR enrolled_at LIKE '%Z') AND julianday(enrolled_at) IS NOT NULL),
  status TEXT NOT NULL DEFAULT 'active'
    CONSTRAINT program_enrollments_status_check CHECK (status IN ('active', 'completed', 'dropped')),
  completed_at TEXT
    CHECK (completed_at IS NULL OR (completed_at LIKE '____-__-__T__:__:__%' AND (completed_at LIKE '%+00:00' OR completed_at LIKE '%Z') AND julianday(completed_at) IS NOT NULL)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL)
);

CREATE TABLE buddy_matches (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  external_match_id TEXT,
  participant_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  buddy_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  matched_at TEXT NOT NULL
    CHECK (matched_at LIKE '____-__-__T__:__:__%' AND (matched_at LIKE '%+00:00' OR matched_at LIKE '%Z') AND julianday(matched_at) IS NOT NULL),
  status TEXT NOT NULL DEFAULT 'active'
    CONSTRAINT buddy_matches_status_check CHECK (status IN ('active', 'inactive', 'ended')),
  ended_at TEXT
    CHECK (ended_at IS NULL OR (ended_at LIKE '____-__-__T__:__:__%' AND (ended_at LIKE '%+00:00' OR ended_at LIKE '%Z') AND julianday(ended_at) IS NOT NULL)),
  end_reason TEXT,
  language TEXT,
  interests TEXT CHECK (interests IS NULL OR json_valid(interests)),
  location TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL)
);

CREATE UNIQUE INDEX buddy_matches_participant_id_buddy_id_matched_at_key
  ON buddy_matches(participant_id, buddy_id, matched_at);

CREATE TABLE learning_progress (
  id BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  user_id BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  provider TEXT NOT NULL,
  course_id TEXT NOT NULL,
  course_name TEXT,
  status TEXT NOT NULL
    CONSTRAINT learning_progress_status_check CHECK (status IN ('enrolled', 'in_progress', 'completed', 'dropped')),
  progress_percent INTEGER
    CONSTRAINT learning_progress_progress_percent_check CHECK (progress_percent BETWEEN 0 AND 100),
  started_at TEXT
    CHECK (started_at IS NULL OR (started_at LIKE '____-__-__T__:__:__%' AND (started_at LIKE '%+00:00' OR started_at LIKE '%Z') AND julianday(started_at) IS NOT NULL)),
  completed_at TEXT
    CHECK (completed_at IS NULL OR (completed_at LIKE '____-__-__T__:__:__%' AND (completed_at LIKE '%+00:00' OR completed_at LIKE '%Z') AND julianday(completed_at) IS NOT NULL)),
  final_score TEXT
    CONSTRAINT learning_progress_final_score_check
    CHECK (final_score GLOB '[0-9].[0-9][0-9]' OR final_score GLOB '[1-9][0-9].[0-9][0-9]' OR final_score = '100.00'),
  credential_ref TEXT,
  metadata TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (updated_at LIKE '____-__-__T__:__:__%' AND (updated_at LIKE '%+00:00' OR updated_at LIKE '%Z') AND julianday(updated_at) IS NOT NULL)
);

CREATE UNIQUE INDEX learning_progress_user_id_provider_course_id_key
  ON learning_progress(user_id, provider, course_id);
