from django.apps import AppConfig


class CollectionConfig(AppConfig):
    name = "collection"
    verbose_name = "Collection"

    def ready(self) -> None:
        from collection import tasks  # noqa: F401  (declares its tasks: services send them by name, in any process)
        from collection.erasure import erasure_steps_register
        from collection.models import ContactEmail, Statement
        from collection.sealed import statement_identity
        from tenants.keyring.registry import SealedTable, register_sealed_table

        register_sealed_table(
            SealedTable(
                model=Statement,
                sealed_field="sealed_personal_data",
                version_field="key_version",
                country_field="country",
                digest_field="index_digest",
                digest_version_field="index_key_version",
                identity=statement_identity,
            )
        )
        register_sealed_table(
            SealedTable(
                model=ContactEmail,
                sealed_field="sealed_email",
                version_field="key_version",
                country_field="scope",
                outlives_statements=True,
            )
        )
        erasure_steps_register()

        # The operator console's overview counts statements without reading one (tenants/overview.py).
        from collection.selectors import counts_published_by_country, statements_submitted_since
        from tenants.overview import register_activity_counter, register_published_counts

        register_activity_counter(
            "statements_today", lambda _initiative, since: statements_submitted_since(since)
        )
        register_published_counts(counts_published_by_country)
