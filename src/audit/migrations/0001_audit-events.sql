-- Up Migration
-- The audit trail: one hash chain per tenant. Rows are never updated or deleted (see the trigger below); the
-- chain lets `agentry audit verify` detect any edit, deletion, insertion or reordering made behind our back.
CREATE TABLE audit_events (
  id               TEXT PRIMARY KEY,            -- deterministic: `{workflowId}#{sequence}`, so retried writes are no-ops
  tenant           TEXT        NOT NULL,
  chain_index      BIGINT      NOT NULL,        -- position in the tenant's chain, from 1
  run_id           TEXT        NOT NULL,
  type             TEXT        NOT NULL,
  actor            TEXT        NOT NULL,
  pipeline         TEXT,
  pipeline_version INTEGER,
  definition_hash  TEXT,
  stage            TEXT,
  data             JSONB       NOT NULL DEFAULT '{}'::jsonb,
  occurred_at      TIMESTAMPTZ NOT NULL,
  recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  prev_hash        TEXT        NOT NULL,
  hash             TEXT        NOT NULL,
  CONSTRAINT audit_events_chain_position UNIQUE (tenant, chain_index)
);
CREATE INDEX audit_events_run_idx ON audit_events (tenant, run_id, chain_index);
CREATE INDEX audit_events_time_idx ON audit_events (tenant, occurred_at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only
  BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
  BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Down Migration
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
