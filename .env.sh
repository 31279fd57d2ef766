export TIPSYNC_HOME=/work/wt-audit/.tipsync TIPSYNC_CACHE=/work/main/.tipsync/cache
export TIPSYNC_KAFKA_BOOTSTRAP=127.0.0.1:24092 TIPSYNC_REGISTRY_URL=http://127.0.0.1:24081/apis/ccompat/v7
export TIPSYNC_DATABASE_URL="postgresql://tipsync@127.0.0.1:24432/tipsync?passfile=/work/wt-audit/.tipsync/secrets/pgpass"
export PYTHONPATH=/work/wt-audit
PY=/work/main/.venv/bin/python
