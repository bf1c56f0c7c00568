-- Up Migration
-- LLM usage, for hard token and cost budgets. Each row is one call of the `llm` agent, keyed by the stage's
-- idempotency key, the activity attempt and the call within the attempt (1, or 2 for the repair), so a repeated
-- write for the same call never counts twice. Before a call the worker reserves its worst case (prompt estimate
-- plus max_tokens) and checks the budgets in the same transaction; afterwards it records what the call used, or
-- releases the reservation when the call used nothing. Budgets sum `tokens` and `cost_usd` per run and per tenant
-- and UTC day.
-- IF NOT EXISTS: a logical restore drops and re-migrates only the tables it reloads, and this one is not among them
-- (usage is accounting, not the record), so running this migration again must keep it as it is.
CREATE TABLE IF NOT EXISTS llm_usage (
  idempotency_key   TEXT           NOT NULL,   -- `{workflowId}/{stage}`, stable across retries of the stage
  attempt           INTEGER        NOT NULL,
  call              INTEGER        NOT NULL,
  tenant            TEXT           NOT NULL,
  run_id            TEXT           NOT NULL,
  stage             TEXT           NOT NULL,
  model             TEXT           NOT NULL,
  day               DATE           NOT NULL,   -- UTC
  status            TEXT           NOT NULL CHECK (status IN ('reserved', 'recorded', 'released')),
  reserved_tokens   INTEGER        NOT NULL,
  prompt_tokens     INTEGER        NOT NULL DEFAULT 0,
  completion_tokens INTEGER        NOT NULL DEFAULT 0,
  tokens            INTEGER        NOT NULL,   -- counted against budgets: the reservation, then the real usage
  cost_usd          NUMERIC(20, 9) NOT NULL DEFAULT 0,
  created_at        TIMESTAMPTZ    NOT NULL DEFAULT now(),
  updated_at        TIMESTAMPTZ    NOT NULL DEFAULT now(),
  PRIMARY KEY (idempotency_key, attempt, call)
);
CREATE INDEX IF NOT EXISTS llm_usage_run_idx ON llm_usage (tenant, run_id);
CREATE INDEX IF NOT EXISTS llm_usage_day_idx ON llm_usage (tenant, day);

-- The worker reserves, records and releases (UPDATE); nobody deletes.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'agentry_app') THEN
    GRANT SELECT, INSERT, UPDATE ON llm_usage TO agentry_app;
  END IF;
END
$$;

-- Down Migration
DROP TABLE IF EXISTS llm_usage;
