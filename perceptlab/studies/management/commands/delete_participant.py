from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.studies.participants import (
    ParticipantError,
    delete_participant,
    deletion_of,
    find_participant,
    find_study,
)


class Command(BaseCommand):
    help = (
        "Delete one participant's data on request (GDPR): their session with its trials and "
        "judgments. The slots it held are given back first, so other raters can take them. "
        "Without --yes it prints what would be deleted and asks for confirmation."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, help="the study's name")
        parser.add_argument(
            "--id",
            dest="participant_id",
            required=True,
            help="the participant's Prolific or MTurk id, or the session's code",
        )
        parser.add_argument("--yes", action="store_true", help="delete without asking")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            study = find_study(name=options["study"])
            session = find_participant(study=study, participant_id=options["participant_id"])
        except ParticipantError as exc:
            raise CommandError(str(exc)) from None
        if not options["yes"]:
            self.stdout.write(f"This deletes {deletion_of(session=session)}.")
            if input("Type 'yes' to delete: ").strip().lower() != "yes":
                raise CommandError("nothing deleted")
        self.stdout.write(f"deleted {delete_participant(session=session)}")
