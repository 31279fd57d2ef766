-- Every read an analyst makes is audited (docs/ANALYSTS.md, "The read audit").
--
-- Two records, each for what it can know:
--   * pgaudit's object audit (server log, outside the database): every statement of an
--     analyst that reads a table or view of this schema, with the analyst, the time, the
--     objects and the number of rows; never the statement's text. pgaudit logs an object
--     when the role named by pgaudit.role (tipsync_auditor, made by the local stack, by
--     deploy/compose-init.sql or by an administrator) holds SELECT on it: granted below on
--     everything analysts may read, and by default on every table and view made later.
--   * reconciled.read_audit (this migration): which golden persons the paths that return
--     persons gave an analyst: search_person and the views person_overview, case_people and
--     person_lineage. A recorder function, running with the owner's rights, writes it; it
--     also writes each recorded read to the server log, so a read in a transaction the
--     analyst rolls back is still on record there.
-- Search terms are never recorded, neither in clear nor hashed: a name is guessable, so a
-- hash of it would be the name to whoever holds the table.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tipsync_auditor') THEN
        RAISE EXCEPTION 'role tipsync_auditor does not exist'
            USING HINT = 'an administrator creates it once per cluster with:'
                         ' CREATE ROLE tipsync_auditor NOLOGIN;'
                         ' then run tipsync db migrate again (docs/ANALYSTS.md,'
                         ' "The read audit")';
    END IF;
END
$$;

