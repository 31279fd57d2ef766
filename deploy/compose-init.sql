-- First start of the compose PostgreSQL: what `tipsync stack up` sets up for the local stack.
CREATE DATABASE apicurio OWNER tipsync;
CREATE ROLE tipsync_analyst NOLOGIN;
-- The sink's role; its password is set afterwards at psql's prompt (compose.yaml's header).
CREATE ROLE tipsync_sink LOGIN;
\connect tipsync
CREATE EXTENSION IF NOT EXISTS pg_trgm;
