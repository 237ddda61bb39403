"""The study file: one TOML file, validated with pydantic before any work starts.

See docs/study-file.md for every key. Relative paths are resolved against the folder of
the study file. Errors name the file, the key and a fix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from facedialect.errors import InputError, StudyFileError
from facedialect.imageio import absolute_path, expand_user
from facedialect.preprocess.params import PreprocessParams
from facedialect.preprocess.screening import DEFAULT_HASH_DISTANCE, HASH_BITS
from facedialect.vocab import (
    DEFAULT_SUBJECTS,
    EXPRESSIONS,
    STUDY_AUS,
    VOCABULARY,
    in_order,
    normalize_expression,
)

PresetName = Literal["kdef", "krc", "jaffe", "ckplus", "folder", "manifest"]



#: A path given as TOML text: accepted from a string although the sections are strict.
LaxPath = Annotated[Path, Strict(False)]

#: The ``[model] weights`` values that are keywords, not paths.
WEIGHT_KEYWORDS = ("imagenet", "random")


class _Section(BaseModel):
    # strict: true is not the number 1, "7" is not 7, 1 is not true (paths stay lax)
    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True)


def _vocabulary_list(v: list[str], what: str) -> list[str]:
    """Check expression words against the vocabulary; return them in canonical order."""
    words = [str(e).strip().lower() for e in v]
    bad = [e for e in words if e not in VOCABULARY]
    if bad:
        raise ValueError(f"unknown expression(s) {bad} in {what}; valid: {list(VOCABULARY)}")
    dup = sorted({e for e in words if words.count(e) > 1})
    if dup:
        raise ValueError(f"expression(s) {dup} listed twice in {what}")
    return in_order(words)


def _resolve(path: Path, info: ValidationInfo) -> Path:
    return absolute_path(path, (info.context or {}).get("base_dir"), ValueError)


class StudySection(_Section):
    """``[study]``: name, output folder, seed, cache."""

    name: str = Field(description="Study name, used in the report title.", min_length=1)
    output: LaxPath = Field(description="Run directory (relative to the study file); "
                            "neither inside a database folder nor holding one.")
    seed: int = Field(0, ge=0, description="Study seed; every run derives its own from it.")
    cache_dir: LaxPath | None = Field(
        None, description="Shared cache folder (default: $FACEDIALECT_CACHE or "
        "~/.cache/facedialect).")
    expressions: list[str] = Field(
        default_factory=lambda: list(EXPRESSIONS), min_length=2,
        description="The study's label set, from neutral, happy, fearful, sad, angry, "
        "surprised, disgusted, contempt (default: the seven without contempt). Images of "
        "other expressions are excluded; a database's networks get one unit per study "
        "expression it has.")

    @field_validator("expressions")
    @classmethod
    def _expressions_known(cls, v: list[str]) -> list[str]:
        return _vocabulary_list(v, "expressions")

    @field_validator("output", "cache_dir")
    @classmethod
    def _resolve_paths(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else _resolve(v, info)


class DatabaseConfig(_Section):
    """One ``[[databases]]`` entry."""

    name: str = Field(description="Short name used in tables and figures (e.g. KDEF).")
    preset: PresetName = Field(description="Naming scheme: kdef, krc, jaffe, ckplus, folder, "
                               "manifest.")
    root: LaxPath = Field(description="The database folder (never written to).")
    n_subjects: int | None = Field(DEFAULT_SUBJECTS, ge=1, description=(
        "Complete subjects to keep (at least one image of each study expression the "
        "database has); \"all\" keeps every complete subject."))
    culture: str | None = Field(None, description="Culture label for the report.")
    options: dict[str, Any] = Field(default_factory=dict, description="Preset options "
                                    "(docs/databases.md), e.g. takes = 'all' or 'first'.")
    label_map: dict[str, str] = Field(
        default_factory=dict, description="Labels of this database (file-name codes, "
        "folder names, manifest words, CK+ numbers) mapped to a study expression, e.g. "
        "{ joy = 'happy' }; applied before the preset's own reading of the label.")
    exclude_expressions: list[str] = Field(
        default_factory=list, description="Study expressions not used from this database "
        "(e.g. ['contempt']); its networks get no unit for them.")
    merge_labels: bool = Field(False, description="Allow label_map to map two different "
                               "labels onto one expression (else an error).")

    @field_validator("n_subjects", mode="before")
    @classmethod
    def _all_subjects(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip().lower() == "all" else v

    @field_validator("preset", mode="before")
    @classmethod
    def _preset_any_case(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("options")
    @classmethod
    def _options_known(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "preset" not in info.data:  # the preset itself is wrong: reported there
            return v
        from facedialect.databases.options import resolve_options
        from facedialect.databases.presets import get_preset, preset_options

        spec = get_preset(info.data["preset"])
        try:
            resolve_options(spec.name, preset_options(spec), v)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("label_map")
    @classmethod
    def _map_targets_known(cls, v: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, target in v.items():
            word = normalize_expression(str(target))
            if word is None:
                raise ValueError(f"label_map maps {key!r} to {target!r}, which is not an "
                                 f"expression; valid: {list(VOCABULARY)}")
            if not str(key).strip():
                raise ValueError("label_map has an empty label")
            out[str(key).strip()] = word
        return out

    @field_validator("exclude_expressions")
    @classmethod
    def _exclusions_known(cls, v: list[str]) -> list[str]:
        return _vocabulary_list(v, "exclude_expressions")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}", v):
            raise ValueError(
                f"{v!r} is not a usable database name: use 1-40 letters, digits, '_', '-', "
                f"'.', '+' starting with a letter or digit (e.g. 'KDEF')")
        return v

    @field_validator("root")
    @classmethod
    def _root_exists(cls, v: Path, info: ValidationInfo) -> Path:
        p = _resolve(v, info)
        if not p.exists():
            raise ValueError(f"path does not exist: {p}; fix the path (relative paths are "
                             f"resolved against the study file's folder)")
        if not p.is_dir():
            raise ValueError(f"{p} is a file, not a folder; root is the database folder (a "
                             f"manifest preset names its CSV with options = {{ file = ... }})")
        return p


class ModelConfig(_Section):
    """``[model]``: the frozen backbone and its weights (classification stage)."""

    backbone: Literal["alexnet", "mobilenet_v2", "efficientnet_lite0"] = Field(
        "alexnet", description="Frozen ImageNet backbone.")
    weights: str = Field("imagenet", description="'imagenet' (resolved offline/cache), "
                         "'random' (tests only; flagged everywhere) or a path to a .pth file "
                         "(relative to the study file).")
    allow_download: bool = Field(False, description="Allow downloading known ImageNet weight "
                                 "files (checksummed) into the torch hub cache.")
    runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="What runs the frozen backbone for features: 'onnx' (ONNX "
        "Runtime, 2-3x faster on a 2-core CPU; needs pip install "
        "\"facedialect[fast]\"), 'torch' (eager PyTorch) or 'auto' (ONNX Runtime when "
        "installed and the device is a CPU, else PyTorch).")

    @field_validator("weights")
    @classmethod
    def _weights_file(cls, v: str, info: ValidationInfo) -> str:
        if v.strip() in WEIGHT_KEYWORDS:
            return v.strip()
        p = _resolve(Path(v), info)  # the study's folder, not the current one
        if not p.is_file():
            raise ValueError(f"weights {v!r}: {p} does not exist; give the path of a .pth "
                             f"file (relative paths are resolved against the study file's "
                             f"folder) or one of {', '.join(WEIGHT_KEYWORDS)}")
        return str(p)


class TrainingConfig(_Section):
    """``[training]``: the protocol of docs/method.md §5."""

    protocol: Literal["paper", "quick"] = Field(
        "paper", description="'paper' (docs/method.md §5) or 'quick' (CPU-sized, "
        "docs/training.md).")
    runs: int | None = Field(None, ge=1, description="Runs per database (paper: 40).")
    iterations: int | None = Field(None, ge=1, description="SGD iterations (paper: 12000).")
    batch_size: int | None = Field(None, ge=1, description="Mini-batch size (paper: 32).")
    momentum: float | None = Field(None, ge=0, lt=1, description="SGD momentum (paper: "
                                   "not stated).")
    test_variants: int | None = Field(None, ge=1, le=50, description="Augmentation variants "
                                      "each test image is tested in (paper: all 50; quick: "
                                      "the 10 it trains on).")
    split_by: Literal["auto", "subject", "image"] = Field(
        "auto", description="Split unit: 'subject' (all images of a subject in one part, "
        "docs/method.md §5), 'image' (image-wise, stratified by expression; for "
        "web-collected sets) or 'auto' (subject when the database has subject ids, else image).")
    class_balance: Literal["none", "oversample"] = Field(
        "none", description="'oversample': repeat each expression's training images (in a "
        "seeded order) up to the largest expression's count, so every epoch is "
        "class-balanced; 'none': as they are.")


class EvaluationConfig(_Section):
    """``[evaluation]``: matched and swapped testing (docs/method.md §6)."""

    swapped_subjects: Literal["test", "all"] = Field(
        "test", description="Swapped testing on the other database's test subjects of the "
        "same run index ('test', the paper's choice) or on all its included images ('all').")


def _study_aus(v: list[int]) -> list[int]:
    """``v`` when every AU is one of the study AUs, else a ValueError naming the valid ones."""
    bad = [a for a in v if a not in STUDY_AUS]
    if bad:
        raise ValueError(f"unknown AU(s) {bad}; valid: {list(STUDY_AUS)}")
    return v


class TuningConfig(_Section):
    """``[tuning]``: AU stimuli and tuning analysis (docs/method.md §7)."""

    base_face: str = Field("average", description="'average' (average neutral face of the "
                           "study's databases), 'average:RUN_DIR' (that of another run), "
                           "'builtin' (procedural face), '3d' (the ICT 3D model's average "
                           "face), or a path to a face photo (photo-textured 3D face); paths "
                           "are relative to the study file.")
    aus: list[int] = Field(default_factory=lambda: list(STUDY_AUS), description="AUs to vary.")
    levels: int = Field(11, ge=2, description="Intensity steps from 0 to 1.")
    robustness: bool = Field(True, description="Also train every database on all its "
                             "complete subjects (not only the first n_subjects) and "
                             "correlate the profiles with the main ones (docs/method.md §7); runs "
                             "only when some database has more subjects than it uses. "
                             "Doubles the training time at most.")

    @field_validator("base_face")
    @classmethod
    def _base_face_known(cls, v: str, info: ValidationInfo) -> str:
        from facedialect.faces.base import BaseFace
        from facedialect.run.store import RunDir

        face = BaseFace.parse(v, (info.context or {}).get("base_dir"))
        if face.kind == "average" and face.path is not None and not RunDir(
                face.path).table_path("images").is_file():
            raise ValueError(f"'{face}': {face.path} is not a run directory with "
                             "tables/images.csv (run that study with `facedialect run` first)")
        return str(face)

    @field_validator("aus")
    @classmethod
    def _aus_known(cls, v: list[int]) -> list[int]:
        return _study_aus(v)


class MeaningConfig(_Section):
    """``[meaning]``: shared dimensions of meaning from ratings (docs/method.md §9, meaning.md)."""

    ratings: list[LaxPath] = Field(default_factory=list, description="Ratings CSV file(s) "
                                "(image, culture, concept, mean_rating, n_raters[, db, group]); "
                                "none: no meaning analysis.")
    raters: list[LaxPath] = Field(default_factory=list, description="Optional per-rater CSV "
                               "file(s) (image, culture, concept, rater, rating) for the "
                               "split-half reliability ceiling.")
    rating_range: Annotated[tuple[float, float], Strict(False)] = Field(
        (0.0, 1.0), description="Smallest and largest valid rating.")
    cultures: list[str] = Field(default_factory=list, description="Cultures to analyse "
                                "(each must have ratings); empty: all in the ratings.")
    test_groups: list[str] = Field(default_factory=list, description="Groups (ratings' group "
                                   "column) whose images are held out for testing.")
    train_groups: list[str] = Field(default_factory=list, description="Groups trained on "
                                    "(empty: every group not in test_groups).")
    test_share: float = Field(0.25, gt=0.0, le=0.5, description="Without groups: share of "
                              "subjects held out per run (cross-validation folds).")
    runs: int | None = Field(None, ge=1, description="Runs (default from [training] protocol).")
    iterations: int | None = Field(None, ge=1, description="AdamW steps of the heads.")
    batch_size: int | None = Field(None, ge=1, description="Samples per step and run.")
    lr: float | None = Field(None, gt=0.0, description="AdamW learning rate.")
    weight_decay: float | None = Field(None, ge=0.0, description="AdamW weight decay.")
    hidden: int | None = Field(None, ge=0, description="Hidden units per culture head "
                               "(0: linear).")
    dropout: float | None = Field(None, ge=0.0, lt=1.0, description="Dropout before each "
                                  "layer of the heads.")
    variants: int | None = Field(None, ge=1, le=50, description="Augmentation variants used "
                                 "in training and averaged in prediction.")
    shared_concepts: bool = Field(False, description="PPCA between cultures treats concepts "
                                  "of the same name as the same variable.")
    scale: Literal["centre", "standardize"] = Field("centre", description="PPCA: centre the "
                                                    "columns, or also scale them to SD 1.")
    folds: int = Field(5, ge=2, le=50, description="Cross-validation folds of PPCA and "
                       "preservation.")
    permutations: int = Field(1000, ge=19, description="Permutations of the PPCA test.")
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Significance level of each "
                         "PPCA component.")

    @field_validator("ratings", "raters", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str | Path) else v

    @field_validator("ratings", "raters")
    @classmethod
    def _files_exist(cls, v: list[Path], info: ValidationInfo) -> list[Path]:
        out = [_resolve(p, info) for p in v]
        for p in out:
            if not p.is_file():
                raise ValueError(f"file does not exist: {p}; fix the path (relative paths "
                                 f"are resolved against the study file's folder)")
        return out

    @field_validator("rating_range")
    @classmethod
    def _range_ok(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError(f"rating_range must be [smallest, largest] with smallest < "
                             f"largest, got {list(v)}")
        return v

    @property
    def enabled(self) -> bool:
        """Whether the study has ratings (the meaning stage runs)."""
        return bool(self.ratings)


class SaliencyConfig(_Section):
    """``[saliency]``: saliency per face region and emotion modification (docs/method.md §8)."""

    enable: bool = Field(False, description="Run the saliency stage (and the modification "
                         "grid) in `facedialect run`.")
    methods: list[Literal["gradient", "guided"]] = Field(
        default_factory=lambda: ["gradient", "guided"], min_length=1,
        description="Plain input gradients and/or guided back-propagation.")
    score: Literal["probability", "logit"] = Field(
        "probability", description="Differentiated score of the image's own class: its "
        "softmax probability (docs/method.md §8) or its FC3 response.")
    expressions: list[str] = Field(default_factory=lambda: list(VOCABULARY), min_length=1,
                                   description="Expressions whose test images get maps "
                                   "(default: every study expression).")
    images_per_class: int | None = Field(None, ge=1, description="Most test images per "
                                         "database, run and expression (seeded choice; "
                                         "none: all).")
    batch_size: int = Field(16, ge=1, description="Image-run pairs per backward pass.")
    resamples: int = Field(9999, ge=99, description="Relabellings of the permutation test.")
    modify: bool = Field(True, description="Also convert a neutral face to every expression "
                         "with each database's networks (report grid).")
    modify_image: LaxPath | None = Field(None, description="Face photo for the grid (default: "
                                      "the first neutral test face of the first database).")
    modify_method: Literal["visible", "gradient"] = Field(
        "visible", description="'visible': a smooth change optimised over the augmentation "
        "variants, checked on held-out runs (docs/saliency.md); 'gradient': plain "
        "projected gradient ascent on the pixels (the seed's).")
    modify_steps: int = Field(40, ge=1, description="Optimisation steps.")
    modify_step_size: float = Field(2.0, gt=0, description="Gray levels per step: Adam's "
                                    "learning rate ('visible'), or the RMS change of the "
                                    "first step, halved where a step would lower the "
                                    "objective ('gradient').")
    modify_tv_weight: float | None = Field(None, ge=0, description="Weight of the "
                                           "total-variation penalty (mean neighbour "
                                           "difference, gray levels) on the change "
                                           "('visible', default 2) or the image "
                                           "('gradient', default 20).")
    modify_variants: int = Field(4, ge=1, le=50, description="Augmentation variants "
                                 "averaged per step ('visible'; the plain image always).")
    modify_cell: int = Field(16, ge=1, le=64, description="Side in pixels of one free value "
                             "of the smooth change ('visible'; 1: every pixel).")
    modify_held_out: float = Field(0.5, ge=0.0, lt=1.0, description="Share of each "
                                   "database's runs held out of the optimisation to judge "
                                   "it (at least one when there are two runs or more; 0: "
                                   "none).")

    @field_validator("expressions")
    @classmethod
    def _expressions_known(cls, v: list[str]) -> list[str]:
        return _vocabulary_list(v, "[saliency] expressions")

    @field_validator("modify_image")
    @classmethod
    def _image_exists(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return None
        p = _resolve(v, info)
        if not p.is_file():
            raise ValueError(f"file does not exist: {p}; fix the path (relative paths are "
                             f"resolved against the study file's folder)")
        return p


class ScreeningConfig(_Section):
    """``[screening]``: near duplicates, face size and blur (docs/method.md §1, preprocessing)."""

    near_duplicates: bool = Field(True, description="Find near-duplicate images (resized, "
                                  "re-encoded or mirrored copies) within and between the "
                                  "databases; keep the first of each group (databases in "
                                  "study order, then paths) and exclude the others.")
    hash_distance: int = Field(DEFAULT_HASH_DISTANCE, ge=0, le=HASH_BITS // 2,
                               description="Largest perceptual-hash distance (bits of 576) "
                               "of near duplicates; measured on the London set: resized, "
                               "re-encoded or mirrored copies 0-24 (harsh ones up to 44), "
                               "another photo of the same person 88 and more, different "
                               "people 134 and more.")
    within_subject: bool = Field(False, description="Also compare images of one subject in "
                                 "one database (default: no; the subject-wise split keeps "
                                 "them in one part, so a copy there cannot reach the test "
                                 "set, and a poser's takes of one expression can be nearly "
                                 "the same photo). Set it with [training] split_by = 'image'.")
    min_face: int = Field(40, ge=0, description="Smallest detected face box width in pixels "
                          "of the original image; smaller faces are excluded (0: no limit).")
    min_sharpness: float = Field(0.0, ge=0.0, description="Smallest face sharpness (variance "
                                 "of the Laplacian of the face box at 64x64, SD 32); "
                                 "blurrier faces are excluded (0: no limit; the London "
                                 "studio photos score 244-861).")


class ReportConfig(_Section):
    """``[report]``: the HTML report."""

    title: str | None = Field(None, description="Report title (default: the study name).")
    contact_sheet_per_expression: int = Field(4, ge=1, le=12, description="Faces per "
                                              "expression on the contact sheet.")


class MentalModelsConfig(_Section):
    """``[mental_models]``: each network's model of each expression by reverse correlation.

    Random combinations of AUs are rendered on a few faces; every network's class
    probabilities for them are reverse-correlated with the AUs (docs/method.md §11,
    docs/mental-models.md).
    """

    enable: bool = Field(False, description="Run the mental-models stage in `facedialect run`.")
    trials: int = Field(2400, ge=50, le=200_000, description="Random AU combinations (faces).")
    faces: str = Field("builtin", description="'builtin' (procedural identities, half female) "
                       "or a folder of frontal face photos (photo-textured 3D faces).")
    identities: int = Field(4, ge=1, le=100, description="Faces the trials are shown on "
                            "(trial i on face i mod identities).")
    aus: list[int] = Field(default_factory=lambda: list(STUDY_AUS), description="AUs drawn.")
    min_aus: int = Field(1, ge=1, description="Fewest active AUs per trial.")
    max_aus: int = Field(6, ge=1, description="Most active AUs per trial.")
    method: Literal["weighted", "ridge"] = Field(
        "weighted", description="'weighted': response-weighted mean AU pattern minus the "
        "trial mean (classic reverse correlation); 'ridge': ridge-regression weights.")
    permutations: int = Field(199, ge=19, description="Permutations per AU test.")
    bootstrap: int = Field(199, ge=19, description="Bootstrap resamples of the intervals.")
    size: int = Field(256, ge=64, le=1024, description="Side of the rendered faces (px).")
    modify: bool = Field(False, description="Also search, per database and expression, the "
                         "AU intensities that most raise the expression (CMA-ES).")
    modify_evaluations: int = Field(200, ge=10, le=100_000, description="Faces rendered and "
                                    "judged per search.")
    modify_sparsity: float = Field(0.02, ge=0.0, description="Penalty per unit of summed AU "
                                   "intensity (fewer, weaker AUs).")
    sides: bool = Field(False, description="Also show one-sided AUs: each active AU whose "
                        "3-D recipe has left and right halves is shown on both sides, the "
                        "left only or the right only (equal chances), and modelled per side "
                        "(needs faces = FOLDER: the built-in face has no one-sided AUs).")
    show_on: list[str] = Field(default_factory=lambda: ["trials", "average"], min_length=1,
                               description="Faces the models and the AU vectors found are "
                               "rendered on, one figure each: 'trials' (the first face of the "
                               "trials), 'average' (the average neutral face of the study's "
                               "databases), 'builtin', '3d', or a face photo (relative to the "
                               "study file).")

    @field_validator("show_on")
    @classmethod
    def _faces_known(cls, v: list[str], info: ValidationInfo) -> list[str]:
        from facedialect.faces.base import BaseFace

        out = [f if f == "trials" else str(BaseFace.parse(f, (info.context or {}).get(
            "base_dir"))) for f in v]
        return list(dict.fromkeys(out))

    @field_validator("aus")
    @classmethod
    def _aus_known(cls, v: list[int]) -> list[int]:
        if len(set(_study_aus(v))) < 2:
            raise ValueError("give at least 2 distinct AUs")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _aus_per_trial(self) -> MentalModelsConfig:
        if self.min_aus > self.max_aus:
            raise ValueError(f"min_aus ({self.min_aus}) is above max_aus ({self.max_aus})")
        if self.sides and self.faces == "builtin":
            raise ValueError("sides = true needs faces = FOLDER (photo-textured 3-D faces): "
                             "the built-in face has no one-sided AUs")
        return self


class ComputeConfig(_Section):
    """``[compute]``: where the costly work runs: this process, or a Ray cluster.

    Only where the work runs: the numbers, tables and report are the same for either
    engine (docs/scaling.md), so changing this section never makes a stage out of date.
    """

    engine: Literal["local", "ray"] = Field(
        "local", description="'local' (this process) or 'ray' (feature extraction with Ray "
        "Data, training as one Ray task per database and group of runs; needs pip install "
        "\"facedialect[ray]\").")
    address: str | None = Field(
        None, description="The Ray cluster to join: 'auto' (the one `ray start` runs on "
        "this machine), 'ray://HOST:10001' or 'HOST:6379'; default: start a Ray instance "
        "on this machine. Only with engine = 'ray'.")
    feature_actors: int | None = Field(
        None, ge=1, description="Backbone copies (Ray Data actors) computing features; "
        "default: one per GPU of the cluster, else one per 2 CPUs.")
    train_tasks: int | None = Field(
        None, ge=1, description="Ray tasks per database (each trains a group of its runs "
        "with the batched trainer); default: as many as the cluster has GPUs (or CPUs), "
        "at most one per run.")
    gpus: Literal["auto", "never"] = Field(
        "auto", description="'auto': features and training on the cluster's GPUs when it "
        "has any (one per task), else on CPUs; 'never': CPUs only.")
    max_retries: int = Field(3, ge=0, le=100, description="Times Ray runs a task again "
                             "whose worker process died (killed, node lost).")

    @model_validator(mode="after")
    def _address_needs_ray(self) -> ComputeConfig:
        if self.address is not None and self.engine != "ray":
            raise ValueError(f"address {self.address!r} is for engine = 'ray'; set engine = "
                             "'ray' or remove address")
        return self


class Study(_Section):
    """A whole study file."""

    study: StudySection
    databases: list[DatabaseConfig] = Field(min_length=1)
    preprocess: PreprocessParams = Field(default_factory=PreprocessParams)
    screening: ScreeningConfig = Field(default_factory=ScreeningConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    meaning: MeaningConfig = Field(default_factory=MeaningConfig)
    saliency: SaliencyConfig = Field(default_factory=SaliencyConfig)
    mental_models: MentalModelsConfig = Field(default_factory=MentalModelsConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)

    @model_validator(mode="after")
    def _unique_names(self) -> Study:
        names = [d.name for d in self.databases]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"database names must be unique; repeated: {dup}")
        return self

    @model_validator(mode="after")
    def _output_apart_from_databases(self) -> Study:
        problems = output_conflicts(self.study.output, self.databases, self.study.cache_dir)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _labels_fit_the_study(self) -> Study:
        study = set(self.study.expressions)
        for d in self.databases:
            off = sorted({t for t in d.label_map.values() if t not in study})
            if off:
                raise ValueError(
                    f"database {d.name!r}: label_map maps onto {off}, not among [study] "
                    f"expressions {self.study.expressions}; add them there or use "
                    f"exclude_expressions")
            left = [e for e in self.study.expressions if e not in d.exclude_expressions]
            if len(left) < 2:
                raise ValueError(f"database {d.name!r}: exclude_expressions leaves "
                                 f"{left or 'no expression'}; a classifier needs at least 2")
        return self

    def database_expressions(self, name: str) -> list[str]:
        """The study expressions database ``name`` may use (before looking at its images)."""
        db = next(d for d in self.databases if d.name == name)
        return [e for e in self.study.expressions if e not in db.exclude_expressions]

    def to_toml(self) -> str:
        """Return the resolved study (defaults filled in) as TOML text."""
        data = self.model_dump(mode="json", exclude_none=True)
        for db, out in zip(self.databases, data["databases"], strict=True):
            if db.n_subjects is None:  # TOML has no null
                out["n_subjects"] = "all"
        return tomli_w.dumps(data)


_S = TypeVar("_S", bound=Study)


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved)."""
    return path == folder or folder in path.parents


