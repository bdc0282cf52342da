from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.studies.participants import ParticipantError, find_study
from perceptlab.studies.reconcile import reconcile_slots, slot_drift


class Command(BaseCommand):
    help = (
        "Set every item's slot counter (Item.assigned) to the number of its trials holding a "
        "slot, and print each item it changed. Safe while raters are rating; every db_worker "
        "also runs it periodically."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", default="", help="only this study (its name)")
        parser.add_argument(
            "--dry-run", action="store_true", help="print the drift, change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            study = find_study(name=options["study"]) if options["study"] else None
        except ParticipantError as exc:
            raise CommandError(str(exc)) from None
        if options["dry_run"]:
            drifts = slot_drift(study=study)
            verb = "would change"
        else:
            drifts = reconcile_slots(study=study)
            verb = "changed"
        for drift in drifts:
            self.stdout.write(str(drift))
        self.stdout.write(f"{verb} {len(drifts)} item(s)")
