"""Signing attempts, counted by outcome and initiative (see eci_platform/metrics/).

The slug is the only initiative label: there are as many as the operator onboarded (tens, not
thousands), an unknown host never reaches a view, and a slug is public. No country label: outcome x
initiative x 27 countries would multiply the series for little (the counts per country are published by
/api/counts.json)."""

from __future__ import annotations

from prometheus_client import Counter

# The outcomes views.sign_form reports, a closed set: accepted, duplicate, invalid, rate-limited,
# closed (outside the collection period), proof-missing, proof-invalid, proof-too_easy, proof-replayed.
STATEMENT_ATTEMPTS = Counter(
    "eci_statement_attempts_total",
    "Signing attempts (POST /sign/<CC>/) by outcome and initiative.",
    ["outcome", "initiative"],
)
