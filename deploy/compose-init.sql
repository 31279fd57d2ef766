-- First start of the compose PostgreSQL: what `tipsync stack up` sets up for the local stack.
CREATE DATABASE apicurio OWNER tipsync;
CREATE ROLE tipsync_analyst NOLOGIN;
-- pgaudit's object audit role (migration 0006; the image must load pgaudit, docs/ANALYSTS.md).
CREATE ROLE tipsync_auditor NOLOGIN;
\connect tipsync
CREATE EXTENSION IF NOT EXISTS pg_trgm;
