-- 0009 webhook_deliveries: the Kintell webhook deliveries that were applied, by delivery id (SQLite; types as in
-- 0001).
--
-- A delivery is recorded in the same transaction as the rows it wrote, so a replayed delivery id is answered with
-- the recorded response instead of being processed again, across restarts and by every worker. batch_id is SET
-- NULL on delete: removing a batch must not make its delivery look new.

CREATE TABLE webhook_deliveries (
  delivery_id TEXT NOT NULL PRIMARY KEY CHECK (length(delivery_id) BETWEEN 1 AND 255),
  event TEXT NOT NULL
    CONSTRAINT webhook_deliveries_event_check
    CHECK (event IN ('session-completed', 'booking-confirmed', 'rating-created')),
  received_at TEXT NOT NULL
    CHECK (received_at LIKE '____-__-__T__:__:__%' AND (received_at LIKE '%+00:00' OR received_at LIKE '%Z') AND julianday(received_at) IS NOT NULL),
  body_sha256 TEXT NOT NULL
    CONSTRAINT webhook_deliveries_body_sha256_check
    CHECK (length(body_sha256) = 64 AND body_sha256 NOT GLOB '*[^0-9a-f]*'),
  response_status INTEGER NOT NULL
    CONSTRAINT webhook_deliveries_response_status_check CHECK (response_status BETWEEN 100 AND 599),
  response_body TEXT NOT NULL CHECK (json_valid(response_body)),
  batch_id BLOB REFERENCES ingestion_batches(id) ON DELETE SET NULL
    CHECK (batch_id IS NULL OR (typeof(batch_id) = 'blob' AND length(batch_id) = 16)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    CHECK (created_at LIKE '____-__-__T__:__:__%' AND (created_at LIKE '%+00:00' OR created_at LIKE '%Z') AND julianday(created_at) IS NOT NULL)
);

CREATE INDEX webhook_deliveries_batch_id_idx ON webhook_deliveries(batch_id);
