-- What analysts use: fuzzy name search, views for the common questions, and the read-only
-- group role tipsync_analyst.
--
-- Roles belong to the whole PostgreSQL cluster and the owner of this database may not be
-- allowed to create them, so tipsync_analyst must exist before this migration runs (the
-- local stack creates it; elsewhere an administrator runs
--   CREATE ROLE tipsync_analyst NOLOGIN;
-- as docs/ANALYSTS.md explains). pg_trgm is a trusted extension: the database owner may
-- create it; the local stack has already created it.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tipsync_analyst') THEN
        RAISE EXCEPTION 'role tipsync_analyst does not exist'
            USING HINT = 'an administrator creates it once per cluster with:'
                         ' CREATE ROLE tipsync_analyst NOLOGIN;'
                         ' then run tipsync db migrate again';
    END IF;
END
$$;

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- GIN rather than GiST: cheaper to keep up to date under the sink's steady writes.
CREATE INDEX person_search_text_trgm_idx
    ON reconciled.person USING gin (search_text gin_trgm_ops);

-- Everyone linked to a case, with their role; a person end that was merged is shown as
-- its survivor.
CREATE VIEW reconciled.case_people AS
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
       l.agencies           AS link_agencies
FROM reconciled.link AS l
CROSS JOIN LATERAL (
    SELECT CASE WHEN l.from_entity = 'PERSON' THEN l.from_id ELSE l.to_id END AS person_end,
           CASE WHEN l.from_entity = 'CASE' THEN l.from_id ELSE l.to_id END AS case_end
) AS ends
JOIN reconciled.person AS p ON p.person_id = reconciled.resolve_person_id(ends.person_end)
JOIN reconciled."case" AS c ON c.case_id = ends.case_end
WHERE (l.from_entity, l.to_entity) IN (('PERSON', 'CASE'), ('CASE', 'PERSON'));

-- A person with the agencies that know them and the cases they are linked to.
CREATE VIEW reconciled.person_overview AS
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
       coalesce(linked.cases, '[]'::jsonb) AS cases
FROM reconciled.person AS p
LEFT JOIN LATERAL (
    SELECT jsonb_agg(
               jsonb_build_object(
                   'case_id', cp.case_id, 'case_ref', cp.case_ref, 'status', cp.case_status,
                   'role', cp.role
               )
               ORDER BY cp.case_ref, cp.role
           ) AS cases
    FROM reconciled.case_people AS cp
    WHERE cp.person_id = p.person_id
) AS linked ON true;

-- Fuzzy name search: the query is compared by trigrams with the full name, the name
-- without middle names, and (word similarity) any part of the names and aliases, and the
-- best of the three counts; so a misspelled, reordered or partial name still finds the
-- person. With a date of birth the
-- name score is weighted 0.8 and the date 0.2: a match at the precision the record knows
-- counts 1, an unknown date 0.5, a different date 0. Best first, at most 50 rows.
CREATE FUNCTION reconciled.search_person(name text, dob date DEFAULT NULL)
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
LANGUAGE sql STABLE PARALLEL SAFE
-- Below 0.3 a trigram match is mostly noise; the default 0.6 misses ordinary misspellings.
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
    )
    SELECT c.person_id,
           concat_ws(' ', c.given_name, c.middle_name, c.family_name),
           c.aliases,
           c.date_of_birth,
           c.dob_precision,
           c.sex,
           c.agencies,
           round(coalesce(0.8 * c.name_score + 0.2 * c.dob_score, c.name_score)::numeric, 3)::real
               AS score
    FROM candidates AS c
    ORDER BY score DESC, c.family_name, c.given_name, c.person_id
    LIMIT 50
$$;

-- Read-only access for analysts: every table, view and function of the schema, now and
-- in future migrations (default privileges apply to objects this owner creates later).
GRANT USAGE ON SCHEMA reconciled TO tipsync_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA reconciled TO tipsync_analyst;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA reconciled TO tipsync_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA reconciled GRANT SELECT ON TABLES TO tipsync_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA reconciled GRANT EXECUTE ON FUNCTIONS TO tipsync_analyst;
