-- Data-quality issues: values an agency's row had that its producer left out of the record
-- (a date of birth 1943-01-77, a phone that is no number) instead of rejecting the whole
-- record. Each source record keeps the issues of the version applied, as the golden
-- record's `sources` carry them: [{"field": ..., "problem": ...}], a column name and a problem
-- code, never the value. Like every table here, a pure function of the reconciled topics.

ALTER TABLE reconciled.person_source
    ADD COLUMN quality_issues jsonb NOT NULL DEFAULT '[]';
ALTER TABLE reconciled.case_source
    ADD COLUMN quality_issues jsonb NOT NULL DEFAULT '[]';
ALTER TABLE reconciled.report_source
    ADD COLUMN quality_issues jsonb NOT NULL DEFAULT '[]';
ALTER TABLE reconciled.organisation_source
    ADD COLUMN quality_issues jsonb NOT NULL DEFAULT '[]';
ALTER TABLE reconciled.location_source
    ADD COLUMN quality_issues jsonb NOT NULL DEFAULT '[]';
ALTER TABLE reconciled.link_source
    ADD COLUMN quality_issues jsonb NOT NULL DEFAULT '[]';

-- The text of an invalid date of birth, kept for matching when no source has a valid one.
ALTER TABLE reconciled.person ADD COLUMN date_of_birth_text text;

-- One row per value left out: which agency, entity and record, the field and the problem.
-- Deleted source records are left out (their issues are history).
CREATE VIEW reconciled.data_quality_issue AS
SELECT s.entity, s.agency_id, s.source_record_id, s.golden_id, s.source_version,
       s.event_time, q.field, q.problem
FROM (
    SELECT 'person' AS entity, agency_id, source_record_id, person_id AS golden_id,
           source_version, event_time, deleted, quality_issues
    FROM reconciled.person_source
    UNION ALL
    SELECT 'case', agency_id, source_record_id, case_id, source_version, event_time, deleted,
           quality_issues
    FROM reconciled.case_source
    UNION ALL
    SELECT 'report', agency_id, source_record_id, report_id, source_version, event_time,
           deleted, quality_issues
    FROM reconciled.report_source
    UNION ALL
    SELECT 'organisation', agency_id, source_record_id, organisation_id, source_version,
           event_time, deleted, quality_issues
    FROM reconciled.organisation_source
    UNION ALL
    SELECT 'location', agency_id, source_record_id, location_id, source_version, event_time,
           deleted, quality_issues
    FROM reconciled.location_source
    UNION ALL
    SELECT 'link', agency_id, source_record_id, link_id, source_version, event_time, deleted,
           quality_issues
    FROM reconciled.link_source
) AS s
CROSS JOIN LATERAL jsonb_to_recordset(s.quality_issues) AS q(field text, problem text)
WHERE NOT s.deleted;

-- Per agency, entity, field and problem: how many values were left out, in how many of the
-- agency's live records of that entity (what an agency is asked to fix first).
CREATE VIEW reconciled.data_quality_by_agency AS
WITH live AS (
    SELECT agency_id, 'person' AS entity, count(*) AS records
    FROM reconciled.person_source WHERE NOT deleted GROUP BY agency_id
    UNION ALL
    SELECT agency_id, 'case', count(*) FROM reconciled.case_source
    WHERE NOT deleted GROUP BY agency_id
    UNION ALL
    SELECT agency_id, 'report', count(*) FROM reconciled.report_source
    WHERE NOT deleted GROUP BY agency_id
    UNION ALL
    SELECT agency_id, 'organisation', count(*) FROM reconciled.organisation_source
    WHERE NOT deleted GROUP BY agency_id
    UNION ALL
    SELECT agency_id, 'location', count(*) FROM reconciled.location_source
    WHERE NOT deleted GROUP BY agency_id
    UNION ALL
    SELECT agency_id, 'link', count(*) FROM reconciled.link_source
    WHERE NOT deleted GROUP BY agency_id
)
SELECT i.agency_id,
       i.entity,
       i.field,
       i.problem,
       count(*)                            AS values_flagged,
       count(DISTINCT i.source_record_id)  AS records_flagged,
       live.records                        AS records
FROM reconciled.data_quality_issue AS i
JOIN live USING (agency_id, entity)
GROUP BY i.agency_id, i.entity, i.field, i.problem, live.records;

-- Analysts read them like the other views (migration 0003; default privileges cover new
-- objects of this owner too, the grants say it where a reader looks).
GRANT SELECT ON reconciled.data_quality_issue, reconciled.data_quality_by_agency
    TO tipsync_analyst;
