"""Third-party codecs: Codec classes installed under the entry-point group ``perceptlab.codecs``.

A package declares its codecs in its ``pyproject.toml`` (see examples/perceptlab-codec-example)::

    [project.entry-points."perceptlab.codecs"]
    example-dct = "perceptlab_codec_example.dct:DctCodec"

The entry point's name is the codec's slug, its value the :class:`~.base.Codec` subclass.
A plugin goes through three stages, and a broken one never breaks the platform:

1. Registration (:func:`load_plugin_codecs`, at the end of :mod:`.registry`) reads package
   metadata only: no plugin module is imported, so web requests stay light. A plugin whose
   slug is malformed or already taken (by a built-in codec or by another plugin) is not
   registered at all, since the slug could not say which codec it means.
2. First use (:func:`load_plugin`, called by ``get_codec``) imports and validates the class.
   A plugin that cannot be imported, is not a complete Codec subclass, or declares another
   slug stays registered but unavailable: ``get_codec`` raises :class:`PluginError` (a
   :class:`~.base.CodecUnavailable`), which the admin, ``manage.py codecs`` and the jobs show
   as the reason, fix included. Until then a plugin's label is its slug and its description
   its package's summary; loading puts the class's ``label``/``description`` in their place.
3. The system check (``checks.py`` over :func:`plugin_problems`) does both for every plugin
   and reports each failure naming the package, its version and the fix. Warnings, not errors:
   an error would stop ``runserver`` and ``migrate``, so one broken third-party package would
   take the platform down (``manage.py check --fail-level WARNING`` makes them fatal in CI).

codecs.W050  the entry point's name is not a valid slug
codecs.W051  the slug is taken by a codec registered before the plugins (a built-in)
codecs.W052  two installed packages claim the same slug (neither is registered)
codecs.W053  the entry point cannot be imported
codecs.W054  the entry point is not a working Codec subclass (abstract methods named)
codecs.W055  the class's ``slug`` differs from the entry point's name
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from perceptlab.codecs.base import Availability, Codec, CodecUnavailable

if TYPE_CHECKING:  # registry.py imports this module at its end
    from perceptlab.codecs.registry import CodecEntry

GROUP = "perceptlab.codecs"
FAMILY = "plugin"
SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,49}")
"""Slugs are stored in 50-character columns and appear in URLs and file names."""
EXAMPLE = "examples/perceptlab-codec-example"


@dataclass(frozen=True)
class Plugin:
    """One entry point of :data:`GROUP`: the slug, the class path and the package declaring it."""

    slug: str
    target: str  # "module:Class", the entry point's value
    package: str
    version: str
    summary: str = ""

    @property
    def origin(self) -> str:
        return f"{self.package} {self.version}".strip()

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}" if self.version else self.package

    def entry(self) -> CodecEntry:
        """The registry entry, from metadata only (the class is imported on first use)."""
        from perceptlab.codecs.registry import CodecEntry

        return CodecEntry(
            slug=self.slug,
            label=self.slug,
            family=FAMILY,
            target=self.target,
            description=self.summary or f"codec plugin from {self.origin}",
            package=self.package,
            package_version=self.version,
        )

    @classmethod
    def of_entry(cls, entry: CodecEntry) -> Plugin:
        return cls(entry.slug, entry.target, entry.package, entry.package_version)


class PluginError(CodecUnavailable):
    """A plugin that cannot be used: the problem, its fix and the system check's id."""

    def __init__(self, plugin: Plugin, check_id: str, problem: str, fix: str) -> None:
        super().__init__(plugin.slug, f"codec plugin from {plugin.origin}: {problem}; fix: {fix}")
        self.plugin = plugin
        self.check_id = check_id
        self.problem = problem
        self.fix = fix


def discover() -> list[Plugin]:
    """Every entry point of :data:`GROUP` in the installed packages, in discovery order."""
    found = []
    for point in entry_points(group=GROUP):
        dist = point.dist
        if dist is None:  # only for entry points made by hand, outside any package
            found.append(Plugin(point.name, point.value, "an unknown package", ""))
            continue
        meta = dist.metadata
        summary = meta["Summary"] if "Summary" in meta else ""
        found.append(Plugin(point.name, point.value, dist.name, dist.version, summary or ""))
    return found


def load_plugin_codecs() -> list[PluginError]:
    """Register the installed plugins whose slugs are free; return the refused ones.

    Plugin entries of an earlier call are replaced, so it may run again (after installing a
    package, in tests).
    """
    from perceptlab.codecs.registry import REGISTRY, register

    for slug in [slug for slug, entry in REGISTRY.items() if entry.family == FAMILY]:
        del REGISTRY[slug]
    plugins = discover()
    refused = registration_problems(plugins, taken=REGISTRY)
    refused_plugins = {error.plugin for error in refused}
    for plugin in plugins:
        if plugin not in refused_plugins:
            register(plugin.entry())
    return refused


