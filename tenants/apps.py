from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Initiatives"

    def ready(self) -> None:
        from tenants import guard

        guard.install()
