"""django-tenants: one schema per initiative, created by cloning a migrated template schema."""

TENANT_MODEL = "tenants.Initiative"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# New initiative schemas are cloned from this template (kept migrated by `migrate_platform`), so
# onboarding never runs the migrations from scratch (see tenants.onboarding._schema_create).
INITIATIVE_TEMPLATE_SCHEMA = "tenant_template"
# Raise when code queries a tenant table while the connection is on the public schema.
TENANT_TABLE_GUARD = True
# Set search_path once per schema change, not before every query. django-tenants forgets the setting on
# every rollback (PostgreSQL undoes a SET with it); tests/tenants/test_guard_and_isolation.py checks that.
TENANT_LIMIT_SET_CALLS = True
