from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.studies.participants import (
    APPROVAL_COLUMNS,
    ParticipantError,
    approval_rows,
    find_study,
    write_approvals,
)


class Command(BaseCommand):
    help = (
        "Write the Prolific approval list of a study as CSV, one row per Prolific session: "
        f"{', '.join(APPROVAL_COLUMNS)}. status is completed, screened_out or returned "
        "(declined at consent, or started and never finished); completion_code is the "
        "session's own code (completed) or the screen-out code (screened out)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, help="the study's name")
        parser.add_argument("--out", type=Path, help="CSV file to write (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            study = find_study(name=options["study"])
        except ParticipantError as exc:
            raise CommandError(str(exc)) from None
        rows = approval_rows(study=study)
        out: Path | None = options["out"]
        if out is None:
            write_approvals(rows, self.stdout)
            return
        with out.open("w", newline="", encoding="utf-8") as handle:
            count = write_approvals(rows, handle)
        self.stdout.write(f"{count} Prolific session(s) of {study.name} written to {out}")
