-- 0006 campaigns, reverted.
DROP INDEX program_instances_campaign_id_idx;
ALTER TABLE program_instances DROP COLUMN campaign_id;
DROP TABLE campaigns;
DROP TABLE beneficiary_groups;
