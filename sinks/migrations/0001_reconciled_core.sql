-- The reconciled store's core: version bookkeeping, consumed offsets, and people.
--
-- Every table here is a pure function of the reconciled topics: no column is filled from
-- now() or a sequence, so re-consuming the topics from the beginning leaves every row
-- identical. Rows are never deleted by the sink except on a tombstone or a merge.

-- One row per golden id ever seen, whatever its entity: the highest golden_version applied
-- and what became of the record. The version guard lives here rather than in the entity
-- tables so that a tombstoned or merged record still remembers its last version, and a
-- replayed older event can never bring it back.
CREATE TABLE reconciled.golden_record_state (
    entity          text        NOT NULL,
    golden_id       uuid        NOT NULL,
    golden_version  bigint      NOT NULL,
    state           text        NOT NULL CHECK (state IN ('live', 'merged', 'deleted')),
    merged_into     uuid,
    PRIMARY KEY (entity, golden_id),
    CHECK ((state = 'merged') = (merged_into IS NOT NULL))
);

-- The next offset to read per consumer group and partition, written in the same
-- transaction as the rows it produced: the sink seeks here on start, so every event is
-- applied exactly once to the tables even though Kafka delivers it at least once.
CREATE TABLE reconciled.sink_offsets (
    consumer_group  text    NOT NULL,
    topic           text    NOT NULL,
    partition       integer NOT NULL CHECK (partition >= 0),
    next_offset     bigint  NOT NULL CHECK (next_offset >= 0),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- Names and aliases folded into one lower-case string for trigram search. Declared
-- IMMUTABLE (it only joins and lower-cases text) so it can feed a generated column.
CREATE FUNCTION reconciled.person_search_text(
    given_name text, middle_name text, family_name text, aliases text[]
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN lower(
    concat_ws(' ', given_name, middle_name, family_name)
    || coalesce(' | ' || array_to_string(aliases, ' | '), '')
);

-- The golden person: one row per live (not merged, not deleted) golden id.
CREATE TABLE reconciled.person (
    person_id       uuid        PRIMARY KEY,
    golden_version  bigint      NOT NULL,
    given_name      text,
    middle_name     text,
    family_name     text,
    aliases         text[]      NOT NULL DEFAULT '{}',
    date_of_birth   date,
    dob_precision   text        CHECK (dob_precision IN ('DAY', 'MONTH', 'YEAR')),
    sex             text,
    citizenship     text[]      NOT NULL DEFAULT '{}',
    identifiers     jsonb       NOT NULL DEFAULT '[]',
    phones          text[]      NOT NULL DEFAULT '{}',
    emails          text[]      NOT NULL DEFAULT '{}',
    addresses       jsonb       NOT NULL DEFAULT '[]',
    agencies        text[]      NOT NULL DEFAULT '{}',
    source_count    integer     NOT NULL DEFAULT 0 CHECK (source_count >= 0),
    classification  text,
    first_seen      timestamptz,
    last_updated    timestamptz,
    -- Lineage is kept with the row it explains (one write instead of one row per field);
    -- the view reconciled.person_lineage presents it as a table.
    lineage         jsonb       NOT NULL DEFAULT '[]',
    search_text     text        GENERATED ALWAYS AS (
        reconciled.person_search_text(given_name, middle_name, family_name, aliases)
    ) STORED
) WITH (fillfactor = 85);  -- room on the page lets an update stay HOT

CREATE INDEX person_last_updated_idx ON reconciled.person (last_updated);
CREATE INDEX person_date_of_birth_idx ON reconciled.person (date_of_birth);

-- Every source record and the golden person it belongs to now.
CREATE TABLE reconciled.person_source (
    agency_id        text        NOT NULL,
    source_record_id text        NOT NULL,
    person_id        uuid        NOT NULL,
    source_version   bigint      NOT NULL,
    event_time       timestamptz,
    deleted          boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (agency_id, source_record_id)
) WITH (fillfactor = 85);

CREATE INDEX person_source_person_id_idx ON reconciled.person_source (person_id);

-- Which agency and record gave each golden value, and when.
CREATE VIEW reconciled.person_lineage AS
SELECT p.person_id,
       l.field,
       l.agency_id,
       l.source_record_id,
       l.source_version,
       l.event_time
FROM reconciled.person AS p
CROSS JOIN LATERAL jsonb_to_recordset(p.lineage) AS l(
    field text, agency_id text, source_record_id text, source_version bigint,
    event_time timestamptz
);

-- Merged golden ids and their survivors (a chain is possible: A into B, later B into C).
CREATE VIEW reconciled.person_merge AS
SELECT golden_id AS merged_id, merged_into AS survivor_id, golden_version
FROM reconciled.golden_record_state
WHERE entity = 'person' AND state = 'merged';

-- The live golden id a (possibly merged) person id stands for today; the id itself when it
-- was never merged; NULL only for NULL. Follows chains, and stops on a cycle rather than
-- looping (a cycle would be a resolver bug, not something to hang an analyst's query on).
CREATE FUNCTION reconciled.resolve_person_id(person_id uuid) RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (
    WITH RECURSIVE chain(id, depth) AS (
        SELECT person_id, 0
        UNION ALL
        SELECT s.merged_into, chain.depth + 1
        FROM chain
        JOIN reconciled.golden_record_state AS s
          ON s.entity = 'person' AND s.golden_id = chain.id AND s.state = 'merged'
        WHERE chain.depth < 64
    )
    SELECT id FROM chain ORDER BY depth DESC LIMIT 1
);

-- Why two source records were (or were not) linked. Kept as a history: one row per
-- decision, so a later decision never hides an earlier one.
CREATE TABLE reconciled.match_decision (
    left_agency_id          text             NOT NULL,
    left_source_record_id   text             NOT NULL,
    right_agency_id         text             NOT NULL,
    right_source_record_id  text             NOT NULL,
    decided_at              timestamptz      NOT NULL,
    score                   double precision NOT NULL,
    features                jsonb            NOT NULL DEFAULT '{}',
    rule                    text,
    decision                text             NOT NULL
                            CHECK (decision IN ('MATCH', 'NON_MATCH', 'REVIEW')),
    PRIMARY KEY (left_agency_id, left_source_record_id,
                 right_agency_id, right_source_record_id, decided_at)
);

CREATE INDEX match_decision_right_idx
    ON reconciled.match_decision (right_agency_id, right_source_record_id);