def registration_problems(
    plugins: Sequence[Plugin], *, taken: Mapping[str, CodecEntry]
) -> list[PluginError]:
    """Plugins that cannot be registered: malformed slugs and slugs claimed twice.

    ``taken`` holds the codecs registered before the plugins (the built-ins).
    """
    claims: dict[str, list[Plugin]] = {}
    for plugin in plugins:
        claims.setdefault(plugin.slug, []).append(plugin)
    rename = f'rename the entry point under [project.entry-points."{GROUP}"]'
    problems = []
    for plugin in plugins:
        slug, rivals = plugin.slug, claims[plugin.slug]
        if not SLUG.fullmatch(slug):
            problem = (
                f"entry point name {slug!r} is not a codec slug (lowercase letters, digits, "
                "'.', '_' and '-', at most 50 characters); it is not registered"
            )
            fix = f"{rename} of {plugin.package}"
            problems.append(PluginError(plugin, "codecs.W050", problem, fix))
        elif slug in taken:
            problem = f"slug {slug!r} is taken by {_holder(taken[slug])}; it is not registered"
            fix = f"{rename} of {plugin.package}, or pip uninstall {plugin.package}"
            problems.append(PluginError(plugin, "codecs.W051", problem, fix))
        elif len(rivals) > 1:
            others = ", ".join(rival.origin for rival in rivals if rival is not plugin)
            problem = f"slug {slug!r} is also claimed by {others}; neither is registered"
            packages = " or ".join(sorted({rival.package for rival in rivals}))
            fix = f"pip uninstall {packages}, or {rename} of one of them"
            problems.append(PluginError(plugin, "codecs.W052", problem, fix))
    return problems


def _holder(entry: CodecEntry) -> str:
    if entry.package:
        return f"{entry.package} {entry.package_version}".strip()
    return f"PerceptLab's {entry.family} codec {entry.label!r}"


def load_plugin(entry: CodecEntry) -> Codec:
    """Import, validate and instantiate a registered plugin (raises :class:`PluginError`).

    The registry entry takes the class's ``label`` and ``description`` when it sets them.
    """
    from perceptlab.codecs.registry import REGISTRY

    codec = validated_codec(Plugin.of_entry(entry))
    if REGISTRY.get(entry.slug) == entry:
        REGISTRY[entry.slug] = replace(
            entry,
            label=codec.label or entry.label,
            description=codec.description or entry.description,
        )
    return codec


def validated_codec(plugin: Plugin) -> Codec:
    """The plugin's codec instance, or :class:`PluginError` saying what is wrong and the fix."""
    codec_class = _codec_class(plugin)
    name = codec_class.__name__
    contract = f"{name}() must construct, version() return a str, availability() an Availability"
    try:
        codec = codec_class()
        version, state = codec.version(), codec.availability()
    except Exception as exc:  # third-party code: any failure makes the plugin unavailable
        problem = f"{plugin.target} fails: {type(exc).__name__}: {exc}"
        raise PluginError(plugin, "codecs.W054", problem, contract) from exc
    if not isinstance(version, str) or not isinstance(state, Availability):
        problem = f"{name}.version() gave {version!r}, availability() gave {state!r}"
        raise PluginError(plugin, "codecs.W054", problem, contract)
    return codec


def _codec_class(plugin: Plugin) -> type[Codec]:
    try:
        loaded = EntryPoint(plugin.slug, plugin.target, GROUP).load()
    except Exception as exc:  # an import runs third-party code: anything can be raised
        problem = f"{plugin.target} cannot be imported: {type(exc).__name__}: {exc}"
        fix = f"pip install --force-reinstall {plugin.requirement} (or uninstall it)"
        raise PluginError(plugin, "codecs.W053", problem, fix) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Codec)):
        kind = f"the class {loaded.__name__}" if isinstance(loaded, type) else type(loaded).__name__
        problem = f"{plugin.target} is {kind}, not a subclass of perceptlab.codecs.base.Codec"
        fix = f"point the entry point at a Codec subclass, as {EXAMPLE} does"
        raise PluginError(plugin, "codecs.W054", problem, fix)
    missing = sorted(getattr(loaded, "__abstractmethods__", ()))
    if missing:
        problem = f"{loaded.__name__} does not implement {', '.join(missing)}"
        fix = f"define {', '.join(missing)} in {loaded.__name__}, as {EXAMPLE} does"
        raise PluginError(plugin, "codecs.W054", problem, fix)
    declared = getattr(loaded, "slug", None)
    if declared != plugin.slug:
        problem = f"{loaded.__name__}.slug is {declared!r} but the entry point is {plugin.slug!r}"
        fix = f"set slug = {plugin.slug!r} in {loaded.__name__}, or rename the entry point"
        raise PluginError(plugin, "codecs.W055", problem, fix)
    return loaded


def plugin_problems() -> list[PluginError]:
    """Every installed plugin's problem, importing each (what the system check reports)."""
    from perceptlab.codecs.registry import REGISTRY

    plugins = discover()
    built_in = {slug: entry for slug, entry in REGISTRY.items() if entry.family != FAMILY}
    problems = registration_problems(plugins, taken=built_in)
    refused = {error.plugin for error in problems}
    for plugin in plugins:
        if plugin in refused:
            continue
        try:
            validated_codec(plugin)
        except PluginError as error:
            problems.append(error)
    return problems
