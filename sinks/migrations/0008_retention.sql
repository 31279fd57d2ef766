-- Retention and erasure (issue 15). Every source record keeps the last day its agency may keep
-- it (the event's retention_until, carried in the golden record's `sources`), so that
-- `tipsync retention enforce` can find the records past it; and every erasure, asked for or
-- by retention, leaves a row in reconciled.erasure_log: who, when, which keys (ids only).

ALTER TABLE reconciled.person_source ADD COLUMN retention_until date;
ALTER TABLE reconciled.case_source ADD COLUMN retention_until date;
ALTER TABLE reconciled.report_source ADD COLUMN retention_until date;
ALTER TABLE reconciled.organisation_source ADD COLUMN retention_until date;
ALTER TABLE reconciled.location_source ADD COLUMN retention_until date;
ALTER TABLE reconciled.link_source ADD COLUMN retention_until date;

-- What retention enforce reads: live source records past their last day.
CREATE INDEX person_source_retention_idx ON reconciled.person_source (retention_until)
    WHERE retention_until IS NOT NULL;
CREATE INDEX case_source_retention_idx ON reconciled.case_source (retention_until)
    WHERE retention_until IS NOT NULL;
CREATE INDEX report_source_retention_idx ON reconciled.report_source (retention_until)
    WHERE retention_until IS NOT NULL;
CREATE INDEX organisation_source_retention_idx ON reconciled.organisation_source
    (retention_until) WHERE retention_until IS NOT NULL;
CREATE INDEX location_source_retention_idx ON reconciled.location_source (retention_until)
    WHERE retention_until IS NOT NULL;
CREATE INDEX link_source_retention_idx ON reconciled.link_source (retention_until)
    WHERE retention_until IS NOT NULL;

-- One row per source record erased. Ids only: no name, no value of the record. Written by
-- `tipsync erase` and `tipsync retention enforce` on the owner's connection before anything
-- is published (an erasure that fails half way is still on record), and completed when done.
CREATE TABLE reconciled.erasure_log (
    erasure_id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_at     timestamptz NOT NULL DEFAULT now(),
    erased_by        text        NOT NULL DEFAULT session_user,  -- the database role
    operator         text        NOT NULL,  -- the login of the person who ran the command
    reason           text        NOT NULL CHECK (reason IN ('request', 'retention')),
    entity           text        NOT NULL,
    agency_id        text        NOT NULL,
    source_record_id text        NOT NULL,
    golden_id        uuid,       -- the golden record it belonged to, when the store had it
    requested_person uuid,       -- the golden person named by `erase --person`, if so
    delete_version   bigint      NOT NULL,  -- the source_version of the DELETE published
    completed_at     timestamptz  -- when the copies tipsync can remove were removed
);

CREATE INDEX erasure_log_record_idx ON reconciled.erasure_log (agency_id, source_record_id);

-- The administrator's only: analysts (and the sink, when it has a role of its own) never
-- read or change it; the owner reads it (`tipsync erase --log`, psql).
REVOKE ALL ON reconciled.erasure_log FROM PUBLIC;
REVOKE ALL ON reconciled.erasure_log FROM tipsync_analyst;
DO $$
BEGIN
    IF to_regrole('tipsync_sink') IS NOT NULL THEN
        EXECUTE 'REVOKE ALL ON reconciled.erasure_log FROM tipsync_sink';
    END IF;
END
$$ LANGUAGE plpgsql;
