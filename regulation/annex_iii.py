"""Annex III of Regulation 2019/788: the form's revision and the identity documents it names."""

from __future__ import annotations

# Every statement stores the revision of the form it was signed on; the export carries it as an integer.
# A new revision of Annex III gets a new name here and the next integer.
FORM_REVISION = "2019/788-annex-iii"
FORM_REVISION_NUMBERS: dict[str, int] = {FORM_REVISION: 1}

# The document types of member_states.csv (Part B), by the keys the forms and the export use.
DOCUMENT_TYPES = frozenset(
    {
        "passport",
        "id.card",
        "personal.number",
        "personal.id",
        "national.id.number",
        "citizens.card",
        "residence.permit",
    }
)
