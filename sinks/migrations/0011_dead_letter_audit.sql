-- Who looked into or replayed which dead letter, and when (`tipsync dlq`, docs/OPERATIONS.md
-- "Dead letters"). Ids only: a dead letter's ID is its place on tip.dlq.<stage>
-- (<stage>:<partition>:<offset>), never its key or value. Written on the owner's connection
-- before anything is shown or published (a replay that fails half way is still on record),
-- and completed with where each replayed message went.
CREATE TABLE reconciled.dead_letter_audit (
    audit_id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_at        timestamptz NOT NULL DEFAULT now(),
    database_role       text        NOT NULL DEFAULT session_user,
    operator            text        NOT NULL,  -- the login of the person who ran the command
    kafka_principal     text        NOT NULL,  -- who read the letter and published the replay
    action              text        NOT NULL CHECK (action IN ('replay', 'payload')),
    run_id              uuid        NOT NULL,  -- the rows of one command share it
    topic_root          text        NOT NULL,
    dead_letter_id      text        NOT NULL,
    reason              text        NOT NULL,
    target_topic        text,       -- replay: where it was published
    published_partition integer,
    published_offset    bigint,
    completed_at        timestamptz  -- replay: when Kafka acknowledged it
);
CREATE INDEX dead_letter_audit_letter_idx
    ON reconciled.dead_letter_audit (topic_root, dead_letter_id);

-- The owner's (and the data protection officer's, through the owner) only.
REVOKE ALL ON reconciled.dead_letter_audit FROM PUBLIC;
REVOKE ALL ON reconciled.dead_letter_audit FROM tipsync_analyst;
DO $$
BEGIN
    IF to_regrole('tipsync_sink') IS NOT NULL THEN
        EXECUTE 'REVOKE ALL ON reconciled.dead_letter_audit FROM tipsync_sink';
    END IF;
END
$$ LANGUAGE plpgsql;
