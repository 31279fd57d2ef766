-- The other golden records, each with the same pattern as people: the golden row keyed by
-- its golden id, and <entity>_source listing every agency record behind it. Enumerated
-- values (status, parish, roles...) are the contract's symbols; the Avro schemas already
-- restrict them, so the store does not repeat the lists as CHECK constraints that a new
-- symbol would break.

CREATE TABLE reconciled."case" (
    case_id                 uuid    PRIMARY KEY,
    golden_version          bigint  NOT NULL,
    case_ref                text    NOT NULL,
    title                   text,
    status                  text,
    opened_on               date,
    closed_on               date,
    forms_of_exploitation   text[]  NOT NULL DEFAULT '{}',
    parish                  text,
    summary                 text,
    classification          text,
    agencies                text[]  NOT NULL DEFAULT '{}',
    source_count            integer NOT NULL DEFAULT 0 CHECK (source_count >= 0)
);
CREATE INDEX case_case_ref_idx ON reconciled."case" (case_ref);

CREATE TABLE reconciled.report (
    report_id       uuid        PRIMARY KEY,
    golden_version  bigint      NOT NULL,
    channel         text,
    received_at     timestamptz,
    narrative       text,
    parish          text,
    case_ref        text,
    classification  text,
    agencies        text[]      NOT NULL DEFAULT '{}',
    source_count    integer     NOT NULL DEFAULT 0 CHECK (source_count >= 0)
);
CREATE INDEX report_case_ref_idx ON reconciled.report (case_ref);
CREATE INDEX report_received_at_idx ON reconciled.report (received_at);

CREATE TABLE reconciled.organisation (
    organisation_id     uuid    PRIMARY KEY,
    golden_version      bigint  NOT NULL,
    name                text    NOT NULL,
    aliases             text[]  NOT NULL DEFAULT '{}',
    registration_number text,
    org_type            text,
    industry            text,
    addresses           jsonb   NOT NULL DEFAULT '[]',
    phones              text[]  NOT NULL DEFAULT '{}',
    emails              text[]  NOT NULL DEFAULT '{}',
    classification      text,
    agencies            text[]  NOT NULL DEFAULT '{}',
    source_count        integer NOT NULL DEFAULT 0 CHECK (source_count >= 0)
);

CREATE TABLE reconciled.location (
    location_id     uuid             PRIMARY KEY,
    golden_version  bigint           NOT NULL,
    name            text,
    address         text,
    parish          text,
    country         text,
    latitude        double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude       double precision CHECK (longitude BETWEEN -180 AND 180),
    location_role   text,
    classification  text,
    agencies        text[]           NOT NULL DEFAULT '{}',
    source_count    integer          NOT NULL DEFAULT 0 CHECK (source_count >= 0)
);

-- A typed, dated edge between two golden records. The ends are golden ids of the entity
-- named beside them; a person end may name a merged id (reconciled.resolve_person_id).
CREATE TABLE reconciled.link (
    link_id         uuid    PRIMARY KEY,
    golden_version  bigint  NOT NULL,
    from_entity     text    NOT NULL,
    from_id         uuid    NOT NULL,
    to_entity       text    NOT NULL,
    to_id           uuid    NOT NULL,
    link_role       text,
    valid_from      date,
    valid_to        date,
    classification  text,
    agencies        text[]  NOT NULL DEFAULT '{}',
    source_count    integer NOT NULL DEFAULT 0 CHECK (source_count >= 0)
);
CREATE INDEX link_from_idx ON reconciled.link (from_id);
CREATE INDEX link_to_idx ON reconciled.link (to_id);

CREATE TABLE reconciled.case_source (
    agency_id        text        NOT NULL,
    source_record_id text        NOT NULL,
    case_id          uuid        NOT NULL,
    source_version   bigint      NOT NULL,
    event_time       timestamptz,
    deleted          boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (agency_id, source_record_id)
);
CREATE INDEX case_source_case_id_idx ON reconciled.case_source (case_id);

CREATE TABLE reconciled.report_source (
    agency_id        text        NOT NULL,
    source_record_id text        NOT NULL,
    report_id        uuid        NOT NULL,
    source_version   bigint      NOT NULL,
    event_time       timestamptz,
    deleted          boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (agency_id, source_record_id)
);
CREATE INDEX report_source_report_id_idx ON reconciled.report_source (report_id);

CREATE TABLE reconciled.organisation_source (
    agency_id        text        NOT NULL,
    source_record_id text        NOT NULL,
    organisation_id  uuid        NOT NULL,
    source_version   bigint      NOT NULL,
    event_time       timestamptz,
    deleted          boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (agency_id, source_record_id)
);
CREATE INDEX organisation_source_organisation_id_idx
    ON reconciled.organisation_source (organisation_id);

CREATE TABLE reconciled.location_source (
    agency_id        text        NOT NULL,
    source_record_id text        NOT NULL,
    location_id      uuid        NOT NULL,
    source_version   bigint      NOT NULL,
    event_time       timestamptz,
    deleted          boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (agency_id, source_record_id)
);
CREATE INDEX location_source_location_id_idx ON reconciled.location_source (location_id);

CREATE TABLE reconciled.link_source (
    agency_id        text        NOT NULL,
    source_record_id text        NOT NULL,
    link_id          uuid        NOT NULL,
    source_version   bigint      NOT NULL,
    event_time       timestamptz,
    deleted          boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (agency_id, source_record_id)
);
CREATE INDEX link_source_link_id_idx ON reconciled.link_source (link_id);
