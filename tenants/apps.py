from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Initiatives"

    def ready(self) -> None:
        from tenants import guard, tasks  # noqa: F401  (declares its tasks: services send them by name, in any process)

        guard.install()
