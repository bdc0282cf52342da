"""Each reconstruction records the SHA-256 of the weights a learned codec encoded it with.

Existing rows are filled from their stored bitstreams: every learned codec writes the digest
into its container header (perceptlab/codecs/neural/container.py); other bitstreams do not
parse as a container and keep "".
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models


def fill_from_bitstreams(apps: Any, schema_editor: Any) -> None:
    from django.core.files.storage import default_storage

    from perceptlab.codecs.neural.container import ContainerError, unpack

    Reconstruction = apps.get_model("codecs", "Reconstruction")
    for row in Reconstruction.objects.exclude(bitstream="").only("pk", "bitstream").iterator():
        try:
            with default_storage.open(row.bitstream.name, "rb") as handle:
                header = unpack(handle.read()).header
        except (OSError, ContainerError, ValueError):
            continue  # not a learned codec's container (or the file is gone): no weights
        Reconstruction.objects.filter(pk=row.pk).update(weights_sha256=header.weights_sha256)


class Migration(migrations.Migration):
    dependencies = [("codecs", "0003_imported_reconstructions")]

    operations = [
        migrations.AddField(
            model_name="reconstruction",
            name="weights_sha256",
            field=models.CharField(
                blank=True,
                help_text=(
                    "SHA-256 of the weight file a learned codec encoded with (empty: no weights)"
                ),
                max_length=64,
            ),
        ),
        migrations.RunPython(fill_from_bitstreams, migrations.RunPython.noop),
    ]
