"""The database backend: django-tenants' PostgreSQL backend with a cheaper connection health check."""
