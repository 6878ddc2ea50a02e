"""The verification of export files, as a library and the console script `eci-verify-export`: what a
competent authority runs on the file it received, with no settings, no database and no Redis.

- verify.py: export_file_verify(), the entry point (decrypt, check the tag and the signature, stream the
  XML through its checks, compare the manifest, publish --out only when everything passed);
- xml_check.py: the XML validated against the published XSD as it streams by;
- manifest.py: the manifest found, read and compared with the file;
- report.py: the report (one JSON object) and the refusal;
- cli.py: the console script, and the arguments the management command `verify_export` shares.

Imports no Django and no app but the Django-free parts of this one (exports.format) and eci_crypto: an
import-linter contract keeps it so.
"""
