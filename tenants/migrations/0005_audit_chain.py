"""The audit log becomes a chain and append-only: a sequence number, the event's HMAC and the previous
event's; the events already there are chained in the order they were recorded; then a trigger refuses
UPDATE, DELETE and TRUNCATE on the table. The initiative's id is kept without a foreign key constraint,
so deleting an initiative never touches its events."""

import json
from typing import Any

import django.db.models.deletion
from django.db import migrations, models

TRIGGER_SQL = """
CREATE FUNCTION tenants_auditevent_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log (table %) is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER tenants_auditevent_append_only
    BEFORE UPDATE OR DELETE ON tenants_auditevent
    FOR EACH ROW EXECUTE FUNCTION tenants_auditevent_refuse_change();
CREATE TRIGGER tenants_auditevent_no_truncate
    BEFORE TRUNCATE ON tenants_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_auditevent_refuse_change();
"""

REVERSE_TRIGGER_SQL = """
DROP TRIGGER IF EXISTS tenants_auditevent_no_truncate ON tenants_auditevent;
DROP TRIGGER IF EXISTS tenants_auditevent_append_only ON tenants_auditevent;
DROP FUNCTION IF EXISTS tenants_auditevent_refuse_change();
"""


def _without_floats(value: Any) -> Any:
    # The chain takes no floats (jsonb may write them back differently); none are expected here.
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {key: _without_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_floats(item) for item in value]
    return value


def chain_existing_events(apps: Any, schema_editor: Any) -> None:
    from tenants.audit_chain import details_canonical, event_hmac

    AuditEvent = apps.get_model("tenants", "AuditEvent")
    events = AuditEvent.objects.using(schema_editor.connection.alias).order_by("occurred_at", "id")
    if not events.exists():
        return
    from tenants.keyring.providers import key_provider

    key = key_provider().audit_key()
    previous = ""
    for sequence, event in enumerate(events.iterator(chunk_size=2000), start=1):
        details = event.details if isinstance(event.details, dict) else {"value": event.details}
        details = json.loads(details_canonical(_without_floats(details)))
        digest = event_hmac(
            key,
            sequence=sequence,
            event_id=event.id,
            occurred_at=event.occurred_at,
            actor=event.actor,
            action=event.action,
            initiative_id=event.initiative_id,
            initiative_slug=event.initiative_slug,
            details=details,
            previous_hmac=previous,
        )
        AuditEvent.objects.using(schema_editor.connection.alias).filter(pk=event.pk).update(
            sequence=sequence, details=details, hmac=digest, previous_hmac=previous
        )
        previous = digest


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_organiser_invitation"),
    ]

    operations = [
        migrations.AlterModelOptions(name="auditevent", options={"ordering": ["-sequence"]}),
        migrations.AlterField(
            model_name="auditevent",
            name="occurred_at",
            field=models.DateTimeField(db_index=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="initiative",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="audit_events",
                to="tenants.initiative",
            ),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="sequence",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="hmac",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="previous_hmac",
            field=models.CharField(blank=True, default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(chain_existing_events, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="sequence",
            field=models.BigIntegerField(unique=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hmac",
            field=models.CharField(max_length=64, unique=True),
        ),
        migrations.RunSQL(TRIGGER_SQL, REVERSE_TRIGGER_SQL),
    ]
