#!/bin/sh
# The image's entry point: one image, every process of the platform (docs/deploying.md, "The image").
#
#   web                 gunicorn on :8000 (PORT); WEB_CONCURRENCY workers; more options in GUNICORN_CMD_ARGS
#   worker [QUEUES]     a Celery worker for these queues (comma-separated; all four by default)
#   beat                Celery beat, exactly one; its schedule state in /tmp
#   manage COMMAND ...  a management command (django-admin): migrate_platform, createsuperuser, ...
#   anything else       run as given (python, celery, eci-verify-export, ...)
#
# Everything that writes goes to /tmp: the root filesystem may be read-only.
set -eu

command=${1:-web}
[ "$#" -gt 0 ] && shift

case "$command" in
  web)
    # Sync workers: django-tenants keeps the tenant on the thread's connection. Their heartbeat files on
    # /dev/shm when it is there (a disk-backed /tmp can stall them), else /tmp.
    heartbeat=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && heartbeat=/dev/shm
    exec gunicorn eci_platform.wsgi \
      --bind "0.0.0.0:${PORT:-8000}" \
      --workers "${WEB_CONCURRENCY:-2}" \
      --worker-tmp-dir "$heartbeat" \
      "$@"
    ;;
  worker)
    queues=${1:-default,exports,keys,maintenance}
    [ "$#" -gt 0 ] && shift
    exec celery -A eci_platform worker --queues "$queues" --concurrency "${WORKER_CONCURRENCY:-2}" \
      --loglevel "${LOG_LEVEL:-INFO}" "$@"
    ;;
  beat)
    exec celery -A eci_platform beat --schedule /tmp/celerybeat-schedule \
      --loglevel "${LOG_LEVEL:-INFO}" "$@"
    ;;
  manage)
    exec django-admin "$@"
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
