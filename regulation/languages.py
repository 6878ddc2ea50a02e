"""The 24 official languages of the Union, each named in itself: the languages an initiative's pages
and forms are shown in (Django's LANGUAGES is this list)."""

from __future__ import annotations

OFFICIAL_LANGUAGES: tuple[tuple[str, str], ...] = (
    ("bg", "Български"),
    ("cs", "Čeština"),
    ("da", "Dansk"),
    ("de", "Deutsch"),
    ("el", "Ελληνικά"),
    ("en", "English"),
    ("es", "Español"),
    ("et", "Eesti"),
    ("fi", "Suomi"),
    ("fr", "Français"),
    ("ga", "Gaeilge"),
    ("hr", "Hrvatski"),
    ("hu", "Magyar"),
    ("it", "Italiano"),
    ("lt", "Lietuvių"),
    ("lv", "Latviešu"),
    ("mt", "Malti"),
    ("nl", "Nederlands"),
    ("pl", "Polski"),
    ("pt", "Português"),
    ("ro", "Română"),
    ("sk", "Slovenčina"),
    ("sl", "Slovenščina"),
    ("sv", "Svenska"),
)
OFFICIAL_LANGUAGE_CODES = frozenset(code for code, _name in OFFICIAL_LANGUAGES)
