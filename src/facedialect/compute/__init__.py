"""Where the costly work of a study runs: this process, or a Ray cluster (``[compute]``).

An :class:`Engine` runs the two costly stages' work units and returns their results to
the driver (the process running the study), which alone writes the run directory and
the feature cache, as a local run does (docs/scaling.md):

* :meth:`Engine.features` computes the backbone features of the faces a study needs into
  the content-addressed feature cache (``facedialect.training.features``); on Ray, with
  Ray Data (``map_batches`` over the backbone passes, an actor pool of the backbone).
* :meth:`Engine.map` runs independent tasks (the training of one database's group of
  runs) and yields their results in order; on Ray, as Ray tasks, retried when their
  worker process dies.

:func:`get_engine` makes the engine of a study's ``[compute]`` section. Ray is imported
only for ``engine = "ray"``; without it the error names ``pip install "facedialect[ray]"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facedialect.config import ComputeConfig, ModelConfig
from facedialect.models.runtime import resolve_runtime
from facedialect.models.weights import load_backbone
from facedialect.preprocess.params import PreprocessParams
from facedialect.progress import ProgressFn
from facedialect.run.caches import load_face, preprocess_cache
from facedialect.training.features import (
    FeatureCache,
    backbone_tag,
    extract_features,
    feature_cache_and_runner,
)

#: The extra that installs Ray (named in every message about a missing Ray).
RAY_EXTRA = 'pip install "facedialect[ray]"'


@dataclass(frozen=True)
class FeatureJob:
    """What the features of a study need: the backbone, pre-processing and caches.

    Parameters
    ----------
    model : ModelConfig
        ``[model]``: backbone, weights, runtime.
    preprocess : PreprocessParams
        ``[preprocess]`` (the augmentation variants depend on it).
    cache_dir : Path
        The shared cache folder, resolved by the driver (every worker uses this one).
    """

    model: ModelConfig
    preprocess: PreprocessParams
    cache_dir: Path


class Engine:
    """The local engine: the work runs in this process, one unit after another.

    ``[compute] engine = "local"`` (the default).

    Subclasses (:class:`~facedialect.compute.ray_engine.RayEngine`) run the same units
    elsewhere; every engine gives the driver the same results.
    """

    #: ``local`` or ``ray`` (recorded in the manifest).
    name = "local"

    def device(self, requested: str | None, default: str = "cpu") -> str:
        """Where the work units compute.

        Parameters
        ----------
        requested : str, optional
            The device the study was run with (``--device``; None: auto).
        default : str
            This machine's device for ``requested`` (a local run computes there).
        """
        return default

    def workers(self, device: str) -> int:
        """How many work units can run at once (1 here)."""
        return 1

    def share(self, value: Any) -> Any:
        """A handle of ``value`` that several tasks of :meth:`map` take (here: itself)."""
        return value

    def map(self, fn: Callable[..., Any], jobs: Iterable[Mapping[str, Any]], *,
            device: str = "cpu", progress: Callable[[int, int], None] | None = None
            ) -> Iterator[Any]:
        """Run ``fn(**job)`` for every job and yield the results in the order of ``jobs``.

        Here each job runs when its result is asked for, so a local run holds one job's
        inputs at a time; ``progress`` is the jobs' own (they report it themselves).
        """
        for job in jobs:
            yield fn(**job)

    def features(self, job: FeatureJob, keys: Sequence[str],
                 variants: Mapping[str, Sequence[int]], *, device: str,
                 progress: ProgressFn | None = None, label: str = "features"
                 ) -> tuple[str, str, int]:
        """Compute (or find in the cache) the backbone features of ``keys`` in ``variants``.

        Returns
        -------
        tuple
            ``(backbone tag, runtime, faces computed)``.
        """
        backbone = load_backbone(job.model.backbone, job.model.weights,
                                 allow_download=job.model.allow_download)
        fcache, runner = feature_cache_and_runner(backbone, job.model.runtime, device=device,
                                                  cache_dir=job.cache_dir)
        pcache = preprocess_cache(job.cache_dir)
        n = extract_features(
            list(keys), lambda k: load_face(k, pcache), backbone, job.preprocess, fcache,
            variants=variants, device=device, runner=runner,
            progress=(lambda d, t: progress(label, d, t)) if progress else None)
        return fcache.backbone_tag, runner.name, n

    def close(self) -> None:
        """Release what the engine holds (nothing here)."""


def feature_cache_for(job: FeatureJob, device: str) -> tuple[FeatureCache, str]:
    """The feature cache that features computed on ``device`` go to, and its runtime.

    The runtime is resolved for the device the features are computed on (a GPU worker
    runs PyTorch, a CPU one ONNX Runtime when installed), as a local run resolves it.
    """
    backbone = load_backbone(job.model.backbone, job.model.weights,
                             allow_download=job.model.allow_download)
    runtime = resolve_runtime(job.model.runtime, device)
    return FeatureCache(backbone_tag(backbone), job.cache_dir, runtime=runtime), runtime


_ENGINES: dict[tuple[str, str | None], Engine] = {}


def get_engine(config: ComputeConfig | None = None) -> Engine:
    """The engine of a study's ``[compute]`` section (one per address in a process).

    Raises
    ------
    InputError
        For ``engine = "ray"`` without Ray installed (names ``pip install
        "facedialect[ray]"``), or a cluster address that cannot be reached.
    """
    config = config or ComputeConfig()
    if config.engine == "local":
        return Engine()
    key = (config.engine, config.address)
    engine = _ENGINES.get(key)
    if engine is None:
        from facedialect.compute.ray_engine import RayEngine

        engine = _ENGINES[key] = RayEngine(config)
    else:
        engine.configure(config)  # type: ignore[attr-defined]
    return engine


__all__ = ["RAY_EXTRA", "Engine", "FeatureJob", "feature_cache_for", "get_engine"]
