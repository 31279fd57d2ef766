"""The task force's console (``tipsync console``): a web application over the reconciled store.

Every page an analyst opens runs as that analyst's own PostgreSQL role (``sessions``), so
row-level security and the read audit decide what it shows, exactly as for ``psql`` or
``tipsync search person``. The console holds no data of its own; operators' pages (pipeline
status) read Kafka with the ``monitor`` principal, and stewards' decisions go to Kafka with
the ``steward`` principal. docs/CONSOLE.md says what each page shows and how it is secured.
"""
