"""X.509 and CMS for the export files, free of Django and of the platform's apps, so that the platform,
the authority registry and the settings-free verification command share one implementation.

- `eci_crypto.certificates`: loading and checking certificates and keys, fingerprints, signing identities.
- `eci_crypto.cms`: the export file format (signed, then encrypted CMS) written and read as streams.
"""
