"""The least a Python process can do for one signature with the platform's I/O, without Django: a scale
for the signing benchmark, as pgbench is for PostgreSQL. Served by the same gunicorn as the platform.

Per POST: parse the form body, compare the CSRF token with the cookie, run the rate-limit and proof
script of collection.ratelimit in Redis (one round trip, same keys), seal the answers with AES-256-GCM,
compute an index digest, and insert one row with the statement table's columns and indexes with the
platform's INSERT ... ON CONFLICT (one round trip); answer 303. No validation, no templates, no
middleware: what it costs is what any Python web process pays for this work on the machine.

Environment: FLOOR_DATABASE_URL (its table, FLOOR_TABLE, must exist), FLOOR_REDIS_URL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import psycopg
import redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The same Lua the signing path runs; importing the module touches no Django setting.
from collection.ratelimit import _ATTEMPT_SCRIPT

FLOOR_TABLE = "public.bench_signing_floor"
_SECRET = os.urandom(32)
_CIPHER = AESGCM(os.urandom(32))
_PERSONAL_FIELDS = (
    *("first_names", "family_names", "document_type", "document_number", "street", "street_number"),
    *("postal_code", "city", "country_of_residence", "date_of_birth"),
)
_connections: dict[str, Any] = {}


def _connected() -> tuple[psycopg.Connection[Any], Any]:
    if not _connections:  # one of each per gunicorn worker, made on its first request
        _connections["database"] = psycopg.connect(os.environ["FLOOR_DATABASE_URL"], autocommit=True)
        client = redis.Redis.from_url(os.environ["FLOOR_REDIS_URL"])
        _connections["script"] = client.register_script(_ATTEMPT_SCRIPT)
    return _connections["database"], _connections["script"]


def application(environ: dict[str, Any], start_response: Callable[..., object]) -> Iterable[bytes]:
    database, attempt_script = _connected()
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    form = dict(parse_qsl(body.decode()))
    cookie = environ.get("HTTP_COOKIE", "").partition("csrftoken=")[2][:64]
    if not form.get("csrfmiddlewaretoken") or not cookie:
        start_response("403 Forbidden", [("Content-Length", "0")])
        return [b""]
    hmac.compare_digest(hmac.digest(_SECRET, form["csrfmiddlewaretoken"].encode(), "sha256"),
                        hmac.digest(_SECRET, cookie.encode(), "sha256"))  # fmt: skip
    spent_key = hashlib.sha256(form.get("altcha", "").encode()).hexdigest()
    window = int(time.time() // 60)
    bucket_keys = [
        hmac.digest(_SECRET, f"{environ.get('REMOTE_ADDR', '')}/{prefix}".encode(), "sha256").hex()[:32]
        + f":{window}"
        for prefix in (32, 24)
    ]
    attempt_script(keys=[*bucket_keys, spent_key], args=[len(bucket_keys), 120, 3600])
    answers = {name: form[name] for name in _PERSONAL_FIELDS if name in form}
    record_id = uuid.uuid4()
    nonce = os.urandom(12)
    sealed = nonce + _CIPHER.encrypt(nonce, json.dumps(answers, sort_keys=True).encode(), record_id.bytes)
    digest = hmac.digest(_SECRET, json.dumps(answers, sort_keys=True).encode(), "sha256")
    with database.cursor() as cursor:
        cursor.execute(
            f"WITH new_statement AS (INSERT INTO {FLOOR_TABLE} "  # noqa: S608  (a constant)
            "(id, country, form_revision, submitted_at, key_version, index_digest, index_key_version, "
            "sealed_personal_data) VALUES (%s, 'AT', 'floor', now(), 1, %s, 1, %s) "
            "ON CONFLICT (index_digest) DO NOTHING RETURNING id) SELECT count(*) FROM new_statement",
            [record_id, digest, sealed],
        )
        cursor.fetchone()
    start_response(
        "303 See Other",
        [("Location", f"/receipt/{record_id}/"), ("Content-Length", "0"), ("Cache-Control", "no-store")],
    )
    return [b""]
