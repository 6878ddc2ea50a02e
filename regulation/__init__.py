"""The law as data, framework-free: the Member States' choices (Annex III, minimum ages, Annex I
thresholds), the collection period, the submission and retention deadlines, the form revision and the
official languages. Every app imports it; it imports no app and no Django (import-linter checks)."""
