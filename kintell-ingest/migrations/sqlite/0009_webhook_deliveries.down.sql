-- 0009 webhook_deliveries, reverted.
DROP TABLE webhook_deliveries;
