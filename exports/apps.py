from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.apps import AppConfig

if TYPE_CHECKING:
    from tenants.models import Initiative


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        from exports import tasks  # noqa: F401  (declares its tasks: services send them by name, in any process)
        from exports.erasure import erasure_steps_register

        erasure_steps_register()

        # The operator console's overview counts the export jobs of every initiative (tenants/overview.py).
        from exports.models import ExportJob, ExportJobState
        from tenants.overview import register_activity_counter

        def jobs_in(state: str) -> Callable[[Initiative, datetime.datetime], int]:
            return lambda _initiative, _since: ExportJob.objects.filter(state=state).count()

        register_activity_counter("exports_running", jobs_in(ExportJobState.RUNNING))
        register_activity_counter("exports_queued", jobs_in(ExportJobState.QUEUED))
