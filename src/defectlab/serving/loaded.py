"""The model versions the service holds in memory, and which version each name answers with.

`Models` loads a version (its file from the organization's storage, the engine's detector with
one onnxruntime thread per run and no memory arena, one warm-up run) and keeps it while the
memory budget allows (DEFECTLAB_INFERENCE_MEMORY_MB; a version is counted as three times its
file size), unloading the one used least recently to make room. A request holds the version it
started on, so unloading or swapping never cuts a run short.

`Routes` answers "organization, model name, alias or number → loaded version". A route by
alias is re-read every DEFECTLAB_INFERENCE_REFRESH_SECONDS; when its alias has moved, the new
version is loaded and warmed first and the route switched after (one assignment); a version
that fails to load leaves the route where it was and the reason in `problems`.

Everything here blocks (database, storage, onnxruntime): call it from threads, not the event
loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import close_old_connections
from django.utils.translation import gettext as _

from defectlab.errors import DefectLabError, NotFound, Unavailable
from defectlab.inference.models import ModelAlias, ModelVersion, VersionState
from defectlab.inference.registry import load_detector, thresholds

log = logging.getLogger(__name__)

MB = 1024 * 1024
OVERHEAD = 3  # a loaded version takes about this many times its file size
RETRY_SECONDS = 30.0  # a version that failed to load is tried again after this long


@dataclass(frozen=True, slots=True, eq=False)
class Loaded:
    version_id: int
    organization_id: int
    model_name: str
    number: int
    sha256: str
    detector: Any
    footprint: int  # bytes counted against the budget

    @property
    def label(self) -> str:
        """The model's name in metrics."""
        return self.model_name


class Models:
    def __init__(self, budget_bytes: int, threads: int, retry_seconds: float = 30.0) -> None:
        self.budget = budget_bytes
        self.threads = threads
        # A version that failed to load answers its error at once for this long, rather than
        # being read and built again for every request that names it.
        self.retry_seconds = retry_seconds
        self._broken: dict[int, tuple[Unavailable, float]] = {}
        self._held: OrderedDict[int, Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Lock] = {}
        self.loads = 0  # versions loaded since start (metrics)
        self.load_seconds = 0.0

    def held(self) -> list[Loaded]:
        with self._lock:
            return list(self._held.values())

    def held_version(self, version_id: int) -> Loaded | None:
        """``version_id`` if it is loaded (used: moved to the recent end), else None."""
        with self._lock:
            found = self._held.get(version_id)
            if found is not None:
                self._held.move_to_end(version_id)
            return found

    def get(self, version: ModelVersion) -> Loaded:
        """``version`` loaded (now, if it was not)."""
        with self._lock:
            found = self._held.get(version.pk)
            if found is not None:
                self._held.move_to_end(version.pk)
                return found
            gate = self._loading.setdefault(version.pk, threading.Lock())
        with gate:  # one load per version, however many ask at once
            with self._lock:
                found = self._held.get(version.pk)
                broken = self._broken.get(version.pk)
            if found is not None:
                return found
            if broken is not None and broken[1] > time.monotonic():
                raise broken[0]
            try:
                loaded = self._load(version)
            except DefectLabError as error:  # the caller asked nothing wrong: the model is
                refusal = Unavailable(
                    _("Version %(number)s of the model %(name)s cannot be loaded: %(reason)s")
                    % {
                        "number": version.number,
                        "name": version.model.name,
                        "reason": error.message,
                    },
                    code="model_unavailable",
                )
                with self._lock:
                    self._broken[version.pk] = (refusal, time.monotonic() + self.retry_seconds)
                raise refusal from None
            with self._lock:
                self._held[version.pk] = loaded
                self._loading.pop(version.pk, None)
                self._broken.pop(version.pk, None)
                self._evict()
            return loaded

    def _load(self, version: ModelVersion) -> Loaded:
        start = time.perf_counter()
        detector = warm_detector(version, self.threads)
        self.loads += 1
        self.load_seconds += time.perf_counter() - start
        log.info(
            "loaded model %s v%s (%s)",
            version.model.name,
            version.number,
            version.sha256[:12],
            extra={"organization": version.organization_id, "version": version.pk},
        )
        return Loaded(
            version_id=version.pk,
            organization_id=version.organization_id,
            model_name=version.model.name,
            number=version.number,
            sha256=version.sha256,
            detector=detector,
            footprint=OVERHEAD * version.size,
        )

    def _evict(self) -> None:
        total = sum(loaded.footprint for loaded in self._held.values())
        while total > self.budget and len(self._held) > 1:
            _pk, gone = self._held.popitem(last=False)
            total -= gone.footprint
            log.info("unloaded model %s v%s (memory budget)", gone.model_name, gone.number)


def warm_detector(version: ModelVersion, threads: int) -> Any:
    """``version``'s detector as the service runs it: ``threads`` onnxruntime threads, no
    memory arena (many models share the process), the installation's pixel limit, and one
    run done (the first run of a session is slow)."""
    detector = load_detector(
        version, threads=threads, memory_arena=False, max_pixels=settings.MAX_IMAGE_PIXELS
    )
    height, width = detector.input_size
    detector.detect(np.full((height, width, 3), 114, np.uint8))
    return detector


def ready_version(organization: int, name: str, number: int) -> ModelVersion:
    """The ready version ``number`` of ``organization``'s model ``name``, else NotFound."""
    version = (
        ModelVersion.objects.select_related("model")
        .filter(
            organization_id=organization, model__name=name, number=number, state=VersionState.READY
        )
        .first()
    )
    if version is None:
        raise NotFound(
            _("This organization has no ready version %(number)s of a model named %(name)s.")
            % {"number": number, "name": name},
            code="model_not_found",
        )
    return version


