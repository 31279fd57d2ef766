-- The data-protection terms an agency shared each record under (issue 15): every source
-- record keeps its event's legal_basis (CONSENT, LEGAL_OBLIGATION, ... of the contract's
-- LegalBasis; NULL for rows written before this migration, until the record changes again)
-- and consent_ref (the agency's reference of the consent record, when the basis is CONSENT),
-- carried in the golden record's `sources`.
--
-- Who reads them (docs/ANALYSTS.md, "Legal basis and consent"):
--   * legal_basis: analysts, on the source rows their clearance shows them. It is a label like
--     the classification, about the agency's processing, not about the person, and the
--     analyst needs it to use a record within the purpose it was shared for (a record shared
--     on CONSENT may be withdrawn and may not be passed on beyond it).
--   * consent_ref: not analysts. It points into an agency's consent register (a form number,
--     a case worker's file), so in an agency's hands it identifies the person who consented,
--     and no analyst's question needs it. The store's owner (the data protection officer
--     works as the administrator, as for `tipsync audit` and `tipsync erase`), the sink
--     (which writes it) and tipsync_auditor (pgaudit's role: it reads nothing, its grants
--     only mark what is logged) keep their table rights.
-- Row-level security is unchanged: a source row an analyst may not see shows neither.
-- A later migration that adds a column to a *_source table grants analysts that column
-- itself (GRANT SELECT (column) ...): they no longer hold SELECT on the whole table.

DO $$
DECLARE
    golden text;
    readable text;
BEGIN
    FOREACH golden IN ARRAY ARRAY['person', 'case', 'report', 'organisation', 'location',
                                  'link']
    LOOP
        EXECUTE format('ALTER TABLE reconciled.%I ADD COLUMN legal_basis text,'
                       ' ADD COLUMN consent_ref text', golden || '_source');
        -- Analysts: every column but consent_ref. A column can only be withheld when the
        -- table-wide SELECT goes (a table grant covers every column, present and future).
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO readable
        FROM pg_attribute AS a
        WHERE a.attrelid = format('reconciled.%I', golden || '_source')::regclass
          AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'consent_ref';
        EXECUTE format('REVOKE SELECT ON reconciled.%I FROM tipsync_analyst',
                       golden || '_source');
        EXECUTE format('GRANT SELECT (%s) ON reconciled.%I TO tipsync_analyst',
                       readable, golden || '_source');
    END LOOP;
END
$$ LANGUAGE plpgsql;
