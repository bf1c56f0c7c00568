-- Up Migration
-- Least privilege for the processes. The trigger of 0001 refuses UPDATE, DELETE and TRUNCATE for everyone, but the
-- owner of the table (and any superuser) can disable a trigger. So the facade and the worker should not connect as
-- the owner: they connect as a login role that is a member of `agentry_app`, which may only read and append:
--
--   CREATE ROLE agentry_facade LOGIN PASSWORD '...' IN ROLE agentry_app;   -- once, by an administrator
--
-- and migrations run as the owner (the processes still call `migrate` at start; with nothing pending, that only
-- reads `agentry_migrations`, which `agentry_app` may do).
--
-- The grants live in a function so a restore (`agentry backup restore`, which loads dumps without privileges) and
-- an administrator can apply them again. It is safe for any migration user: it creates `agentry_app` (NOLOGIN)
-- when the user may create roles, and otherwise only revokes and grants on objects it owns.
CREATE FUNCTION agentry_apply_app_privileges() RETURNS text
  LANGUAGE plpgsql
  -- Resolve the tables in the schema the migration ran in, whatever search_path a later caller has (pg_dump's
  -- scripts clear it).
  SET search_path FROM CURRENT
AS $$
BEGIN
  -- PUBLIC has none of these by default; revoking states the intent and undoes any earlier grant.
  REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'agentry_app') THEN
    BEGIN
      CREATE ROLE agentry_app NOLOGIN;
    EXCEPTION
      -- Roles are cluster-wide: a migration of another database may have created it a moment ago.
      WHEN duplicate_object OR unique_violation THEN NULL;
      WHEN insufficient_privilege THEN
        RAISE NOTICE 'agentry_app does not exist and this user may not create roles: create it (NOLOGIN) and run SELECT agentry_apply_app_privileges()';
        RETURN 'skipped: agentry_app missing';
    END;
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO agentry_app', current_schema());
  REVOKE ALL ON audit_events FROM agentry_app;
  GRANT SELECT, INSERT ON audit_events TO agentry_app;
  -- Claim checks: a retried stage overwrites its own payload (INSERT ... ON CONFLICT DO UPDATE).
  REVOKE ALL ON stage_payloads FROM agentry_app;
  GRANT SELECT, INSERT, UPDATE ON stage_payloads TO agentry_app;
  -- node-pg-migrate looks the table's primary key up in information_schema.table_constraints, which shows only
  -- tables the user has some privilege on besides SELECT; REFERENCES is the harmless one.
  REVOKE ALL ON agentry_migrations FROM agentry_app;
  GRANT SELECT, REFERENCES ON agentry_migrations TO agentry_app;
  RETURN 'granted';
END
$$;

SELECT agentry_apply_app_privileges();

-- Down Migration
DROP FUNCTION agentry_apply_app_privileges();
