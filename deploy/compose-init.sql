-- First start of the compose PostgreSQL: what `tipsync stack up` sets up for the local stack.
CREATE DATABASE apicurio OWNER tipsync;
CREATE ROLE tipsync_analyst NOLOGIN;
\connect tipsync
CREATE EXTENSION IF NOT EXISTS pg_trgm;
