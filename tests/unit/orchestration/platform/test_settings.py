"""Every `HMTL_*` variable is a field of one pydantic-settings model: read as the environment
holds it now, a bad value is one line naming the variable, and the README lists them all."""

import re
from pathlib import Path

import pytest

from hmtl.trainables.settings import HmtlSettings, SettingsError, settings, variable

README = Path(__file__).parents[4] / "README.md"
REPO = Path(__file__).parents[4]


def test_defaults_without_any_variable(monkeypatch):
    for field in HmtlSettings.model_fields:
        monkeypatch.delenv(variable(field), raising=False)
    now = settings()
    assert now.storage_retry_s == 180 and now.tracking_budget_s == 300
    assert now.reuse_actors and now.gc_freeze and now.usd_per_hour is None


def test_the_environment_is_read_again_when_it_changes(monkeypatch):
    monkeypatch.setenv("HMTL_TRACKING_BUDGET_S", "7")
    assert settings().tracking_budget_s == 7
    monkeypatch.setenv("HMTL_TRACKING_BUDGET_S", "8")
    assert settings().tracking_budget_s == 8
    monkeypatch.setenv("HMTL_GC_FREEZE", "0")
    assert settings().gc_freeze is False
    monkeypatch.setenv("HMTL_USD_PER_HOUR", "")
    assert settings().usd_per_hour is None  # empty counts as unset


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HMTL_TRACKING_BUDGET_S", "soon"),
        ("HMTL_STORAGE_RETRY_S", "nan"),
        ("HMTL_DATASET_CACHE_MB", "-5"),
        ("HMTL_USD_PER_HOUR", "lots"),
        ("HMTL_REUSE_ACTORS", "maybe"),
        ("HMTL_S3_ENDPOINT", "not a url"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_and_the_value(name, value, monkeypatch):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        settings()
    assert str(err.value).startswith(f"{name}={value!r}: not ") and "\n" not in str(err.value)


def test_the_readme_table_lists_every_variable_and_the_code_reads_no_other():
    table = set(re.findall(r"^\| `(HMTL_[A-Z0-9_]+)`", README.read_text(), re.M))
    assert table == {variable(f) for f in HmtlSettings.model_fields}
    # No HMTL_* variable read behind the model's back (os.environ / getenv in the code).
    code = [*REPO.glob("orchestration/**/*.py"), *REPO.glob("trainables/**/*.py")]
    direct = [
        path.name
        for path in code
        if re.search(r"(environ\.get|getenv|environ\[)\(?[\"']HMTL_", path.read_text())
    ]
    assert direct == []
