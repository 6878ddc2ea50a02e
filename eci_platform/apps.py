from django.apps import AppConfig


class EciPlatformConfig(AppConfig):
    name = "eci_platform"
    verbose_name = "ECI platform"

    def ready(self) -> None:
        from django.conf import settings
        from django.contrib.auth.signals import user_logged_in

        if settings.BUILD_MODE:
            from eci_platform.build_mode import refuse_unless_building_assets

            refuse_unless_building_assets()

        from eci_platform.session_limits import session_stamp

        # Every sign-in, on either console, starts the clock of the session limits.
        user_logged_in.connect(session_stamp, dispatch_uid="eci_platform.session_stamp")
