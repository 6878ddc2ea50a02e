from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        from exports import tasks  # noqa: F401  (declares its tasks: services send them by name, in any process)
        from exports.erasure import erasure_steps_register

        erasure_steps_register()
