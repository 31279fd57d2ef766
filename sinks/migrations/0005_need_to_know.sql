-- Need to know: every analyst is a person with a clearance, and row-level security, forced,
-- decides what each one sees.
--
-- Classifications rank OFFICIAL (1) < SENSITIVE (2) < VICTIM_PROTECTED (3); an unknown or
-- missing classification ranks 3 (a row nobody labelled is treated as the most protected).
-- An analyst (a login role in tipsync_analyst) has a row in reconciled.analyst_clearance:
-- a clearance and, optionally, the agencies whose records they may see. Without a row an
-- analyst sees nothing. The rules (docs/ANALYSTS.md, "What each clearance sees"):
--   * a golden row (person, case, report, organisation, location, link) is visible when its
--     classification (the most protective of its sources) is within the clearance and, with
--     an agency list, every agency holding it is in the list; a link also needs both of its
--     ends visible, so a link never names a record the analyst cannot see;
--   * a source row (<entity>_source) is visible when its golden row is visible and its agency
--     is in the list. The reconciled contract carries no per-source classification yet, so a
--     source takes its golden record's classification;
--   * a match decision is visible when both of its source records are visible;
--   * golden_record_state shows analysts only people: a live id when the person is visible,
--     a merged id when its survivor is a visible person; deleted ids and other entities never;
--   * every analyst-facing view runs with the analyst's rights (security_invoker), and the
--     analyst-facing functions are SECURITY INVOKER, so they obey the same rules.
-- The store's writer (the schema's owner, which the sink runs as, or a role tipsync_sink if
-- an administrator created one) keeps reading and writing every row through a policy of its
-- own; FORCE makes the owner subject to RLS too, so that policy is what lets it write.

-- Who may see what. Owned by the schema's owner; analysts have no right on it at all.
CREATE TABLE reconciled.analyst_clearance (
    role_name   name        PRIMARY KEY,
    clearance   text        NOT NULL
                CHECK (clearance IN ('OFFICIAL', 'SENSITIVE', 'VICTIM_PROTECTED')),
    -- NULL: every agency; otherwise only records of these agencies.
    agencies    text[]      CHECK (agencies IS NULL OR cardinality(agencies) > 0),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    granted_by  name        NOT NULL DEFAULT current_user
);

-- Tables and views added by later migrations are no longer readable by analysts by default:
-- a migration that adds one grants SELECT itself, together with its row-level security
-- policy (tests/integration/test_need_to_know.py fails on a readable table without forced
-- RLS or a readable view without security_invoker).
ALTER DEFAULT PRIVILEGES IN SCHEMA reconciled REVOKE SELECT ON TABLES FROM tipsync_analyst;
REVOKE ALL ON reconciled.analyst_clearance FROM PUBLIC, tipsync_analyst;
-- Bookkeeping of the sink and the migration runner: nothing an analyst needs.
REVOKE ALL ON reconciled.sink_offsets, reconciled.schema_migrations FROM tipsync_analyst;

-- One's own clearance, and only one's own. Deliberately NOT security_invoker: it reads the
-- clearance table with its owner's rights, and current_user is still the analyst who asks.
CREATE VIEW reconciled.my_clearance AS
SELECT role_name, clearance, agencies
FROM reconciled.analyst_clearance
WHERE role_name = current_user;
GRANT SELECT ON reconciled.my_clearance TO tipsync_analyst;