-- One row per (statement, path, person): an analyst's statement that returned this person
-- through this path. Append-only: only the recorder writes, nobody updates or deletes.
CREATE TABLE reconciled.read_audit (
    read_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- When the statement started (statement_timestamp()): the rows of one statement share it.
    read_at     timestamptz NOT NULL,
    -- The login (session_user): SET ROLE does not change it.
    analyst     name        NOT NULL,
    -- The server process of the session (the server log's pid), to find its pgaudit lines.
    backend_pid integer     NOT NULL,
    path        text        NOT NULL
                CHECK (path IN ('search_person', 'person_overview', 'case_people',
                                'person_lineage')),
    person_id   uuid        NOT NULL,
    UNIQUE (backend_pid, read_at, path, person_id)
);
CREATE INDEX read_audit_analyst_idx ON reconciled.read_audit (analyst, read_at);
CREATE INDEX read_audit_person_idx ON reconciled.read_audit (person_id, read_at);
REVOKE ALL ON reconciled.read_audit FROM PUBLIC, tipsync_analyst;

-- Append-only for everyone, the owner included: changing or removing an entry needs
-- dropping this trigger first, which the server log (ddl by the owner) and the table's
-- own history make visible.
CREATE FUNCTION reconciled.refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'reconciled.read_audit is append-only: % refused', tg_op
        USING HINT = 'the read audit is kept as written; see docs/ANALYSTS.md';
END
$$;
CREATE TRIGGER read_audit_append_only
    BEFORE UPDATE OR DELETE ON reconciled.read_audit
    FOR EACH ROW EXECUTE FUNCTION reconciled.refuse_audit_change();
CREATE TRIGGER read_audit_no_truncate
    BEFORE TRUNCATE ON reconciled.read_audit
    FOR EACH STATEMENT EXECUTE FUNCTION reconciled.refuse_audit_change();

-- Records that the current statement gave the session's login these persons through
-- `path`; returns true. Runs with the owner's rights (the analyst has no right on the
-- table); the login, the time and the session come from the server, never from the
-- caller. A caller can only add reads of their own, under a known path. Reads by the
-- store's writer (the owner, tipsync_sink) and superusers are not recorded: they hold every
-- row anyway. The server log gets one line per person newly recorded, which survives a
-- ROLLBACK the table row does not.
CREATE FUNCTION reconciled.record_person_read(path text, person_ids uuid[]) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    person uuid;
    stamp text := to_char(statement_timestamp() AT TIME ZONE 'UTC',
                          'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    inserted integer;
BEGIN
    IF person_ids IS NULL OR cardinality(person_ids) = 0
       OR pg_has_role(session_user,
                      (SELECT n.nspowner FROM pg_namespace AS n WHERE n.nspname = 'reconciled'),
                      'USAGE')
       OR coalesce(pg_has_role(session_user, to_regrole('tipsync_sink'), 'USAGE'), false) THEN
        RETURN true;
    END IF;
    FOREACH person IN ARRAY person_ids LOOP
        CONTINUE WHEN person IS NULL;
        INSERT INTO reconciled.read_audit (read_at, analyst, backend_pid, path, person_id)
        VALUES (statement_timestamp(), session_user, pg_backend_pid(), path, person)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS inserted = ROW_COUNT;
        IF inserted > 0 THEN
            RAISE LOG 'tipsync read: at=% path=% person=%', stamp, path, person;
        END IF;
    END LOOP;
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION reconciled.record_person_read(text, uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reconciled.record_person_read(text, uuid[]) TO tipsync_analyst;

-- search_person as before (0003), and the persons it returns are recorded. VOLATILE now: it
-- writes. The search term is not recorded.
-- Calling a pg_trgm function loads its library, which declares the setting the function
-- sets below; without it, a session that has not used pg_trgm yet sees an unknown setting
-- that only a superuser may attach to a function.
SELECT similarity('tipsync', 'tipsync');
CREATE OR REPLACE FUNCTION reconciled.search_person(name text, dob date DEFAULT NULL)
RETURNS TABLE (
    person_id       uuid,
    full_name       text,
    aliases         text[],
    date_of_birth   date,
    dob_precision   text,
    sex             text,
    agencies        text[],
    score           real
)
LANGUAGE sql VOLATILE
SET pg_trgm.word_similarity_threshold = 0.3
SET search_path = reconciled, public, pg_temp
AS $$
    WITH query AS (SELECT lower(trim(name)) AS text),
    candidates AS (
        SELECT p.*,
               greatest(
                   word_similarity(query.text, p.search_text),
                   similarity(query.text, lower(concat_ws(' ', p.given_name, p.family_name))),
                   similarity(query.text,
                              lower(concat_ws(' ', p.given_name, p.middle_name, p.family_name)))
               ) AS name_score,
               CASE
                   WHEN dob IS NULL THEN NULL
                   WHEN p.date_of_birth IS NULL THEN 0.5
                   WHEN p.dob_precision = 'YEAR'
                       THEN (date_trunc('year', p.date_of_birth) = date_trunc('year', dob))::int
                   WHEN p.dob_precision = 'MONTH'
                       THEN (date_trunc('month', p.date_of_birth) = date_trunc('month', dob))::int
                   ELSE (p.date_of_birth = dob)::int
               END AS dob_score
        FROM reconciled.person AS p, query
        WHERE query.text <% p.search_text
    ),
    ranked AS (
        SELECT c.person_id,
               concat_ws(' ', c.given_name, c.middle_name, c.family_name) AS full_name,
               c.aliases,
               c.date_of_birth,
               c.dob_precision,
               c.sex,
               c.agencies,
               round(coalesce(0.8 * c.name_score + 0.2 * c.dob_score, c.name_score)::numeric,
                     3)::real AS score,
               c.family_name,
               c.given_name
        FROM candidates AS c
        ORDER BY score DESC, c.family_name, c.given_name, c.person_id
        LIMIT 50
    ),
    recorded AS (
        SELECT reconciled.record_person_read('search_person', array_agg(r.person_id)) AS done
        FROM ranked AS r
    )
    SELECT r.person_id, r.full_name, r.aliases, r.date_of_birth, r.dob_precision, r.sex,
           r.agencies, r.score
    FROM ranked AS r CROSS JOIN recorded
    WHERE recorded.done
    ORDER BY r.score DESC, r.family_name, r.given_name, r.person_id
$$;

-- The person views record each person they produce for an analyst's statement, through a
-- last column `read_recorded` (always true). A volatile output keeps PostgreSQL from
-- merging the view into the outer query or dropping the column, so the recorder runs for
-- every row the view produces, after the conditions on the view's other columns that the
-- outer query pushes into it (WHERE person_id = ..., full_name ILIKE ...): a person is
-- recorded when the view produced them for the statement, which a join or ORDER BY above
-- the view can make more than the rows the analyst finally gets.
CREATE OR REPLACE VIEW reconciled.person_lineage WITH (security_invoker = true) AS
SELECT p.person_id,
       l.field,
       l.agency_id,
       l.source_record_id,
       l.source_version,
       l.event_time,
       reconciled.record_person_read('person_lineage', ARRAY[p.person_id]) AS read_recorded
FROM reconciled.person AS p
CROSS JOIN LATERAL jsonb_to_recordset(p.lineage) AS l(
    field text, agency_id text, source_record_id text, source_version bigint,
    event_time timestamptz
);

-- person_overview reads the cases from link and case itself rather than from case_people,
-- so that reading it records person_overview only.
CREATE OR REPLACE VIEW reconciled.person_overview WITH (security_invoker = true) AS
SELECT p.person_id,
       concat_ws(' ', p.given_name, p.middle_name, p.family_name) AS full_name,
       p.aliases,
       p.date_of_birth,
       p.dob_precision,
       p.sex,
       p.citizenship,
       p.classification,
       p.agencies,
       p.source_count,
       p.first_seen,
       p.last_updated,
       coalesce(linked.cases, '[]'::jsonb) AS cases,
       reconciled.record_person_read('person_overview', ARRAY[p.person_id]) AS read_recorded
FROM reconciled.person AS p
LEFT JOIN LATERAL (
    SELECT jsonb_agg(
               jsonb_build_object(
                   'case_id', c.case_id, 'case_ref', c.case_ref, 'status', c.status,
                   'role', l.link_role
               )
               ORDER BY c.case_ref, l.link_role
           ) AS cases
    FROM reconciled.link AS l
    CROSS JOIN LATERAL (
        SELECT CASE WHEN l.from_entity = 'PERSON' THEN l.from_id ELSE l.to_id END AS person_end,
               CASE WHEN l.from_entity = 'CASE' THEN l.from_id ELSE l.to_id END AS case_end
    ) AS ends
    JOIN reconciled."case" AS c ON c.case_id = ends.case_end
    WHERE (l.from_entity, l.to_entity) IN (('PERSON', 'CASE'), ('CASE', 'PERSON'))
      AND reconciled.resolve_person_id(ends.person_end) = p.person_id
) AS linked ON true;

CREATE OR REPLACE VIEW reconciled.case_people WITH (security_invoker = true) AS
SELECT c.case_id,
       c.case_ref,
       c.title              AS case_title,
       c.status             AS case_status,
       p.person_id,
       concat_ws(' ', p.given_name, p.middle_name, p.family_name) AS full_name,
       p.date_of_birth,
       p.dob_precision,
       l.link_role          AS role,
       l.valid_from,
       l.valid_to,
       l.link_id,
       l.agencies           AS link_agencies,
       reconciled.record_person_read('case_people', ARRAY[p.person_id]) AS read_recorded
FROM reconciled.link AS l
CROSS JOIN LATERAL (
    SELECT CASE WHEN l.from_entity = 'PERSON' THEN l.from_id ELSE l.to_id END AS person_end,
           CASE WHEN l.from_entity = 'CASE' THEN l.from_id ELSE l.to_id END AS case_end
) AS ends
JOIN reconciled.person AS p ON p.person_id = reconciled.resolve_person_id(ends.person_end)
JOIN reconciled."case" AS c ON c.case_id = ends.case_end
WHERE (l.from_entity, l.to_entity) IN (('PERSON', 'CASE'), ('CASE', 'PERSON'));

-- pgaudit's object audit: everything an analyst may read, now and later.
DO $$
DECLARE
    readable record;
BEGIN
    FOR readable IN
        SELECT c.oid::regclass AS relation
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = 'reconciled' AND c.relkind IN ('r', 'v', 'm', 'p')
          AND has_table_privilege('tipsync_analyst', c.oid, 'SELECT')
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO tipsync_auditor', readable.relation);
    END LOOP;
END
$$;
ALTER DEFAULT PRIVILEGES IN SCHEMA reconciled GRANT SELECT ON TABLES TO tipsync_auditor;
-- Except the analyst's own clearance: every policy reads it (while PostgreSQL plans the
-- statement), so it would open every statement's record without telling anything.
REVOKE SELECT ON reconciled.my_clearance FROM tipsync_auditor;
