"""Set or lift a legal hold (REQ-18) from the command line: a held initiative's statements are kept past
their destruction deadline until the hold is lifted. The services in tenants.holds decide and audit."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tenants.audit import COMMAND_LINE_ACTOR
from tenants.holds import LegalHoldError, legal_hold_lift, legal_hold_set
from tenants.management.commands._output import JsonCommand
from tenants.models import LegalHold
from tenants.selectors import initiative_by_slug


def _hold_result(hold: LegalHold, slug: str) -> dict[str, Any]:
    return {
        "initiative": slug,
        "hold": hold.pk,
        "reference": hold.reference,
        "active": hold.is_active,
        "set_by": hold.set_by,
        "set_at": hold.set_at,
        "lifted_by": hold.lifted_by,
        "lifted_at": hold.lifted_at,
    }


class Command(JsonCommand):
    help = (
        "Set a legal hold on an initiative (--set --reason T --reference R) or lift its active one "
        "(--lift [--reason T]): a held initiative's statements are not destroyed (REQ-18)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--initiative", required=True, help="The initiative's slug.")
        # Checked in handle, not by argparse: a refusal must still print its one JSON object.
        parser.add_argument("--set", action="store_true", help="Set a hold (needs --reason and --reference).")
        parser.add_argument("--lift", action="store_true", help="Lift the active hold.")
        parser.add_argument(
            "--reason", default="", help="Why (required with --set); no personal data, for the audit log."
        )
        parser.add_argument(
            "--reference", default="", help="The proceedings' reference, e.g. a case number (with --set)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["initiative"]
        setting, lifting = options["set"], options["lift"]
        if setting == lifting:
            self.refuse(
                options,
                "Give exactly one of --set and --lift.",
                {"set": ["Give exactly one of --set and --lift."]},
            )
        if setting:
            missing = [name for name in ("reason", "reference") if not options[name].strip()]
            if missing:
                named = " and ".join(f"--{name}" for name in missing)
                self.refuse(
                    options,
                    f"--set needs {named}: a legal hold is recorded with its reason and the reference of "
                    "the proceedings.",
                    {name: ["Required with --set."] for name in missing},
                )
        elif options["reference"].strip():
            self.refuse(
                options,
                "--reference is only for --set: the lifted hold keeps its own reference.",
                {"reference": ["Only with --set."]},
            )
        initiative = initiative_by_slug(slug)
        if initiative is None:
            self.refuse(options, f"No initiative with the slug {slug!r}.", {"initiative": ["Unknown."]})
        try:
            if setting:
                hold = legal_hold_set(
                    initiative,
                    reason=options["reason"],
                    reference=options["reference"],
                    actor=COMMAND_LINE_ACTOR,
                )
            else:
                hold = legal_hold_lift(initiative, actor=COMMAND_LINE_ACTOR, reason=options["reason"])
        except LegalHoldError as error:
            self.refuse(options, str(error), {error.field or "initiative": [str(error)]})
        result = _hold_result(hold, initiative.slug)
        if setting:
            human = f"{initiative.slug}: legal hold {hold.pk} set (reference {hold.reference})."
        else:
            human = f"{initiative.slug}: legal hold {hold.pk} (reference {hold.reference}) lifted."
        self.emit(options, result, human)
