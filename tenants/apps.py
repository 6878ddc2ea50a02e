from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Initiatives"

    def ready(self) -> None:
        from tenants import guard, tasks  # noqa: F401  (declares its tasks: services send them by name, in any process)
        from tenants.account_audit import connect as account_audit_connect

        guard.install()

        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_save

        from tenants.roles import user_roles_check

        # Roles kept apart: an organiser never becomes staff, whichever path saves the user.
        pre_save.connect(user_roles_check, sender=get_user_model(), dispatch_uid="tenants.user_roles_check")
        account_audit_connect()  # account activity as audit events, from Django's signals
