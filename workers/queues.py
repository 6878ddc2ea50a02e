"""The queues, one constant: a task named `<queue>.<what>` goes to that queue (see routing.py)."""

from __future__ import annotations

# default: counts and small work; exports: the long export jobs; keys: rotation and re-encryption;
# maintenance: provisioning and the calendar.
QUEUES = ("default", "exports", "keys", "maintenance")
