-- First start of the compose PostgreSQL: what `tipsync stack up` sets up for the local stack.
CREATE DATABASE apicurio OWNER tipsync;
CREATE ROLE tipsync_analyst NOLOGIN;
-- pgaudit's object audit role (migration 0007; the image must load pgaudit, docs/ANALYSTS.md).
CREATE ROLE tipsync_auditor NOLOGIN;
-- The sink's role; its password is set afterwards at psql's prompt (compose.yaml's header).
CREATE ROLE tipsync_sink LOGIN;
\connect tipsync
CREATE EXTENSION IF NOT EXISTS pg_trgm;
