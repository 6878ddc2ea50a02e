"""Prometheus metrics (prometheus-client), served on a port of their own (METRICS_PORT), never on the
public hosts.

A separate port rather than a guarded path: no Service or Ingress routes to it, so no Host header, proxy
rule or middleware order can expose it, and it answers while every web worker is busy.

- directory: the multiprocess directory (PROMETHEUS_MULTIPROC_DIR), ready before prometheus-client loads;
- exposition: the HTTP server of gunicorn's master and of the Celery worker's main process, reading
  every process's files, and the figures read at scrape time (queues, jobs, sweeps, destructions);
- http: the request latency histogram; tasks: the Celery task counters.

The apps define their own counters next to what they count (collection/metrics.py, exports/metrics.py).
Labels are bounded sets chosen by the code (outcomes, view names, task names, queue names, states, the
initiative's slug) and never carry personal data.
"""
