"""The Ray engine (``[compute] engine = "ray"``): features with Ray Data, tasks with Ray.

Imported only when a study asks for Ray. The driver (the process running the study)
plans the work, sends it to the cluster and writes every result itself: feature rows
into the content-addressed feature cache as each backbone pass comes back, heads files
and tables as a local run does (docs/scaling.md). Workers read the pre-processed faces
from the shared cache folder and write only training checkpoints (atomically, into the
run directory), so a retried task resumes from its checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from facedialect.compute import RAY_EXTRA, Engine, FeatureJob, feature_cache_for
from facedialect.config import ComputeConfig
from facedialect.errors import FacedialectError, InputError
from facedialect.models.runtime import feature_runner
from facedialect.models.weights import load_backbone
from facedialect.preprocess.augment import N_VARIANTS
from facedialect.progress import ProgressFn
from facedialect.run.caches import load_face, preprocess_cache
from facedialect.training.features import compute_pass, feature_passes, missing_variants

#: Variants per backbone pass (as :func:`~facedialect.training.features.extract_features`).
PASS_SIZE = 50


class ComputeError(FacedialectError):
    """The cluster could not finish a task (its worker died more often than retried)."""


def import_ray() -> Any:
    """The ``ray`` module, or a clear error naming the extra that installs it.

    Raises
    ------
    InputError
        When Ray (with Ray Data) is not installed.
    """
    try:
        import ray
        import ray.data  # noqa: F401 - features need Ray Data
    except ImportError as exc:
        raise InputError(f"[compute] engine = \"ray\" needs Ray, which is not installed "
                         f"({exc}): {RAY_EXTRA}, or set engine = \"local\"") from None
    return ray


class RayEngine(Engine):
    """Runs a study's costly work on a Ray cluster (or a Ray instance on this machine).

    Parameters
    ----------
    config : ComputeConfig
        ``[compute]``: the address, actors, tasks, GPUs and retries.

    Raises
    ------
    InputError
        When Ray is missing or the cluster cannot be reached.
    """

    name = "ray"

    def __init__(self, config: ComputeConfig) -> None:
        self.config = config
        self.ray = import_ray()
        if not self.ray.is_initialized():
            try:
                self.ray.init(address=config.address, include_dashboard=False,
                              logging_level="WARNING", configure_logging=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = config.address or "a new Ray instance on this machine"
                raise InputError(f"[compute] cannot start or reach the Ray cluster at "
                                 f"{where}: {exc}; start it (`ray start --head`) or fix "
                                 f"[compute] address") from None
        ctx = self.ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False

    def configure(self, config: ComputeConfig) -> None:
        """Use the actors, tasks, GPUs and retries of ``config`` (same cluster)."""
        self.config = config

    # ---------------------------------------------------------------- the cluster
    def _resources(self) -> dict[str, float]:
        return dict(self.ray.cluster_resources())

    def gpus(self) -> int:
        """GPUs of the cluster this engine may use (0 with ``gpus = "never"``)."""
        if self.config.gpus == "never":
            return 0
        return int(self._resources().get("GPU", 0))

    def device(self, requested: str | None, default: str = "cpu") -> str:
        """``cuda`` when the cluster has GPUs (and ``requested`` is not a CPU), else ``cpu``.

        Raises
        ------
        InputError
            When a GPU is asked for (``--device cuda``) and the cluster has none.
        """
        gpus = self.gpus()
        if requested is not None and requested.startswith("cpu"):
            return "cpu"
        if requested is not None and requested.startswith(("cuda", "mps")) and not gpus:
            raise InputError(f"--device {requested}: the Ray cluster has no GPU (resources "
                             f"{self._resources()}); use --device cpu or auto")
        return "cuda" if gpus else "cpu"

    def workers(self, device: str) -> int:
        """Tasks that can run at once: the cluster's GPUs, or its CPUs."""
        res = self._resources()
        return max(1, int(res.get("GPU" if device.startswith("cuda") else "CPU", 1)))

    def _task_resources(self, device: str) -> dict[str, float]:
        return {"num_gpus": 1} if device.startswith("cuda") else {"num_cpus": 1}

    # ---------------------------------------------------------------- tasks
    def share(self, value: Any) -> Any:
        """Put ``value`` into the object store once; tasks taking the handle read it there."""
        return self.ray.put(value)

    def map(self, fn: Callable[..., Any], jobs: Iterable[Mapping[str, Any]], *,
            device: str = "cpu", progress: Callable[[int, int], None] | None = None
            ) -> Iterator[Any]:
        """Run ``fn(**job)`` as one Ray task per job; yield the results in job order.

        Every task is submitted at once (the cluster schedules them on its CPUs or GPUs);
        a task whose worker process dies is run again, up to ``[compute] max_retries``
        times. ``progress(done, total)`` counts finished tasks.

        Raises
        ------
        ComputeError
            When a task's worker died more often than it may be retried.
        """
        ray = self.ray
        remote = ray.remote(fn).options(max_retries=self.config.max_retries,
                                        retry_exceptions=False, **self._task_resources(device))
        refs = [remote.remote(**job) for job in jobs]
        total, done, nxt = len(refs), 0, 0
        ready_ids: set[Any] = set()
        pending = list(refs)
        if progress:
            progress(0, total)
        while nxt < total:
            if refs[nxt] not in ready_ids:
                ready, pending = ray.wait(pending, num_returns=1)
                ready_ids.update(ready)
                done += len(ready)
                if progress:
                    progress(done, total)
                continue
            yield self._get(refs[nxt], fn)
            nxt += 1

    def _get(self, ref: Any, fn: Callable[..., Any]) -> Any:
        exc_types = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except (exc_types.WorkerCrashedError, exc_types.NodeDiedError,
                exc_types.ObjectLostError) as exc:
            raise ComputeError(
                f"a Ray task ({getattr(fn, '__name__', fn)}) failed {self.config.max_retries + 1} "
                f"time(s): its worker or node died ({type(exc).__name__}); run the same "
                f"command again to resume (raise [compute] max_retries for a flaky "
                f"cluster)") from None
        except Exception as exc:
            raise user_error(exc) from None

    # ---------------------------------------------------------------- features
    def features(self, job: FeatureJob, keys: Sequence[str],
                 variants: Mapping[str, Sequence[int]], *, device: str,
                 progress: ProgressFn | None = None, label: str = "features"
                 ) -> tuple[str, str, int]:
        """Compute the missing features with Ray Data; the driver writes them to the cache.

        The backbone passes (:func:`~facedialect.training.features.feature_passes`, the
        same as a local run's) are the rows of a Ray Data dataset; ``map_batches`` runs
        them through an actor pool holding the backbone (one actor per GPU, or per two
        CPUs, or ``[compute] feature_actors``), and the driver stores each pass's rows in
        the feature cache as it comes back, atomically: an interrupted extraction keeps
        every pass that came back.

        Returns
        -------
        tuple
            ``(backbone tag, runtime, faces computed)``.
        """
        fcache, runtime = feature_cache_for(job, device)
        todo = missing_variants(keys, fcache, variants)
        if not todo:
            return fcache.backbone_tag, runtime, 0
        passes = feature_passes(todo, PASS_SIZE)
        gpu = device.startswith("cuda")
        actors = self.config.feature_actors or (
            self.gpus() if gpu else max(1, int(self._resources().get("CPU", 1)) // 2))
        actors = max(1, min(actors, len(passes)))
        ds = self.ray.data.from_items([{"pass": json.dumps(p)} for p in passes])
        ds = ds.map_batches(
            FeatureActor, batch_size=1, batch_format="numpy",
            compute=self.ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={"job": job, "runtime": runtime, "device": device},
            **({"num_gpus": 1} if gpu else {"num_cpus": 1}))
        total, done = len(todo), 0
        if progress:
            progress(label, 0, total)
        try:
            for row in ds.iter_rows():
                group = json.loads(row["pass"])
                feats = np.asarray(row["feats"])
                at = 0
                for k, miss in group:
                    fcache.put(k, feats[at:at + len(miss)], miss)
                    at += len(miss)
                done += len(group)
                if progress:
                    progress(label, done, total)
        except FacedialectError:
            raise
        except Exception as exc:
            raise user_error(exc) from None
        return fcache.backbone_tag, runtime, total


def user_error(exc: BaseException) -> BaseException:
    """The error to show for an exception from the cluster.

    A :class:`~facedialect.errors.FacedialectError` raised in a task or actor (a missing
    pre-processed face, a bad input) reaches the driver wrapped by Ray, with the worker's
    traceback in its message; this finds the original (a one-line message for the command
    line). Any other exception is returned as it is.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        cause = getattr(e, "cause", None)
        if isinstance(e, FacedialectError) and not hasattr(e, "cause"):
            return e
        todo.extend([e.__cause__, e.__context__,
                     cause if isinstance(cause, BaseException) else None])
    return exc


class FeatureActor:
    """A Ray Data actor holding the frozen backbone: one backbone pass per row.

    Parameters
    ----------
    job : FeatureJob
        Backbone, weights, pre-processing and the shared cache folder.
    runtime : str
        The runtime the driver's cache is keyed by (``torch`` or ``onnx``).
    device : str
        ``cuda`` (Ray gave this actor a GPU) or ``cpu``.
    """

    def __init__(self, job: FeatureJob, runtime: str, device: str) -> None:
        self.backbone = load_backbone(job.model.backbone, job.model.weights,
                                      allow_download=job.model.allow_download)
        self.runner = feature_runner(self.backbone, runtime, device=device,
                                     cache_dir=job.cache_dir)
        if self.runner.name != runtime:
            raise InputError(f"features: the Ray worker computes with {self.runner.name}, "
                             f"the driver's cache is for {runtime}; install the same "
                             f"facedialect extras on every node")
        self.params = job.preprocess
        self.pcache = preprocess_cache(job.cache_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The features of each pass of ``batch``, as ``(50, D)`` float16 rows (zero-padded)."""
        out = []
        with torch.inference_mode():
            for text in batch["pass"]:
                group = json.loads(str(text))
                feats = compute_pass(group, lambda k: load_face(k, self.pcache),
                                     self.backbone, self.params, self.runner, PASS_SIZE)
                rows = np.zeros((max(N_VARIANTS, len(feats)), feats.shape[1]), np.float16)
                rows[:len(feats)] = feats
                out.append(rows)
        return {"pass": batch["pass"], "feats": np.stack(out)}
