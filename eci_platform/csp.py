"""django-csp's middleware with the policy string built once per process.

Our pages use the settings' policy unchanged (no nonces, no per-view decorators), and rebuilding the same
string for every response cost more than all the other security headers together on the signing path.
A response that carries a per-view policy or used a nonce goes through django-csp unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from django.http.response import HttpResponseBase

PER_RESPONSE_ATTRIBUTES = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_exempt",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt_ro",
)


@functools.cache
def settings_policies() -> tuple[str, str]:
    """The policy and the report-only policy of the settings, as header values."""
    return build_policy(), build_policy(report_only=True)


@receiver(setting_changed)
def _settings_policies_forget(*, setting: str, **_: Any) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        settings_policies.cache_clear()


def _excluded_prefixes() -> bool:
    # Paths left out of a policy are django-csp's to judge; none are configured here.
    return any(
        (getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES")
        for name in ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY")
    )


class SettingsPolicyCSPMiddleware(CSPMiddleware):
    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        custom = (
            settings.DEBUG  # django-csp leaves Django's debug pages alone
            or getattr(request, "_csp_nonce", None) is not None
            or any(hasattr(response, name) for name in PER_RESPONSE_ATTRIBUTES)
            or HEADER in response
            or HEADER_REPORT_ONLY in response
            or _excluded_prefixes()
        )
        if custom:
            return super().process_response(request, response)
        policy, report_only = settings_policies()
        if policy:
            response[HEADER] = policy
        if report_only:
            response[HEADER_REPORT_ONLY] = report_only
        # As in django-csp: asking for a nonce once the header is written is an error, not a silent gap.
        setattr(request, "csp_nonce", CheckableLazyObject(self._csp_nonce_post_response))  # noqa: B010
        return response


def security_headers_set(response: HttpResponseBase) -> HttpResponseBase:
    """The headers the security and CSP middleware add, for an answer that leaves before they run (host
    routing's 404, a 500 raised there). Where they run after all, they keep what is set."""
    policy, _report_only = settings_policies()
    if policy:
        response.setdefault(HEADER, policy)
    response.setdefault("X-Content-Type-Options", "nosniff")
    response.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
    response.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
    return response