def output_conflicts(output: Path, databases: Sequence[DatabaseConfig],
                     cache_dir: Path | None = None, *, output_name: str = "[study] output",
                     ) -> list[str]:
    """Ways in which the run directory (or the cache) and the database folders overlap.

    Nothing may be written into a database folder, so the output and the cache must not lie
    inside a database root. A database root inside the output is refused too: the run owns
    its folder (it adds ``tables/``, ``figures/``, ``heads/``, ``stimuli/``, ``faces/``,
    ``modify/``, ``robustness/`` ... as stages are added, and natural database folder names
    such as ``faces`` are among them), and deleting a run to start over must never delete
    a database.

    Parameters
    ----------
    output : Path
        The run directory, resolved.
    databases : sequence of DatabaseConfig
        The databases (roots resolved).
    cache_dir : Path, optional
        The configured cache folder, resolved.
    output_name : str
        How the messages name the output (``--out`` on the command line).

    Returns
    -------
    list of str
        One message per overlap (empty: none).
    """
    out = []
    for db in databases:
        root = db.root
        if _inside(output, root):
            out.append(f"{output_name} {output} is inside the root of database {db.name!r} "
                       f"({root}): facedialect never writes into a database folder; choose "
                       f"an output folder outside it (e.g. next to the study file)")
        elif _inside(root, output):
            out.append(f"the root of database {db.name!r} ({root}) is inside the run "
                       f"directory {output_name} {output}: the run owns that folder; move "
                       f"the database or choose another output folder so neither holds the "
                       f"other")
        if cache_dir is not None and _inside(cache_dir, root):
            out.append(f"[study] cache_dir {cache_dir} is inside the root of database "
                       f"{db.name!r} ({root}): facedialect never writes into a database "
                       f"folder; choose a cache folder outside it")
    return out


