-- The sink writes as its own role, tipsync_sink: rows of the tables it writes and its
-- offsets, nothing else. It owns nothing, so it cannot create, alter, drop or grant; it has
-- no right on analyst_clearance nor on any table a later migration adds unless that
-- migration grants it (no default privileges on purpose: tests/integration/
-- test_postgres_security.py fails when the sink can touch a table not listed here).
--
-- Like tipsync_analyst, the role belongs to the cluster and must exist before this
-- migration runs (the local stack creates it with a generated password; elsewhere an
-- administrator runs CREATE ROLE tipsync_sink LOGIN PASSWORD '...'; docs/OPERATIONS.md).
-- Sessions need CONNECT and TEMPORARY on the database (its COPY staging tables), which
-- PostgreSQL grants PUBLIC by default.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tipsync_sink') THEN
        RAISE EXCEPTION 'role tipsync_sink does not exist'
            USING HINT = 'an administrator creates it once per cluster with:'
                         ' CREATE ROLE tipsync_sink LOGIN PASSWORD ''<generated>'';'
                         ' then run tipsync db migrate again';
    END IF;
END
$$;

GRANT USAGE ON SCHEMA reconciled TO tipsync_sink;
-- SELECT too: upserts and the version guard read what they replace.
GRANT SELECT, INSERT, UPDATE, DELETE ON
    reconciled.golden_record_state,
    reconciled.sink_offsets,
    reconciled.match_decision,
    reconciled.person, reconciled.person_source,
    reconciled."case", reconciled.case_source,
    reconciled.report, reconciled.report_source,
    reconciled.organisation, reconciled.organisation_source,
    reconciled.location, reconciled.location_source,
    reconciled.link, reconciled.link_source
TO tipsync_sink;
-- The sink refuses to start on a store whose migrations are behind its code.
GRANT SELECT ON reconciled.schema_migrations TO tipsync_sink;
