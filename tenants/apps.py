from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Initiatives"

    def ready(self) -> None:
        from tenants import guard, tasks  # noqa: F401  (declares its tasks: services send them by name, in any process)
        from tenants.account_audit import connect as account_audit_connect

        guard.install()
        account_audit_connect()  # account activity as audit events, from Django's signals