CREATE FUNCTION reconciled.classification_rank(classification text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE classification WHEN 'OFFICIAL' THEN 1 WHEN 'SENSITIVE' THEN 2 ELSE 3 END;

-- The current role's clearance rank; 0 (sees nothing) without a clearance row.
CREATE FUNCTION reconciled.clearance_rank() RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
RETURN coalesce(
    (SELECT reconciled.classification_rank(c.clearance) FROM reconciled.my_clearance AS c), 0
);

-- The current role's agencies; NULL for every agency (or no clearance, which rank 0 stops).
CREATE FUNCTION reconciled.clearance_agencies() RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (SELECT c.agencies FROM reconciled.my_clearance AS c);

-- The store's writer: whoever has the rights of the schema's owner (the sink on the local
-- stack runs as the owner), or of a role tipsync_sink when an administrator created one
-- (docs/ANALYSTS.md, "The sink's own role"). Analysts are neither.
CREATE FUNCTION reconciled.is_store_writer() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_has_role(
           current_user,
           (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'reconciled'),
           'USAGE')
    OR coalesce(pg_has_role(current_user, to_regrole('tipsync_sink'), 'USAGE'), false);

-- Whether the current role may see a golden record, by the link end's entity name
-- (PERSON, CASE...; a person end may name a merged id). Reads the tables with the caller's
-- rights, so their policies decide. LINK ends are not followed (links never end on links).
CREATE FUNCTION reconciled.golden_visible(entity text, golden_id uuid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE upper(entity)
    WHEN 'PERSON' THEN EXISTS (
        SELECT 1 FROM reconciled.person AS p
        WHERE p.person_id = reconciled.resolve_person_id(golden_id))
    WHEN 'CASE' THEN EXISTS (
        SELECT 1 FROM reconciled."case" AS c WHERE c.case_id = golden_id)
    WHEN 'REPORT' THEN EXISTS (
        SELECT 1 FROM reconciled.report AS r WHERE r.report_id = golden_id)
    WHEN 'ORGANISATION' THEN EXISTS (
        SELECT 1 FROM reconciled.organisation AS o WHERE o.organisation_id = golden_id)
    WHEN 'LOCATION' THEN EXISTS (
        SELECT 1 FROM reconciled.location AS l WHERE l.location_id = golden_id)
    ELSE false
END;

-- Policies are named so that the writer's (sink_writes) sorts, and is evaluated, before the
-- analysts' (within_clearance): the owner is a member of tipsync_analyst on the local stack
-- (it holds the group WITH ADMIN OPTION), so both apply to it, and the cheap one decides.

-- Golden tables: the classification and, with an agency list, every agency.
DO $$
DECLARE
    golden text;
BEGIN
    FOREACH golden IN ARRAY ARRAY['person', 'case', 'report', 'organisation', 'location',
                                  'link']
    LOOP
        EXECUTE format('ALTER TABLE reconciled.%I ENABLE ROW LEVEL SECURITY', golden);
        EXECUTE format('ALTER TABLE reconciled.%I FORCE ROW LEVEL SECURITY', golden);
        EXECUTE format(
            'CREATE POLICY sink_writes ON reconciled.%I FOR ALL TO PUBLIC'
            ' USING ((SELECT reconciled.is_store_writer()))'
            ' WITH CHECK ((SELECT reconciled.is_store_writer()))', golden);
        EXECUTE format(
            'CREATE POLICY within_clearance ON reconciled.%I FOR SELECT TO tipsync_analyst'
            ' USING (reconciled.classification_rank(classification)'
            '            <= (SELECT reconciled.clearance_rank())'
            '        AND ((SELECT reconciled.clearance_agencies()) IS NULL'
            '             OR agencies <@ (SELECT reconciled.clearance_agencies()))%s)',
            golden,
            CASE WHEN golden = 'link' THEN
                ' AND reconciled.golden_visible(from_entity, from_id)'
                ' AND reconciled.golden_visible(to_entity, to_id)'
            ELSE '' END);
    END LOOP;
END
$$ LANGUAGE plpgsql;

-- Source tables: the golden record visible (its policy decides) and the agency in the list.
DO $$
DECLARE
    golden text;
    id_column text;
BEGIN
    FOREACH golden IN ARRAY ARRAY['person', 'case', 'report', 'organisation', 'location',
                                  'link']
    LOOP
        id_column := golden || '_id';
        EXECUTE format('ALTER TABLE reconciled.%I ENABLE ROW LEVEL SECURITY', golden || '_source');
        EXECUTE format('ALTER TABLE reconciled.%I FORCE ROW LEVEL SECURITY', golden || '_source');
        EXECUTE format(
            'CREATE POLICY sink_writes ON reconciled.%I FOR ALL TO PUBLIC'
            ' USING ((SELECT reconciled.is_store_writer()))'
            ' WITH CHECK ((SELECT reconciled.is_store_writer()))', golden || '_source');
        EXECUTE format(
            'CREATE POLICY within_clearance ON reconciled.%1$I FOR SELECT TO tipsync_analyst'
            ' USING ((SELECT reconciled.clearance_rank()) > 0'
            '        AND ((SELECT reconciled.clearance_agencies()) IS NULL'
            '             OR ARRAY[agency_id] <@ (SELECT reconciled.clearance_agencies()))'
            '        AND EXISTS (SELECT 1 FROM reconciled.%2$I AS g'
            '                    WHERE g.%3$I = %1$I.%3$I))',
            golden || '_source', golden, id_column);
    END LOOP;
END
$$ LANGUAGE plpgsql;

-- Match decisions: both source records visible (person_source's policy decides).
ALTER TABLE reconciled.match_decision ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciled.match_decision FORCE ROW LEVEL SECURITY;
CREATE POLICY sink_writes ON reconciled.match_decision FOR ALL TO PUBLIC
    USING ((SELECT reconciled.is_store_writer()))
    WITH CHECK ((SELECT reconciled.is_store_writer()));
CREATE POLICY within_clearance ON reconciled.match_decision FOR SELECT TO tipsync_analyst
    USING ((SELECT reconciled.clearance_rank()) > 0
           AND EXISTS (SELECT 1 FROM reconciled.person_source AS s
                       WHERE s.agency_id = match_decision.left_agency_id
                         AND s.source_record_id = match_decision.left_source_record_id)
           AND EXISTS (SELECT 1 FROM reconciled.person_source AS s
                       WHERE s.agency_id = match_decision.right_agency_id
                         AND s.source_record_id = match_decision.right_source_record_id));

-- Golden ids ever seen: analysts see people only, live ones when visible and merged ones
-- when their survivor is a visible person (one hop: an id whose survivor was merged again
-- later stays hidden from analysts, see docs/ANALYSTS.md). Deleted ids carry no
-- classification any more, so no analyst sees them.
ALTER TABLE reconciled.golden_record_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciled.golden_record_state FORCE ROW LEVEL SECURITY;
CREATE POLICY sink_writes ON reconciled.golden_record_state FOR ALL TO PUBLIC
    USING ((SELECT reconciled.is_store_writer()))
    WITH CHECK ((SELECT reconciled.is_store_writer()));
CREATE POLICY within_clearance ON reconciled.golden_record_state FOR SELECT TO tipsync_analyst
    USING ((SELECT reconciled.clearance_rank()) > 0
           AND entity = 'person'
           AND CASE state
                   WHEN 'live' THEN EXISTS (
                       SELECT 1 FROM reconciled.person AS p
                       WHERE p.person_id = golden_record_state.golden_id)
                   WHEN 'merged' THEN EXISTS (
                       SELECT 1 FROM reconciled.person AS p
                       WHERE p.person_id = golden_record_state.merged_into)
                   ELSE false
               END);

-- Views run with the rights of whoever queries them, so the policies above apply through
-- them (a view left to its owner's rights would show an analyst every row).
ALTER VIEW reconciled.person_lineage SET (security_invoker = true);
ALTER VIEW reconciled.person_merge SET (security_invoker = true);
ALTER VIEW reconciled.case_people SET (security_invoker = true);
ALTER VIEW reconciled.person_overview SET (security_invoker = true);
ALTER VIEW reconciled.data_quality_issue SET (security_invoker = true);
ALTER VIEW reconciled.data_quality_by_agency SET (security_invoker = true);
