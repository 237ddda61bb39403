"""A known-answer check of the saliency method: two synthetic cultures drawn in memory.

:func:`synthetic_cultures` draws culture A (classic prototypes) and culture B (changed
fearful, angry, sad, disgusted; docs/method.md §10) with the built-in procedural face,
pre-processes every image, maps the face's exact 68 landmarks into the pre-processed
crop, extracts plain-variant features with the given backbone and trains each culture's
heads with the given protocol. It backs tests/test_saliency_cultures.py and
bench/saliency_validation.py (docs/validation.md, "Saliency").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from facedialect.faces.procedural.geometry import landmarks
from facedialect.faces.procedural.render import render_face
from facedialect.models.backbones import Backbone
from facedialect.preprocess.params import PreprocessParams
from facedialect.preprocess.pipeline import crop_box, preprocess_face
from facedialect.synthetic.cultures import EastWestPreset, sample_poser_expressions
from facedialect.training.protocol import QUICK, Protocol
from facedialect.training.splits import run_seeds, split_run
from facedialect.training.trainer import MultiRunHead, RunPlan, train_runs
from facedialect.vocab import EXPRESSIONS

__all__ = ["CHECK_PROTOCOL", "SyntheticCultures", "synthetic_cultures", "train_cultures"]

#: 8 runs (so most posers are tested by some run), small heads (256 hidden units), 160
#: iterations at learning rate 1e-3 and the plain variant only: CPU-sized.
CHECK_PROTOCOL = replace(QUICK, runs=8, hidden=256, variants=1, iterations=160,
                         lr_schedule=((0, 1e-3),))


@dataclass
class SyntheticCultures:
    """Trained networks and test material of the two synthetic cultures.

    Attributes
    ----------
    heads : dict
        Culture (``"A"``, ``"B"``) -> (heads, run ids).
    faces, landmarks : dict
        Image id (``"{culture}/{subject}/{expression}"``) -> pre-processed face / its
        exact ``(68, 2)`` landmarks in the face's pixels.
    splits : pandas.DataFrame
        ``db, path, subject, expression, run, part`` as in ``tables/splits.csv``.
    """

    heads: dict[str, tuple[MultiRunHead, list[int]]]
    faces: dict[str, np.ndarray]
    landmarks: dict[str, np.ndarray]
    splits: pd.DataFrame


def synthetic_cultures(backbone: Backbone, posers: int = 20, *, seed: int = 7,
                       protocol: Protocol = CHECK_PROTOCOL,
                       params: PreprocessParams | None = None) -> SyntheticCultures:
    """Draw, pre-process and train the two synthetic cultures.

    Parameters
    ----------
    backbone : Backbone
        The frozen backbone (ImageNet weights for a meaningful check).
    posers : int
        Posers per culture.
    seed : int
        Seed of the posers (culture ``k`` uses ``default_rng([seed, k])``); the runs'
        seeds derive from study seed 0.
    protocol : Protocol
        Training protocol (its ``variants`` is ignored: plain variant only).
    params : PreprocessParams, optional
        Pre-processing (default parameters).

    Returns
    -------
    SyntheticCultures
    """
    params = params or PreprocessParams()
    preset = EastWestPreset(n_posers=posers, seed=seed)
    rows, faces, marks = [], {}, {}
    for k, culture in enumerate("AB"):
        rng = np.random.default_rng([seed, k])
        for poser in sample_poser_expressions(culture, preset, rng):
            for im in poser.images:
                res = preprocess_face(render_face(im.identity, im.aus, size=256), params)
                if res.image is None or res.box is None:
                    continue
                x0, y0, side = crop_box(res.box, params)
                scale = params.size / side  # original pixel centres -> crop pixel centres
                path = f"{culture}/{poser.subject}/{im.expression}"
                marks[path] = (landmarks(im.identity, im.aus, 256) + 0.5
                               - (x0, y0)) * scale - 0.5
                faces[path] = res.image
                rows.append({"db": culture, "path": path, "subject": poser.subject,
                             "expression": im.expression})
    images = pd.DataFrame(rows)
    channels_last = next(backbone.parameters()).is_contiguous(
        memory_format=torch.channels_last)
    with torch.inference_mode():
        x = backbone.to_input(np.stack([faces[p] for p in images["path"]]))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = torch.cat([backbone(x[i:i + 32]) for i in range(0, len(x), 32)])
    heads, splits = train_cultures(images, feats, replace(protocol, variants=1))
    return SyntheticCultures(heads, faces, marks, splits)


def train_cultures(images: pd.DataFrame, feats: torch.Tensor, protocol: Protocol
                   ) -> tuple[dict[str, tuple[MultiRunHead, list[int]]], pd.DataFrame]:
    """Train every culture's runs on in-memory plain-variant features.

    Parameters
    ----------
    images : pandas.DataFrame
        One row per image: ``db, path, subject, expression``.
    feats : torch.Tensor
        ``(len(images), D)`` backbone features of the images, in the same order.
    protocol : Protocol
        Training protocol (``variants`` should be 1: one feature row per image).

    Returns
    -------
    heads : dict
        Culture -> (trained heads in eval mode, the runs that did not fail).
    splits : pandas.DataFrame
        ``images``' columns plus ``run, part``; the runs' seeds derive from study seed 0.
    """
    heads: dict[str, tuple[MultiRunHead, list[int]]] = {}
    splits = []
    for db in dict.fromkeys(images["db"]):
        sel = (images["db"] == db).to_numpy()
        part = images[sel].reset_index(drop=True)
        labels = torch.tensor([EXPRESSIONS.index(e) for e in part["expression"]])
        plans = []
        for r in range(protocol.runs):
            seeds = run_seeds(0, db, r)
            where = split_run(part, seeds.split, protocol.split)
            splits.append(part.assign(run=r, part=where.to_numpy()))
            plans.append(RunPlan(r, seeds, np.flatnonzero(where == "train"),
                                 np.flatnonzero(where == "validation")))
        out = train_runs(feats[torch.from_numpy(sel.copy())][:, None], labels, plans, protocol)
        heads[db] = (out.head.eval(), [r for r in range(protocol.runs) if r not in out.failed])
    return heads, pd.concat(splits, ignore_index=True)
