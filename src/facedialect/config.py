"""The study file: one TOML file, validated with pydantic before any work starts.

See docs/study-file.md for every key. Relative paths are resolved against the folder of
the study file. Errors name the file, the key and a fix.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from facedialect.errors import StudyFileError
from facedialect.labels import EXPRESSIONS
from facedialect.preprocess.params import PreprocessParams

PresetName = Literal["kdef", "krc", "jaffe", "ckplus", "folder", "manifest"]

#: The study AUs of the reference study (SCIENCE §7).
STUDY_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 15, 16, 17, 20, 22, 23, 24, 25,
                              26, 27)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = Path(path).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path.resolve()


class StudySection(_Section):
    """``[study]``: name, output folder, seed, cache."""

    name: str = Field(description="Study name, used in the report title.", min_length=1)
    output: Path = Field(description="Run directory (relative to the study file).")
    seed: int = Field(0, ge=0, description="Study seed; every run derives its own from it.")
    cache_dir: Path | None = Field(
        None, description="Shared cache folder (default: $FACEDIALECT_CACHE or "
        "~/.cache/facedialect).")

    @field_validator("output", "cache_dir")
    @classmethod
    def _resolve_paths(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else _resolve(v, info)


class DatabaseConfig(_Section):
    """One ``[[databases]]`` entry."""

    name: str = Field(description="Short name used in tables and figures (e.g. KDEF).")
    preset: PresetName = Field(description="Naming scheme: kdef, krc, jaffe, ckplus, folder, "
                               "manifest.")
    root: Path = Field(description="The database folder (never written to).")
    n_subjects: int | None = Field(60, ge=1, description="Subjects with all 7 expressions to "
                                   "keep (none = all).")
    culture: str | None = Field(None, description="Culture label for the report.")
    options: dict[str, Any] = Field(default_factory=dict, description="Preset options "
                                    "(docs/databases.md).")

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
        return p


class ModelConfig(_Section):
    """``[model]``: the frozen backbone and its weights (classification stage)."""

    backbone: Literal["alexnet", "mobilenet_v2", "efficientnet_lite0"] = Field(
        "alexnet", description="Frozen ImageNet backbone.")
    weights: str = Field("imagenet", description="'imagenet' (resolved offline/cache), "
                         "'random' (tests only; flagged everywhere) or a path to a .pth file.")
    allow_download: bool = Field(False, description="Allow downloading known ImageNet weight "
                                 "files (checksummed) into the torch hub cache.")


class TrainingConfig(_Section):
    """``[training]``: the protocol of SCIENCE §5."""

    protocol: Literal["paper", "quick"] = Field("paper", description="'paper' (SCIENCE §5) or "
                                                "'quick' (CPU-sized, docs/training.md).")
    runs: int | None = Field(None, ge=1, description="Runs per database (paper: 40).")
    iterations: int | None = Field(None, ge=1, description="SGD iterations (paper: 12000).")
    batch_size: int | None = Field(None, ge=1, description="Mini-batch size (paper: 32).")
    momentum: float | None = Field(None, ge=0, lt=1, description="SGD momentum (paper: "
                                   "not stated).")


class EvaluationConfig(_Section):
    """``[evaluation]``: matched and swapped testing (SCIENCE §6)."""

    swapped_subjects: Literal["test", "all"] = Field(
        "test", description="Swapped testing on the other database's test subjects of the "
        "same run index ('test', the paper's choice) or on all its included images ('all').")


class TuningConfig(_Section):
    """``[tuning]``: AU stimuli and tuning analysis (SCIENCE §7)."""

    base_face: str = Field("average", description="'average' (average neutral face of the "
                           "study's databases; to come), 'builtin' (procedural face), '3d' "
                           "(the ICT 3D model's average face), or a path to a photo (to come).")
    aus: list[int] = Field(default_factory=lambda: list(STUDY_AUS), description="AUs to vary.")
    levels: int = Field(11, ge=2, description="Intensity steps from 0 to 1.")
    robustness: bool = Field(True, description="Also train every database on all its "
                             "complete subjects (not only the first n_subjects) and "
                             "correlate the profiles with the main ones (SCIENCE §7); runs "
                             "only when some database has more subjects than it uses. "
                             "Doubles the training time at most.")

    @field_validator("aus")
    @classmethod
    def _aus_known(cls, v: list[int]) -> list[int]:
        bad = [a for a in v if a not in STUDY_AUS]
        if bad:
            raise ValueError(f"unknown AU(s) {bad}; valid: {list(STUDY_AUS)}")
        return v


class ReportConfig(_Section):
    """``[report]``: the HTML report."""

    title: str | None = Field(None, description="Report title (default: the study name).")
    contact_sheet_per_expression: int = Field(4, ge=1, le=12, description="Faces per "
                                              "expression on the contact sheet.")


class Study(_Section):
    """A whole study file."""

    study: StudySection
    databases: list[DatabaseConfig] = Field(min_length=1)
    preprocess: PreprocessParams = Field(default_factory=PreprocessParams)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="after")
    def _unique_names(self) -> Study:
        names = [d.name for d in self.databases]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"database names must be unique; repeated: {dup}")
        return self

    def to_toml(self) -> str:
        """Return the resolved study (defaults filled in) as TOML text."""
        data = self.model_dump(mode="json", exclude_none=True)
        return tomli_w.dumps(data)


_FIX = {
    "extra_forbidden": "remove it or fix its spelling; allowed keys here: {allowed}",
    "missing": "add this key (see docs/study-file.md)",
    "literal_error": "use one of the allowed values",
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


def parse_study(data: dict[str, Any], base_dir: str | Path, source: str | Path = "<study>"
                ) -> Study:
    """Validate a study given as a dict (as read from TOML).

    Parameters
    ----------
    data : dict
        The parsed TOML.
    base_dir : str or Path
        Folder against which relative paths are resolved.
    source : str or Path
        Name used in error messages.

    Raises
    ------
    StudyFileError
        With one line per problem: file, key, what is wrong and how to fix it.
    """
    try:
        return Study.model_validate(data, context={"base_dir": Path(base_dir)})
    except ValidationError as exc:
        raise StudyFileError(format_validation_error(Path(source), exc)) from None


def load_study(path: str | Path) -> Study:
    """Read and validate a TOML study file.

    Parameters
    ----------
    path : str or Path
        The study file.

    Returns
    -------
    Study
        The validated study, relative paths resolved.

    Raises
    ------
    StudyFileError
        When the file is missing, not valid TOML, or not a valid study.
    """
    path = Path(path)
    if not path.is_file():
        raise StudyFileError(f"{path}: study file not found; give the path to a .toml file "
                             f"(see docs/study-file.md for an example)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{path}: not valid TOML: {exc}; fix the syntax there") from None
    except UnicodeDecodeError as exc:
        raise StudyFileError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8") from None
    return parse_study(data, path.parent.resolve(), path)


__all__ = [
    "EXPRESSIONS", "STUDY_AUS", "DatabaseConfig", "EvaluationConfig", "ModelConfig",
    "ReportConfig", "Study", "StudySection", "TrainingConfig", "TuningConfig", "load_study",
    "parse_study",
]
