"""The statements of a country in order from an index, in place of the index on the country alone.

On a live initiative both changes run CONCURRENTLY, outside a transaction, so signing goes on while the
index is built (a plain CREATE or DROP INDEX would hold off every INSERT for as long). Inside a transaction
(onboarding migrates a new, empty schema in one) they run plainly: CONCURRENTLY is refused there."""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

TABLE = "collection_statement"
INDEX = "statement_country_order"


def _concurrently(schema_editor: BaseDatabaseSchemaEditor) -> str:
    return "" if schema_editor.connection.in_atomic_block else " CONCURRENTLY"


def _order_index_create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    schema_editor.execute(
        f'CREATE INDEX{_concurrently(schema_editor)} IF NOT EXISTS "{INDEX}" '
        f'ON "{TABLE}" ("country", "submitted_at", "id")'
    )


def _order_index_drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    schema_editor.execute(f'DROP INDEX{_concurrently(schema_editor)} IF EXISTS "{INDEX}"')


def _country_indexes_drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    for name, constraint in constraints.items():
        if constraint["index"] and not constraint["unique"] and constraint["columns"] == ["country"]:
            schema_editor.execute(f'DROP INDEX{_concurrently(schema_editor)} IF EXISTS "{name}"')


def _country_index_create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    schema_editor.execute(
        f'CREATE INDEX{_concurrently(schema_editor)} IF NOT EXISTS "statement_country" ON "{TABLE}" ("country")'
    )


class Migration(migrations.Migration):
    atomic = False  # CREATE and DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("collection", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="statement",
                    index=models.Index(fields=["country", "submitted_at", "id"], name=INDEX),
                ),
                migrations.AlterField(
                    model_name="statement", name="country", field=models.CharField(max_length=2)
                ),
            ],
            database_operations=[
                migrations.RunPython(_order_index_create, _order_index_drop),
                migrations.RunPython(_country_indexes_drop, _country_index_create),
            ],
        ),
    ]
