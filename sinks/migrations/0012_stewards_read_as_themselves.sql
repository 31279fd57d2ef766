-- Stewards read as themselves (issue 16; docs/ANALYSTS.md "Stewards on the command line").
--
-- `tipsync review list|show|split` and the console's review pages read on the steward's own
-- login, so row-level security decides which pairs and records they get. Two things they need
-- that migrations 0005 and 0007 do not give:
--   * the read audit records the persons they show under paths of their own: review_pair
--     (the two records of a pair side by side: `review list`, `review show`, the console's
--     queue and pair pages) and review_split (a person's source records: `review split`, the
--     console's split page). The recorder (0007) is unchanged: it writes any listed path.
--   * `review decide` refuses a decision about a record the steward may not see. A record
--     the store does not hold (yet) may still be decided about (the resolver keeps the
--     decision and applies it when the record arrives, docs/RESOLUTION.md), so the command
--     must tell "held, beyond your clearance" from "not held": only the owner can, through
--     reconciled.held_person_sources below.

ALTER TABLE reconciled.read_audit DROP CONSTRAINT read_audit_path_check;
ALTER TABLE reconciled.read_audit ADD CONSTRAINT read_audit_path_check
    CHECK (path IN ('search_person', 'person_overview', 'case_people', 'person_lineage',
                    'review_pair', 'review_split'));

-- Which of `keys` (<agency_id>:<source_record_id>) name a person source record the store
-- holds, whoever may see it. Runs with the owner's rights; stewards only (the members of
-- tipsync_steward, a group `tipsync analyst add --steward` makes, so it may not exist yet).
-- The caller takes away what its own (row-level secured) read of person_source returns: the
-- rest is held beyond its clearance. That tells a steward that a key they typed is held,
-- which refusing the decision tells anyway; deciding blindly would tell more (a person who
-- disappears from one's view after a must-link), and would let a steward change people they
-- may not see. Two keys at most a call: the two records of one decision.
CREATE FUNCTION reconciled.held_person_sources(keys text[]) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT coalesce(pg_has_role(session_user, to_regrole('tipsync_steward'), 'MEMBER'),
                    false) THEN
        RAISE EXCEPTION 'only stewards may ask which source records the store holds'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'tipsync analyst add NAME --steward --clearance ... --out FILE';
    END IF;
    -- A decision names two records: no more, so nobody probes keys in bulk through it.
    IF cardinality(keys) > 2 THEN
        RAISE EXCEPTION 'held_person_sources answers about the two records of one decision'
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    RETURN coalesce((
        SELECT array_agg(wanted ORDER BY wanted)
        FROM unnest(keys) AS wanted
        WHERE EXISTS (
            SELECT 1 FROM reconciled.person_source AS s
            WHERE s.agency_id = split_part(wanted, ':', 1)
              AND s.source_record_id = substr(wanted, length(split_part(wanted, ':', 1)) + 2))
    ), ARRAY[]::text[]);
END
$$;
REVOKE ALL ON FUNCTION reconciled.held_person_sources(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reconciled.held_person_sources(text[]) TO tipsync_analyst;
