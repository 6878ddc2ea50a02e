"""Key management: the key provider that holds each initiative's key-encryption key."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from eci_platform.embedded import development_key_path
from eci_platform.settings.environment import DEBUG, env, optional, required

KEY_PROVIDER = required("KEY_PROVIDER", dev_default="local")

# local: a 256-bit master key (base64) from the environment or a secret file, and the folder that keeps
# one wrapped KEK file per initiative (keep it out of database backups: that is what makes shredding
# reach the backups too). In development both default to the data folder; the `dev` runner and the test
# setup generate the master key there (eci_platform/development.py), the keystore fills as it is used.
LOCAL_MASTER_KEY = optional("LOCAL_MASTER_KEY")
LOCAL_MASTER_KEY_FILE = optional("LOCAL_MASTER_KEY_FILE")
LOCAL_KEYSTORE_DIR = optional("LOCAL_KEYSTORE_DIR")
if KEY_PROVIDER == "local" and DEBUG and not (LOCAL_MASTER_KEY or LOCAL_MASTER_KEY_FILE):
    LOCAL_MASTER_KEY_FILE = str(development_key_path("master.key"))
if KEY_PROVIDER == "local" and not LOCAL_KEYSTORE_DIR:
    if not DEBUG:
        raise ImproperlyConfigured(
            "The environment variable LOCAL_KEYSTORE_DIR is required (KEY_PROVIDER=local)."
        )
    LOCAL_KEYSTORE_DIR = str(development_key_path("keystore"))
if KEY_PROVIDER == "local" and not DEBUG and not (LOCAL_MASTER_KEY or LOCAL_MASTER_KEY_FILE):
    raise ImproperlyConfigured(
        "The environment variable LOCAL_MASTER_KEY or LOCAL_MASTER_KEY_FILE is required (KEY_PROVIDER=local)."
    )

# aws-kms: any KMS-compatible endpoint; credentials come the usual boto3 way (environment, role).
AWS_KMS_ENDPOINT_URL = optional("AWS_KMS_ENDPOINT_URL")
AWS_REGION = optional("AWS_REGION", "eu-central-1")
AWS_KMS_DELETION_WINDOW_DAYS = env.int("AWS_KMS_DELETION_WINDOW_DAYS", default=7)
# The HMAC key (KeySpec HMAC_256) the audit log's chain key comes from: an alias (created on first use)
# or a key id/ARN made beforehand.
AWS_KMS_AUDIT_KEY = optional("AWS_KMS_AUDIT_KEY", "alias/eci-platform-audit-log")

# How long a process trusts its cached view of an initiative's keys. A new version is announced
# pending and becomes primary KEY_PROPAGATION_SECONDS later (> the cache time), so every process has
# seen it before it is written with.
KEY_CACHE_SECONDS = env.float("KEY_CACHE_SECONDS", default=30.0)
KEY_PROPAGATION_SECONDS = env.float("KEY_PROPAGATION_SECONDS", default=2 * KEY_CACHE_SECONDS + 5)
# A sweep starts this long after the cache time has passed since its key became primary: the slack
# for a write that read the old primary just before the switch and commits a little later.
KEY_WRITE_MARGIN_SECONDS = env.float("KEY_WRITE_MARGIN_SECONDS", default=10.0)
REENCRYPTION_MAX_ATTEMPTS = env.int("REENCRYPTION_MAX_ATTEMPTS", default=10)
REENCRYPTION_BATCH_SIZE = env.int("REENCRYPTION_BATCH_SIZE", default=5000)
REENCRYPTION_LEASE_SECONDS = env.float("REENCRYPTION_LEASE_SECONDS", default=120.0)
