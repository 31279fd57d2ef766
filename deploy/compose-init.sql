-- First start of the compose PostgreSQL, after 10-roles.sql (the login roles `tipsync deploy
-- compose` made with SCRAM verifiers): what `tipsync stack up` sets up for the local stack
-- (deploy/stack/postgres.py), as the image's superuser tipsync_admin.
CREATE DATABASE tipsync OWNER tipsync;
CREATE DATABASE apicurio OWNER apicurio;
-- The analysts' group; analysts are added by `tipsync analyst add` (docs/ANALYSTS.md).
CREATE ROLE tipsync_analyst NOLOGIN;
-- pgaudit's object audit role (migration 0007). The postgres image carries no pgaudit: its
-- read audit lines need an image with Debian's postgresql-15-pgaudit (docs/DEPLOYMENT.md).
CREATE ROLE tipsync_auditor NOLOGIN;
\connect tipsync
CREATE EXTENSION IF NOT EXISTS pg_trgm;
