-- Up Migration
-- Claim checks: stage outputs too large to travel through Temporal (payloads are limited to 2 MB) are stored here
-- and passed between stages by reference. Written by the worker, read back by the next stage's activity.
CREATE TABLE stage_payloads (
  id          TEXT PRIMARY KEY,          -- deterministic: `{workflowId}/{stage}/{field}`, so a retried stage overwrites its own
  tenant      TEXT        NOT NULL,
  run_id      TEXT        NOT NULL,
  stage       TEXT        NOT NULL,
  sha256      TEXT        NOT NULL,
  bytes       INTEGER     NOT NULL,
  body        TEXT        NOT NULL,      -- canonical JSON of the value
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX stage_payloads_run_idx ON stage_payloads (tenant, run_id);

-- Down Migration
DROP TABLE stage_payloads;
