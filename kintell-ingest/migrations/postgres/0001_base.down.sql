-- 0001 base, reverted: children before parents.
DROP TABLE learning_progress;
DROP TABLE buddy_matches;
DROP TABLE program_enrollments;
DROP TABLE kintell_sessions;
DROP TABLE user_external_ids;
DROP TABLE users;
DROP TABLE companies;
