"""``manage.py fetch_dataset NAME …``: fetch, copy or check the public datasets the tests, the
benchmarks and the demo read (the catalogue is :mod:`perceptlab.lib.datasets`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.lib import datasets
from perceptlab.lib.datasets import DatasetError, State


class Command(BaseCommand):
    help = (
        "Fetch public datasets into the datasets folder (PERCEPTLAB_DATASETS, else "
        "../shared/datasets beside the repository, else ~/.cache/perceptlab/datasets), "
        "verifying each file's SHA-256 before keeping it. Downloads by default; offline, "
        "--from DIR copies the files (or converts their upstream sources) from a folder. "
        "--check only reports each file as ok, missing or mismatch."
    )
    requires_system_checks: list[str] = []  # it must work before the platform is configured

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="datasets to fetch")
        parser.add_argument(
            "--all", dest="everything", action="store_true", help="every dataset of the catalogue"
        )
        parser.add_argument(
            "--to",
            dest="root",
            type=Path,
            metavar="DIR",
            help="datasets folder (default: as described above)",
        )
        parser.add_argument(
            "--from",
            dest="source",
            type=Path,
            metavar="DIR",
            help="copy from this folder (the files, or their upstream sources) instead of "
            "downloading",
        )
        parser.add_argument(
            "--check", action="store_true", help="report each file as ok, missing or mismatch"
        )
        parser.add_argument(
            "--force", action="store_true", help="fetch again even when a verified copy is there"
        )

    def handle(
        self,
        *args: Any,
        names: list[str],
        everything: bool,
        root: Path | None,
        source: Path | None,
        check: bool,
        force: bool,
        **options: Any,
    ) -> None:
        chosen = self._chosen(names, everything=everything)
        folder = root.expanduser().resolve() if root else datasets.datasets_root()
        if source is not None and not source.is_dir():
            raise CommandError(f"--from {source} is not a folder")
        if check:
            self._check(chosen, folder)
            return
        failed = []
        for name in chosen:
            try:
                fetched = datasets.fetch_dataset(name, root=folder, source_dir=source, force=force)
            except (DatasetError, OSError) as error:
                failed.append(name)
                self.stderr.write(f"{name}: {error}")
                continue
            self.stdout.write(fetched.describe())
            if options["verbosity"] > 1:
                for file, action in fetched.actions:
                    self.stdout.write(f"  {file}: {action}")
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(chosen)} dataset(s) not fetched: {', '.join(failed)}; "
                "without internet access, copy them from a folder with --from DIR"
            )

    def _chosen(self, names: list[str], *, everything: bool) -> list[str]:
        known = ", ".join(datasets.CATALOGUE)
        if everything:
            return list(datasets.CATALOGUE)
        if not names:
            raise CommandError(f"name one or more datasets, or pass --all; datasets: {known}")
        unknown = [n for n in names if n not in datasets.CATALOGUE]
        if unknown:
            raise CommandError(f"unknown dataset(s) {', '.join(unknown)}; datasets: {known}")
        return list(dict.fromkeys(names))

    def _check(self, names: list[str], folder: Path) -> None:
        self.stdout.write(f"datasets folder: {folder}")
        bad = 0
        for name in names:
            checks = datasets.check_dataset(name, root=folder)
            for result in checks:
                self.stdout.write(f"{name}: {result.describe()}")
            bad += sum(result.state is not State.OK for result in checks)
        if bad:
            raise CommandError(
                f"{bad} file(s) missing or mismatched; run fetch_dataset {' '.join(names)} "
                "(or with --from DIR)"
            )
