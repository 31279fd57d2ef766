"""Synthetic multi-agency task-force data: ``tipsync generate --people N --seed S --out DIR``.

Deterministic (the same seed gives byte-identical files) and streamed to disk (a million
person records in about a minute). No real people: names come from generic lists
(``names.py``) and every name, date of birth, identifier and address is a random combination.

Output layout (paths relative to ``DIR``; details in docs/DEMO_DATA.md)::

    <agency>/<entity>.csv|jsonl        each agency's export in its own shape
    <agency>/<entity>.mapping.yaml     copy of deploy/demo/mappings/<agency>.<entity>.yaml;
                                       absent for police-ctu and prosecutions, whose exports
                                       use the canonical columns
    truth/person_clusters.csv          agency_id, source_record_id, true_person_id,
                                       introduced_in (base | step-<k>)
    truth/case_clusters.csv            agency_id, entity, source_record_id, true_case_id
    truth/bad_rows.jsonl               the deliberately bad rows: agency, entity, file, row,
                                       source_record_id, reason, field, detail
    truth/changes.jsonl                with --updates: step, agency, entity,
                                       source_record_id, change (create | update | delete)
    changes/step-<k>/<agency>/<entity>.csv|jsonl
                                       with --updates: full re-exports after step k
    manifest.json                      every file with agency, entity, path, format, mapping,
                                       rows, bad_rows, step; the truth paths; counts

Modules: ``names`` (word lists), ``variation`` (typos, nicknames, swapped dates, ...),
``shapes`` (an agency's export shape from its mapping file), ``world`` (people, cases and who
records what), ``generate`` (the file writer, ``generate()`` and ``Manifest``), ``commands``
(the CLI).
"""
