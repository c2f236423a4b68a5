-- 0009 webhook_deliveries: the Kintell webhook deliveries that were applied, by delivery id.
--
-- A delivery is recorded in the same transaction as the rows it wrote, so a replayed delivery id is answered with
-- the recorded response instead of being processed again, across restarts and by every worker. batch_id is SET
-- NULL on delete: removing a batch must not make its delivery look new.

CREATE TABLE webhook_deliveries (
  delivery_id VARCHAR(255) PRIMARY KEY,
  event VARCHAR(50) NOT NULL,
  received_at TIMESTAMPTZ NOT NULL,
  body_sha256 VARCHAR(64) NOT NULL,
  response_status SMALLINT NOT NULL,
  response_body JSONB NOT NULL,
  batch_id UUID REFERENCES ingestion_batches(id) ON DELETE SET NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT webhook_deliveries_event_check
    CHECK (event IN ('session-completed', 'booking-confirmed', 'rating-created')),
  CONSTRAINT webhook_deliveries_body_sha256_check CHECK (body_sha256 ~ '^[0-9a-f]{64}$'),
  CONSTRAINT webhook_deliveries_response_status_check CHECK (response_status BETWEEN 100 AND 599)
);

CREATE INDEX webhook_deliveries_batch_id_idx ON webhook_deliveries(batch_id);

COMMENT ON TABLE webhook_deliveries IS 'Applied Kintell webhook deliveries, for deduplication and replay';