def aliased_version(organization: int, name: str, alias: str) -> ModelVersion:
    """The ready version ``alias`` of ``organization``'s model ``name`` names, else NotFound."""
    row = (
        ModelAlias.objects.select_related("version__model")
        .filter(organization_id=organization, model__name=name, name=alias)
        .first()
    )
    if row is None or row.version.state != VersionState.READY:
        raise NotFound(
            _("This organization has no model named %(name)s with an alias %(alias)s.")
            % {"name": name, "alias": alias},
            code="model_not_found",
        )
    return row.version


Route = tuple[int, str, str]  # organization, model name, alias


class Routes:
    def __init__(self, models: Models, refresh_seconds: float = 2.0) -> None:
        self.models = models
        self.refresh_seconds = refresh_seconds
        self._numbered: dict[tuple[int, str, int], tuple[ModelVersion, float]] = {}
        self._aliases: dict[Route, int] = {}  # → version id
        self._versions: dict[int, ModelVersion] = {}
        self._lock = threading.Lock()
        self.problems: dict[Route, str] = {}
        # The thresholds each held version answers with when a request gives none (the
        # organization's saved sensitivity over the version's own), re-read with the aliases.
        self.defaults: dict[int, tuple[float, float]] = {}
        # Versions an alias moved to that failed to load: tried again after RETRY_SECONDS (a
        # file back in storage, a database that answers again), not at every refresh.
        self._failed: dict[int, float] = {}
        self.swaps = 0
        self.swap_failures = 0

    def resolve(
        self, organization: int, name: str, alias: str | None, number: int | None
    ) -> Loaded:
        """The version that answers ``name`` (by ``number``, else by ``alias``) in ``organization``;
        NotFound if that organization has no such ready version."""
        if number is not None:
            return self.models.get(self._numbered_version(organization, name, number))
        route = (organization, name, alias or "production")
        with self._lock:
            version_id = self._aliases.get(route)
            version = self._versions.get(version_id) if version_id is not None else None
        if version is None:
            version = aliased_version(*route)
            with self._lock:
                self._aliases.setdefault(route, version.pk)
                version = self._versions.setdefault(version.pk, version)
        return self.models.get(version)

    def held(
        self, organization: int, name: str, alias: str | None, number: int | None
    ) -> Loaded | None:
        """What `resolve` would answer, when that needs neither the database nor a load (a
        known route to a loaded version); None otherwise. Does not block: the event loop asks."""
        now = time.monotonic()
        with self._lock:
            if number is not None:
                kept = self._numbered.get((organization, name, number))
                version_id = kept[0].pk if kept is not None and kept[1] > now else None
            else:
                version_id = self._aliases.get((organization, name, alias or "production"))
        return None if version_id is None else self.models.held_version(version_id)

    def _numbered_version(self, organization: int, name: str, number: int) -> ModelVersion:
        """The version by number, read again after the refresh time (it may be deleted)."""
        now = time.monotonic()
        with self._lock:
            kept = self._numbered.get((organization, name, number))
        if kept is not None and kept[1] > now:
            return kept[0]
        version = ready_version(organization, name, number)
        with self._lock:
            if len(self._numbered) > 10_000:
                self._numbered.clear()
            self._numbered[(organization, name, number)] = (version, now + self.refresh_seconds)
        return version

    def preload(self, aliases: list[str]) -> None:
        """Load every model's version under one of ``aliases`` (the budget permitting)."""
        if not aliases:
            return
        rows = ModelAlias.objects.select_related("version__model").filter(
            name__in=aliases, version__state=VersionState.READY
        )
        for row in rows:
            route = (row.organization_id, row.version.model.name, row.name)
            try:
                self.models.get(row.version)
            except DefectLabError as error:
                self.problems[route] = error.message
                continue
            with self._lock:
                self._aliases[route] = row.version_id
                self._versions[row.version_id] = row.version

    def refresh(self) -> None:
        """Follow moved aliases: load the new version, then switch (see the module's text);
        read the held versions' thresholds again."""
        close_old_connections()
        held = [loaded.version_id for loaded in self.models.held()]
        versions = ModelVersion.objects.select_related("model").filter(pk__in=held)
        self.defaults = {version.pk: thresholds(version)[:2] for version in versions}
        with self._lock:
            routes = dict(self._aliases)
        if not routes:
            return
        organizations = {route[0] for route in routes}
        rows = ModelAlias.objects.select_related("version__model").filter(
            organization_id__in=organizations, name__in={route[2] for route in routes}
        )
        now = {(r.organization_id, r.version.model.name, r.name): r.version for r in rows}
        for route, version_id in routes.items():
            version = now.get(route)
            if version is None:  # the alias or its model is gone
                with self._lock:
                    self._aliases.pop(route, None)
                continue
            if (
                version.pk == version_id
                or version.state != VersionState.READY
                or self._failed.get(version.pk, 0.0) > time.monotonic()
            ):
                continue
            try:
                self.models.get(version)
            except Exception as error:  # the old version keeps answering
                message = error.message if isinstance(error, DefectLabError) else str(error)
                if self.problems.get(route) != message:
                    log.error(
                        "alias %s of model %s moved to v%s, which failed to load: %s",
                        route[2],
                        route[1],
                        version.number,
                        message,
                        extra={"organization": route[0]},
                    )
                self.problems[route] = message
                self._failed[version.pk] = time.monotonic() + RETRY_SECONDS
                self.swap_failures += 1
                continue
            with self._lock:
                self._versions[version.pk] = version
                self._aliases[route] = version.pk
            self.problems.pop(route, None)
            self._failed.pop(version.pk, None)
            self.swaps += 1
            log.info(
                "alias %s of model %s now answers with v%s", route[2], route[1], version.number
            )
