from pathlib import Path

import pytest

from facedialect.config import Study, load_study, parse_study
from facedialect.errors import StudyFileError
from facedialect.vocab import STUDY_AUS


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "db").mkdir(exist_ok=True)
    p = tmp_path / "study.toml"
    p.write_text(text, encoding="utf-8")
    return p


GOOD = """
[study]
name = "kdef vs krc"
output = "runs/out"
seed = 7

[[databases]]
name = "KDEF"
preset = "kdef"
root = "db"

[[databases]]
name = "KRC"
preset = "krc"
root = "db"
n_subjects = 30
options = { view = "d" }
"""


def test_valid_study_resolves_relative_paths(tmp_path):
    study = load_study(_write(tmp_path, GOOD))
    assert study.study.output == (tmp_path / "runs/out").resolve()
    assert study.databases[0].root == (tmp_path / "db").resolve()
    assert study.databases[0].n_subjects == 60
    assert study.databases[1].n_subjects == 30
    assert study.databases[1].options == {"view": "d"}
    assert study.tuning.aus == list(STUDY_AUS)
    assert study.preprocess.size == 224


def test_round_trip_of_resolved_toml(tmp_path):
    study = load_study(_write(tmp_path, GOOD))
    out = tmp_path / "resolved.toml"
    out.write_text(study.to_toml(), encoding="utf-8")
    again = load_study(out)
    assert again.model_dump() == study.model_dump()


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (GOOD.replace("seed = 7", "seed = 7\nsede = 3"),
         ["study.toml", "study.sede", "remove it or fix its spelling", "seed"]),
        (GOOD.replace("seed = 7", 'seed = "seven"'), ["study.seed", "integer"]),
        (GOOD.replace('root = "db"\n\n', 'root = "nowhere"\n\n', 1),
         ["databases[0].root", "path does not exist", "nowhere"]),
        (GOOD.replace('preset = "krc"', 'preset = "kdf"'),
         ["databases[1].preset", "kdef"]),
        (GOOD.replace('name = "kdev vs krc"', "").replace('name = "kdef vs krc"\n', ""),
         ["study.name", "add this key"]),
        (GOOD.replace('name = "KRC"', 'name = "KDEF"'), ["unique", "KDEF"]),
        (GOOD + "\n[tuning]\naus = [1, 3]\n", ["tuning.aus", "unknown AU", "[3]"]),
        (GOOD + "\n[preprocess]\nsize = -4\n", ["preprocess.size"]),
        (GOOD + "\n[training]\nprotocol = 'fast'\n", ["training.protocol", "paper"]),
        (GOOD.replace('name = "KDEF"', 'name = "my db/../x"'), ["databases[0].name"]),
        (GOOD + "\n[mental_models]\nsides = true\n", ["mental_models", "faces = FOLDER",
                                                      "no one-sided AUs"]),
        (GOOD + "\n[mental_models]\nshow_on = ['trials', 'avg']\n",
         ["mental_models.show_on", "avg"]),
        (GOOD + "\n[saliency]\nmodify_method = 'pixels'\n",
         ["saliency.modify_method", "visible"]),
    ],
)
def test_invalid_study_names_file_key_and_fix(tmp_path, text, fragments):
    with pytest.raises(StudyFileError) as info:
        load_study(_write(tmp_path, text))
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_toml_syntax_error_names_file(tmp_path):
    with pytest.raises(StudyFileError, match=r"study.toml: not valid TOML.*line"):
        load_study(_write(tmp_path, GOOD + "\n[study\n"))


def test_missing_study_file(tmp_path):
    with pytest.raises(StudyFileError, match="study file not found"):
        load_study(tmp_path / "nope.toml")


def test_at_least_one_database(tmp_path):
    with pytest.raises(StudyFileError, match="databases"):
        parse_study({"study": {"name": "x", "output": "o"}, "databases": []}, tmp_path)


def test_every_field_is_documented():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "study-file.md").read_text()
    for section, field in Study.model_fields.items():
        model = field.annotation
        if section == "databases":
            model = field.annotation.__args__[0]
        for key in model.model_fields:
            assert f"`{key}`" in doc, f"[{section}] {key} missing from docs/study-file.md"


def test_example_kdef_vs_krc_study_file_is_valid(tmp_path):
    """docs/examples/kdef-vs-krc.toml validates once its roots point at real folders."""
    from facedialect.config import load_study

    text = (Path(__file__).resolve().parents[1] / "docs" / "examples"
            / "kdef-vs-krc.toml").read_text()
    for name in ("KDEF", "KRC"):
        (tmp_path / name).mkdir()
        text = text.replace(f'"/data/{name}"', f'"{tmp_path / name}"')
    (tmp_path / "s.toml").write_text(text)
    study = load_study(tmp_path / "s.toml")
    assert [d.name for d in study.databases] == ["KDEF", "KRC"]
    assert [d.n_subjects for d in study.databases] == [60, 60]
    assert study.model.backbone == "alexnet" and study.training.protocol == "paper"
    assert study.databases[1].options == {"view": "d"}
