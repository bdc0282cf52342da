from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from perceptlab.codecs.base import CodecError
from perceptlab.codecs.generation import JobRequest, parse_bpps, plan_jobs, run_job
from perceptlab.codecs.models import GenerationJob, ImageSet, Reconstruction
from perceptlab.codecs.registry import (
    ImportedCodecCannotEncode,
    UnknownCodec,
    get_codec,
    is_imported,
    parse_slugs,
)
from perceptlab.codecs.tasks import enqueue_jobs


def parse_params(text: str) -> dict[str, str]:
    params = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--params item {item!r} is not key=value")
        params[key.strip()] = value.strip()
    return params


def stimulus_record(reconstruction: Reconstruction) -> dict[str, Any]:
    """The JSON line ``generate --json`` prints for one stimulus."""
    return {
        "image": reconstruction.source.name,
        "codec": reconstruction.codec,
        "codec_version": reconstruction.codec_version,
        "params": reconstruction.params,
        "target_bpp": reconstruction.target_bpp,
        "achieved_bpp": reconstruction.achieved_bpp,
        # "measured" from the bitstream, or "declared" (imported without bitstreams)
        "bpp_source": reconstruction.bpp_source,
        "bytes": reconstruction.num_bytes,
        "width": reconstruction.width,
        "height": reconstruction.height,
        "bitstream_sha256": reconstruction.bitstream_sha256,
        "weights_sha256": reconstruction.weights_sha256,
        "png_sha256": reconstruction.png_sha256,
        "encode_s": reconstruction.encode_seconds,
        "decode_s": reconstruction.decode_seconds,
        "within_tolerance": reconstruction.rate_control.get("within_tolerance", True),
        # why not: "floor" (the lowest rate overshoots) or "ceiling" (the highest stays under)
        "rate_limit": reconstruction.rate_control.get("reason", ""),
    }


class Command(BaseCommand):
    help = (
        "Encode an image set with codecs at target bitrates (rate control), or with fixed "
        "--params. Idempotent: finished stimuli are skipped, failed ones retried."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--set", dest="set_name", required=True, help="image set name")
        parser.add_argument("--codecs", required=True, help="comma-separated slugs, e.g. jpeg,webp")
        parser.add_argument("--bpp", default="", help="target bpps, e.g. 0.1,0.25")
        parser.add_argument(
            "--params",
            default="",
            help="fixed parameters key=value,... (instead of rate control), e.g. quality=50",
        )
        parser.add_argument("--images", default="", help="only these file names (a.png,b.png)")
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="enqueue the jobs for the worker instead of running them here",
        )
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object per stimulus"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        jobs = self._plan(options)
        if options["enqueue"]:
            count = enqueue_jobs(jobs)
            self.stdout.write(f"enqueued {count} job(s); {len(jobs) - count} already done")
            return
        bar = tqdm(
            jobs,
            desc="generate",
            unit="stimulus",
            disable=options["json"] or None,
            file=self.stderr,
        )
        for job in bar:
            if job.state != GenerationJob.State.DONE:
                run_job(job.pk)
        self._report(jobs, as_json=options["json"])

    def _plan(self, options: dict[str, Any]) -> list[GenerationJob]:
        try:
            image_set = ImageSet.objects.get(name=options["set_name"])
        except ImageSet.DoesNotExist:
            known = ", ".join(ImageSet.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no image set {options['set_name']!r}; sets: {known}") from None
        sources = list(image_set.images.all())
        if options["images"]:
            wanted = [n.strip() for n in options["images"].split(",") if n.strip()]
            missing = sorted(set(wanted) - {s.name for s in sources})
            if missing:
                raise CommandError(f"not in set {image_set.name!r}: {', '.join(missing)}")
            sources = [s for s in sources if s.name in wanted]
        try:
            requests = self._requests(options)
            return plan_jobs(sources=sources, requests=requests)
        except CodecError as exc:
            raise CommandError(str(exc)) from None

    def _requests(self, options: dict[str, Any]) -> list[JobRequest]:
        try:
            slugs = parse_slugs(options["codecs"])
        except UnknownCodec as exc:
            if is_imported(exc.slug):  # its reconstructions are files: nothing to encode
                raise ImportedCodecCannotEncode(exc.slug) from None
            raise
        if not slugs:
            raise CommandError("--codecs names no codec")
        if options["params"]:
            if options["bpp"]:
                raise CommandError("give either --bpp (rate control) or --params, not both")
            params = parse_params(options["params"])
            return [JobRequest(codec=s, fixed_params=params) for s in slugs]
        if not options["bpp"]:
            raise CommandError("give --bpp targets or fixed --params")
        for slug in slugs:
            if not get_codec(slug).supports_rate_control:
                raise CommandError(f"{slug} has no rate dial; use --params")
        try:
            targets = parse_bpps(options["bpp"])
        except ValueError as exc:
            raise CommandError(f"--bpp {exc}") from None
        return [JobRequest(codec=s, target_bpp=t) for s in slugs for t in targets]

    def _report(self, jobs: list[GenerationJob], *, as_json: bool) -> None:
        failed = 0
        for job in GenerationJob.objects.filter(pk__in=[j.pk for j in jobs]).select_related(
            "reconstruction__source"
        ):
            if job.reconstruction is None:
                failed += 1
                self.stderr.write(f"FAILED {job}: {job.error or job.state}")
            elif as_json:
                self.stdout.write(json.dumps(stimulus_record(job.reconstruction), sort_keys=True))
        if not as_json:
            self.stdout.write(f"{len(jobs) - failed} stimuli ready, {failed} failed")
        if failed:
            raise CommandError(f"{failed} job(s) failed (see above)")
