-- person_overview asked resolve_person_id of the person end of every person-case link for
-- each person it returned: a read of one person walked the whole link table (about 11 s per
-- person on the demo's data). It now starts from the person: its own id and the ids merged
-- into it (walking golden_record_state down, as resolve_person_id walks it up, to the same
-- depth), then reads only their links through link_from_idx / link_to_idx. Same rows: a link
-- whose person end resolves to the person is exactly a link whose person end is one of them.
CREATE INDEX golden_record_state_merged_into_idx
    ON reconciled.golden_record_state (entity, merged_into) WHERE state = 'merged';

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
    WITH RECURSIVE known_as(id, depth) AS (
        SELECT p.person_id, 0
        UNION ALL
        SELECT s.golden_id, known_as.depth + 1
        FROM known_as
        JOIN reconciled.golden_record_state AS s
          ON s.entity = 'person' AND s.state = 'merged' AND s.merged_into = known_as.id
        WHERE known_as.depth < 64
    )
    SELECT jsonb_agg(
               jsonb_build_object(
                   'case_id', c.case_id, 'case_ref', c.case_ref, 'status', c.status,
                   'role', l.link_role
               )
               ORDER BY c.case_ref, l.link_role
           ) AS cases
    FROM known_as
    JOIN reconciled.link AS l
      ON (l.from_entity = 'PERSON' AND l.to_entity = 'CASE' AND l.from_id = known_as.id)
      OR (l.from_entity = 'CASE' AND l.to_entity = 'PERSON' AND l.to_id = known_as.id)
    JOIN reconciled."case" AS c
      ON c.case_id = CASE WHEN l.from_entity = 'CASE' THEN l.from_id ELSE l.to_id END
) AS linked ON true;
