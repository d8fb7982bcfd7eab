"""Each sweep's Optuna study, also kept in an Optuna RDB storage for optuna-dashboard.

The searcher (`sweep/search.py`) samples from its own in-memory study, which Tune saves with
the experiment and gives back on resume: that copy stays the one that decides. `StudyMirror`
copies it, trial by trial as Tune reports, into a database that `optuna-dashboard URL` and
`optuna.load_study(study_name=..., storage=URL)` read: every trial with its parameters, its
per-epoch values, its state (COMPLETE, PRUNED when ASHA stopped it, FAIL) and its values.
Trials are matched by their Tune trial id (user attribute `hmtl.trial_id`, the same id as
the MLflow tag), so a resumed sweep continues its trials there instead of adding new ones.

Where (`storage_url`): `HMTL_OPTUNA_STORAGE` (a SQLAlchemy database URL, or `none`), else
`optuna.db` beside a SQLite MLflow database, else `optuna.db` in a local storage folder, else
nowhere (object storage with a tracking server and no setting). Optuna and MLflow cannot
share one database (both keep an `alembic_version` table), hence a file or database of its
own. The study is named after the sweep (a study stage's: `<study>.<stage>`); a new sweep
under a name already used there replaces that study.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.tracking.tags import redact_uri
from hmtl.trainables.data.storage import StorageError, is_remote
from hmtl.trainables.settings import settings

ENV = "HMTL_OPTUNA_STORAGE"
TRIAL_ATTR = "hmtl.trial_id"
LOST_ATTR = "hmtl.lost"
RETRY_S = 30.0
"""After a failed write the mirror waits this long before it tries the database again."""

log = logging.getLogger(__name__)


def storage_setting() -> str | None:
    """`HMTL_OPTUNA_STORAGE` as set (None when unset or empty)."""
    return settings().optuna_storage


def storage_url(storage: str | Store, tracking_uri: str) -> str | None:
    """Where a sweep's Optuna study is kept (see the module's docstring), or None."""
    setting = storage_setting()
    if setting:
        return None if setting.strip().lower() == "none" else setting.strip()
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri[len("sqlite:///") :])
        return f"sqlite:///{(database.parent / 'optuna.db').resolve()}"
    if isinstance(storage, Store):
        local = None if storage.remote else storage.root
    else:
        local = None if is_remote(storage) else storage
    return f"sqlite:///{Path(local).resolve() / 'optuna.db'}" if local else None


def check_url(url: str) -> None:
    """Refuse, locally (before any connection is tried), what is not a database URL that
    SQLAlchemy knows: one-line StorageError."""
    try:
        make_url(url).get_dialect()  # the dialect only; its driver loads when connecting
    except ArgumentError as err:
        why = "unknown database kind" if "plugin" in str(err) else "not a database URL"
        raise StorageError(
            f"{_where(url)}: {why} (e.g. sqlite:////abs/optuna.db, postgresql://host/optuna)"
        ) from None


def study_name(sweep: str, parent: str | None = None) -> str:
    """The Optuna study of a sweep (of a study's stage, when `parent` names the study)."""
    return f"{parent}.{sweep}" if parent else sweep


class StudyMirror:
    """The searcher's in-memory trials, copied into the study `name` at `url`.

    Picklable (Tune saves the searcher with the experiment): only the URL without its
    credentials, the name and the directions travel; the connection and what was written are
    found again on the next `update`, and credentials come back from `HMTL_OPTUNA_STORAGE`."""

    def __init__(self, url: str, name: str, directions: list[str], metrics: list[str]) -> None:
        self.url, self.name = url, name
        self.directions, self.metrics = list(directions), list(metrics)
        self._storage: RDBStorage | None = None
        self._study_id = 0
        self._ids: dict[str, int] = {}
        """Tune trial id -> the trial's id in the database."""
        self._steps: dict[str, set[int]] = {}
        self._finished: set[str] = set()
        self._retry_at = 0.0

    def __getstate__(self) -> dict:
        return {
            "url": redact_uri(self.url),
            "name": self.name,
            "directions": self.directions,
            "metrics": self.metrics,
        }

    def __setstate__(self, state: dict) -> None:
        setting = storage_setting()
        url = state["url"]
        if setting and redact_uri(setting) == url:
            url = setting  # the same database, with its credentials
        self.__init__(url, state["name"], state["directions"], state["metrics"])

    @property
    def where(self) -> str:
        return redact_uri(self.url)

    def start(self) -> None:
        """A fresh, empty study (an old one of this name is replaced), connected; one-line
        StorageError when the database cannot be opened (a server down, a refused login, a
        missing driver such as psycopg2)."""
        try:
            storage = _open(self.url)
            with contextlib.suppress(KeyError):  # no study of that name yet
                storage.delete_study(storage.get_study_id_from_name(self.name))
            study_id = _create(storage, self.name, self.directions, self.metrics)
        except (optuna.exceptions.OptunaError, SQLAlchemyError, OSError, ImportError) as err:
            raise StorageError(f"{_where(self.url)}: cannot open it: {_first_line(err)}") from None
        self._storage, self._study_id = storage, study_id
        self._ids, self._steps, self._finished = {}, {}, set()

    def update(self, trials: dict[str, FrozenTrial], trial_id: str) -> None:
        """Copy `trials[trial_id]` (all of `trials` right after connecting). A failure is
        logged and retried later, never raised: the sweep goes on without its copy."""
        if self._storage is None and time.monotonic() < self._retry_at:
            return
        try:
            if self._storage is None:
                self._connect(trials)
                for tune_id, frozen in trials.items():
                    self._copy(tune_id, frozen)
            elif trial_id in trials:
                self._copy(trial_id, trials[trial_id])
        except Exception as err:  # a copy for a dashboard must never stop a sweep
            if self._retry_at == 0.0 or self._storage is not None:
                log.warning(
                    "Optuna storage %s: %s; trials are copied there again later",
                    self.where,
                    _first_line(err),
                )
            self._storage = None
            self._retry_at = time.monotonic() + RETRY_S

    def _connect(self, trials: dict[str, FrozenTrial]) -> None:
        """Open the database, find the study and what is already in it; a trial left RUNNING
        there that the searcher does not know was started after Tune last saved the sweep
        and lost with it (the resumed sweep samples a new one): it is marked FAIL."""
        storage = _open(self.url)
        try:
            study_id = storage.get_study_id_from_name(self.name)
        except KeyError:
            study_id = _create(storage, self.name, self.directions, self.metrics)
        ids, steps, finished = {}, {}, set()
        for stored in storage.get_all_trials(study_id, deepcopy=False):
            tune_id = stored.user_attrs.get(TRIAL_ATTR)
            if tune_id is None:
                continue
            trial = storage.get_trial_id_from_study_id_trial_number(study_id, stored.number)
            if stored.state == TrialState.RUNNING and tune_id not in trials:
                storage.set_trial_user_attr(
                    trial, LOST_ATTR, "killed before Tune saved the sweep; resampled on resume"
                )
                storage.set_trial_state_values(trial, TrialState.FAIL)
            ids[tune_id], steps[tune_id] = trial, set(stored.intermediate_values)
            if stored.state.is_finished() or tune_id not in trials:
                finished.add(tune_id)
        self._storage, self._study_id = storage, study_id
        self._ids, self._steps, self._finished = ids, steps, finished
        self._retry_at = 0.0

    def _copy(self, tune_id: str, frozen: FrozenTrial) -> None:
        storage = self._storage
        if tune_id not in self._ids:
            template = copy.deepcopy(frozen)
            template.user_attrs = {**frozen.user_attrs, TRIAL_ATTR: tune_id}
            self._ids[tune_id] = storage.create_new_trial(self._study_id, template)
            self._steps[tune_id] = set(frozen.intermediate_values)
            if frozen.state.is_finished():
                self._finished.add(tune_id)
            return
        if tune_id in self._finished:
            return  # what the database holds for a finished trial is final
        trial, steps = self._ids[tune_id], self._steps[tune_id]
        for step, value in sorted(frozen.intermediate_values.items()):
            if step not in steps:
                storage.set_trial_intermediate_value(trial, step, value)
                steps.add(step)
        if frozen.state.is_finished():
            storage.set_trial_state_values(trial, frozen.state, frozen.values)
            self._finished.add(tune_id)


def _open(url: str) -> RDBStorage:
    if url.startswith("sqlite:///"):  # SQLite makes the file, not the folder it is in
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return RDBStorage(url)


def _create(storage: RDBStorage, name: str, directions: list[str], metrics: list[str]) -> int:
    chatty = logging.getLogger(RDBStorage.__module__)  # "A new study created in RDB ..."
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    try:
        study_id = storage.create_new_study(
            [optuna.study.StudyDirection[d.upper()] for d in directions], name
        )
    finally:
        chatty.setLevel(level)
    # The dashboard names the objectives by the sweep's metrics (Study.set_metric_names,
    # experimental in Optuna since 3.2 and unchanged since).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.load_study(study_name=name, storage=storage).set_metric_names(metrics)
    return study_id


def _where(url: str) -> str:
    shown = redact_uri(url)
    return f"{ENV} {shown}" if storage_setting() else f"Optuna storage {shown}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