_FIX = {
    "extra_forbidden": "remove it or fix its spelling; allowed keys here: {allowed}",
    "missing": "add this key (see docs/study-file.md)",
    "literal_error": "use one of the allowed values",
    "int_type": "write a whole number without quotes (true/false are not numbers)",
    "float_type": "write a number without quotes (true/false are not numbers)",
    "bool_type": "write true or false without quotes",
}


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    model: Any = Study
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return "?"
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type)
                      and issubclass(a, BaseModel)), None)
        if model is None:
            return "?"
    return ", ".join(model.model_fields) if hasattr(model, "model_fields") else "?"


def format_validation_error(path: Path, exc: ValidationError) -> str:
    """Turn a pydantic error into lines ``FILE: KEY: problem; fix``."""
    lines = [f"{path}: the study file is not valid ({exc.error_count()} problem(s)):"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        fix = _FIX.get(err["type"], "")
        if "{allowed}" in fix:
            fix = fix.format(allowed=_allowed_keys(loc))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {path.name}: {_loc(loc)}: {msg}" + (f" — {fix}" if fix else ""))
    return "\n".join(lines)


_M = TypeVar("_M", bound=BaseModel)


def validate_options(model: type[_M], data: Mapping[str, Any], flags: Mapping[str, str],
                     base_dir: str | Path | None = None) -> _M:
    """Validate command-line values with a study-file model; errors name the options.

    Parameters
    ----------
    model : type
        The section model (e.g. :class:`DatabaseConfig`).
    data : mapping
        The values, keyed by the model's field names.
    flags : mapping of str to str
        The option that gave each field (e.g. ``{"n_subjects": "--n-subjects"}``).
    base_dir : str or Path, optional
        Folder against which relative paths are resolved (default: the current folder).

    Raises
    ------
    InputError
        One line: ``--option 'value': problem`` for each problem, separated by ``;``.
    """
    base = Path.cwd() if base_dir is None else Path(base_dir)
    try:
        return model.model_validate(dict(data), context={"base_dir": base})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = err["loc"][0] if err["loc"] else ""
            flag = flags.get(str(key), str(key) or "options")
            msg = err["msg"].removeprefix("Value error, ")
            value = data.get(str(key))
            shown = "" if err["type"] == "value_error" or value is None else (
                f" {str(value)!r}" if isinstance(value, Path) else f" {value!r}")
            problems.append(f"{flag}{shown}: {msg}")
        raise InputError("; ".join(problems)) from None


def parse_study(data: dict[str, Any], base_dir: str | Path, source: str | Path = "<study>",
                cls: type[_S] | None = None) -> _S:
    """Validate a study given as a dict (as read from TOML).

    Parameters
    ----------
    data : dict
        The parsed TOML.
    base_dir : str or Path
        Folder against which relative paths are resolved.
    source : str or Path
        Name used in error messages.
    cls : type, optional
        The :class:`Study` class to make (a subclass, e.g. the public API's).

    Raises
    ------
    StudyFileError
        With one line per problem: file, key, what is wrong and how to fix it.
    """
    model = cls if cls is not None else Study
    try:
        return model.model_validate(data, context={"base_dir": Path(base_dir)})  # type: ignore[return-value]
    except ValidationError as exc:
        raise StudyFileError(format_validation_error(Path(source), exc)) from None


def load_study(path: str | Path, cls: type[_S] | None = None) -> _S:
    """Read and validate a TOML study file.

    Parameters
    ----------
    path : str or Path
        The study file.
    cls : type, optional
        The :class:`Study` class to make (a subclass, e.g. the public API's).

    Returns
    -------
    Study
        The validated study, relative paths resolved.

    Raises
    ------
    StudyFileError
        When the file is missing, not valid TOML, or not a valid study.
    """
    path = expand_user(path, StudyFileError)
    if not path.is_file():
        raise StudyFileError(f"{path}: study file not found; give the path to a .toml file "
                             f"(see docs/study-file.md for an example)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{path}: not valid TOML: {exc}; fix the syntax there") from None
    except UnicodeDecodeError as exc:
        raise StudyFileError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8") from None
    return parse_study(data, path.parent.resolve(), path, cls)


__all__ = [
    "EXPRESSIONS", "STUDY_AUS", "WEIGHT_KEYWORDS", "ComputeConfig", "DatabaseConfig",
    "EvaluationConfig",
    "MeaningConfig", "MentalModelsConfig", "ModelConfig",
    "ReportConfig", "SaliencyConfig", "ScreeningConfig", "Study", "StudySection",
    "TrainingConfig",
    "TuningConfig", "load_study", "output_conflicts", "parse_study", "validate_options",
]
