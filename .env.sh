export PYTHONPATH=/work/wt-ops TIPSYNC_HOME=/work/wt-ops/.tipsync TIPSYNC_CACHE=/work/main/.tipsync/cache
export TIPSYNC_KAFKA_BOOTSTRAP=127.0.0.1:21092 TIPSYNC_REGISTRY_URL=https://127.0.0.1:21081/apis/ccompat/v7
export TIPSYNC_DATABASE_URL='postgresql://tipsync@127.0.0.1:21032/tipsync?passfile=/work/wt-ops/.tipsync/secrets/pgpass&sslmode=verify-full&sslrootcert=/work/wt-ops/.tipsync/secrets/tls/ca.pem'
