"""The second factor's secrets out of reach of a database copy: TOTP secrets sealed, backup codes kept as
HMACs (tenants/keyring/account_secrets.py). Devices made before move over, and django-otp's clear rows
go."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _devices_move(apps, schema_editor):  # type: ignore[no-untyped-def]
    from tenants.keyring.account_secrets import backup_code_digest, totp_secret_seal

    old_totp = apps.get_model("otp_totp", "TOTPDevice")
    old_static = apps.get_model("otp_static", "StaticDevice")
    sealed_totp = apps.get_model("tenants", "SealedTOTPDevice")
    backup_devices = apps.get_model("tenants", "BackupCodeDevice")
    backup_codes = apps.get_model("tenants", "BackupCode")
    for device in old_totp.objects.all():
        sealed_totp.objects.create(
            user_id=device.user_id,
            name=device.name,
            confirmed=device.confirmed,
            sealed_key=totp_secret_seal(bytes.fromhex(device.key), user_id=device.user_id),
            step=device.step,
            t0=device.t0,
            digits=device.digits,
            tolerance=device.tolerance,
            drift=device.drift,
            last_t=device.last_t,
        )
        device.delete()
    for device in old_static.objects.all():
        moved = backup_devices.objects.create(
            user_id=device.user_id, name=device.name, confirmed=device.confirmed
        )
        backup_codes.objects.bulk_create(
            [
                backup_codes(device=moved, digest=backup_code_digest(token.token, user_id=device.user_id))
                for token in device.token_set.all()
            ]
        )
        device.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0005_audit_chain"),
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="BackupCodeDevice",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.CharField(help_text="The human-readable name of this device.", max_length=64),
                ),
                ("confirmed", models.BooleanField(default=True, help_text="Is this device ready for use?")),
                (
                    "throttling_failure_timestamp",
                    models.DateTimeField(
                        blank=True,
                        default=None,
                        help_text="A timestamp of the last failed verification attempt. Null if last attempt succeeded.",
                        null=True,
                    ),
                ),
                (
                    "throttling_failure_count",
                    models.PositiveIntegerField(default=0, help_text="Number of successive failed attempts."),
                ),
                (
                    "user",
                    models.ForeignKey(
                        help_text="The user that this device belongs to.",
                        on_delete=django.db.models.deletion.CASCADE,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "backup codes",
                "abstract": False,
            },
        ),
        migrations.CreateModel(
            name="SealedTOTPDevice",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.CharField(help_text="The human-readable name of this device.", max_length=64),
                ),
                ("confirmed", models.BooleanField(default=True, help_text="Is this device ready for use?")),
                (
                    "throttling_failure_timestamp",
                    models.DateTimeField(
                        blank=True,
                        default=None,
                        help_text="A timestamp of the last failed verification attempt. Null if last attempt succeeded.",
                        null=True,
                    ),
                ),
                (
                    "throttling_failure_count",
                    models.PositiveIntegerField(default=0, help_text="Number of successive failed attempts."),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        auto_now_add=True,
                        help_text="The date and time when this device was initially created in the system.",
                        null=True,
                    ),
                ),
                (
                    "last_used_at",
                    models.DateTimeField(
                        blank=True, help_text="The most recent date and time this device was used.", null=True
                    ),
                ),
                (
                    "sealed_key",
                    models.BinaryField(
                        help_text="The TOTP secret, sealed under a key from the key provider."
                    ),
                ),
                ("step", models.PositiveSmallIntegerField(default=30)),
                ("t0", models.BigIntegerField(default=0)),
                ("digits", models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)),
                ("tolerance", models.PositiveSmallIntegerField(default=1)),
                ("drift", models.SmallIntegerField(default=0)),
                (
                    "last_t",
                    models.BigIntegerField(default=-1, help_text="The time step of the last code accepted."),
                ),
                (
                    "user",
                    models.ForeignKey(
                        help_text="The user that this device belongs to.",
                        on_delete=django.db.models.deletion.CASCADE,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "TOTP device",
                "abstract": False,
            },
        ),
        migrations.CreateModel(
            name="BackupCode",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("digest", models.CharField(max_length=64)),
                (
                    "device",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="codes",
                        to="tenants.backupcodedevice",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("device", "digest"), name="backup_code_unique")
                ],
            },
        ),
        migrations.RunPython(_devices_move, migrations.RunPython.noop),
    ]
