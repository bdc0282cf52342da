from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.lib.weights import (
    State,
    WeightsError,
    configured_weights_dir,
    fetch,
    file_states,
    licensed_groups,
    select,
)


class Command(BaseCommand):
    help = (
        "Fetch the pretrained weight files the learned metrics (DISTS, LPIPS) need into the "
        "weights directory, verifying each SHA-256 before keeping it. Downloads by default; "
        "on an offline machine copy the files over and use --from DIR. --check only reports."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from",
            dest="source",
            type=Path,
            help="copy the files from this folder instead of downloading them",
        )
        parser.add_argument(
            "--only",
            nargs="+",
            default=[],
            metavar="NAME",
            help="only these weight files, or the files of these metrics (e.g. dists)",
        )
        parser.add_argument(
            "--dest", type=Path, help="weights directory (default: PERCEPTLAB_WEIGHTS_DIR)"
        )
        parser.add_argument(
            "--force", action="store_true", help="fetch again even if a usable copy is present"
        )
        parser.add_argument(
            "--check", action="store_true", help="list which files are present and verified"
        )

    def handle(
        self,
        *args: Any,
        source: Path | None,
        only: list[str],
        dest: Path | None,
        force: bool,
        check: bool,
        **options: Any,
    ) -> None:
        directory = dest or configured_weights_dir()
        if check:
            self._check(directory)
            return
        try:
            entries = select(only)
        except WeightsError as exc:
            raise CommandError(str(exc)) from exc
        failed = 0
        for entry in entries:
            try:
                self.stdout.write(fetch(entry, directory, source=source, force=force).describe())
            except WeightsError as exc:
                failed += 1
                self.stderr.write(f"{entry.name}: {exc}")
        if not only:
            for slug, licence in sorted(licensed_groups().items()):
                self.stdout.write(
                    f"not fetched without --only: {slug} (licence {licence}); "
                    f"fetch_weights --only {slug} fetches it"
                )
        if failed:
            raise CommandError(f"{failed} of {len(entries)} weight file(s) were not fetched")

    def _check(self, directory: Path) -> None:
        self.stdout.write(f"weights directory: {directory}")
        states = file_states(directory)
        for state in states:
            self.stdout.write(state.describe())
        bad = [s.entry.name for s in states if not s.state.usable]
        if bad:
            raise CommandError(
                f"{len(bad)} weight file(s) missing or corrupt: {', '.join(bad)}; "
                "run fetch_weights (or fetch_weights --from DIR)"
            )
        if any(s.state is State.UNPINNED for s in states):
            self.stdout.write("unverified files have no published SHA-256 to check against")
