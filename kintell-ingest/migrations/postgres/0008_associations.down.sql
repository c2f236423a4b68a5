-- 0008 associations, reverted.
DROP TABLE activity_associations;
DROP TABLE association_runs;
