"""KDEF (Karolinska Directed Emotional Faces): expression, gender, identity and a coarse yaw.

SOURCE is the KDEF root, searched recursively for `*.jpg` (any case), e.g.
`KDEF/AF01/AF01ANFL.JPG`. The file name is the label (DATASETS.md):

    A F 01 AN FL .JPG
    | | |  |  +-- angle, up to the extension: FL, HL, S (one letter), HR, FR
    | | |  +----- expression: AF AN DI HA NE SA SU
    | | +-------- identity number within the sex, 01..35
    | +---------- sex: F (gender 0) or M (gender 1)
    +------------ session: A or B (both sessions are the same people)

Labels: `gender` (0 female, 1 male); `identity` is one global integer per person,
sex * 35 + number - 1, so females 01..35 are 0..34 and males 01..35 are 35..69 (both
sessions share it, which is what identity-disjoint splits need); `yaw` in degrees.

Yaw. The project's convention (`tasks/head_pose.py`) is that positive yaw turns the
face towards image right. KDEF names a view by the side of the face the camera sees:
a "left profile" shows the subject's left cheek and ear. Facing the camera, a
subject's left side is on image right; to show the camera that side they turn to
their own right, so the nose points towards image LEFT. Hence full left = -90,
half left = -45, straight = 0, half right = +45, full right = +90. The documentation
describes the angles only by name, so this rests on that reading of "left profile":
if a look at the images shows FL faces pointing to image right, negate `_YAW`.

No official split: `split` is None and later code makes identity-disjoint splits.
Files and folders whose names start with "." and `__MACOSX` folders (archive
debris such as `._AF01ANFL.JPG`) are not images of the set and are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hmtl.trainables.data.prepared import EXPRESSIONS
from hmtl.trainables.data.readers._common import archive_junk, decode_image
from hmtl.trainables.data.readers.base import BadRow, ReaderOptions, Record, SourceError

_EXPRESSIONS = {
    "AF": "fear",
    "AN": "anger",
    "DI": "disgust",
    "HA": "happy",
    "NE": "neutral",
    "SA": "sad",
    "SU": "surprise",
}
_YAW = {"FL": -90.0, "HL": -45.0, "S": 0.0, "HR": 45.0, "FR": 90.0}
_GENDER = {"F": 0, "M": 1}
_PEOPLE_PER_SEX = 35


def parse_name(stem: str) -> tuple[int, dict[str, float | int]]:
    """(canonical expression, labels) from a file stem such as `AF01ANS`.

    Raises ValueError saying which part does not parse.
    """
    name = stem.upper()
    if len(name) < 7:
        raise ValueError("too short for <session><sex><nn><expression><angle>")
    session, sex, number, expr, angle = name[0], name[1], name[2:4], name[4:6], name[6:]
    if session not in ("A", "B"):
        raise ValueError(f"session {session!r} is not A or B")
    if sex not in _GENDER:
        raise ValueError(f"sex {sex!r} is not F or M")
    if not (number.isascii() and number.isdigit() and 1 <= int(number) <= _PEOPLE_PER_SEX):
        raise ValueError(f"identity {number!r} is not 01..{_PEOPLE_PER_SEX}")
    if expr not in _EXPRESSIONS:
        raise ValueError(f"expression {expr!r} is not one of {', '.join(_EXPRESSIONS)}")
    if angle not in _YAW:
        raise ValueError(f"angle {angle!r} is not one of {', '.join(_YAW)}")
    labels: dict[str, float | int] = {
        "gender": _GENDER[sex],
        "identity": _GENDER[sex] * _PEOPLE_PER_SEX + int(number) - 1,
        "yaw": _YAW[angle],
    }
    return EXPRESSIONS.index(_EXPRESSIONS[expr]), labels


def _files(source: Path) -> list[Path]:
    if not source.is_dir():
        raise SourceError(f"{source}: not a folder (expected the KDEF root)")
    files = sorted(
        path
        for path in source.rglob("*")
        if path.suffix.lower() == ".jpg" and path.is_file() and not archive_junk(path, source)
    )
    if not files:
        raise SourceError(f"{source}: no .jpg files found (expected e.g. AF01/AF01ANFL.JPG)")
    return files


def _read(path: Path, where: str) -> Record:
    try:
        expression, labels = parse_name(path.stem)
    except ValueError as err:
        raise BadRow(where, f"file name {path.name!r} does not parse: {err}") from None
    image = decode_image(path, where)
    return Record(image=image, expression=expression, labels=labels, where=where)


class KdefReader:
    name = "kdef"

    def scan(self, source: Path, options: ReaderOptions) -> Iterator[Record]:
        for path in _files(source):
            where = path.relative_to(source).as_posix()
            try:
                record = _read(path, where)
            except BadRow as bad:
                record = Record(image=None, expression=None, where=where, bad=bad)
            yield record

    def count(self, source: Path, options: ReaderOptions) -> int | None:
        return len(_files(source))


READER = KdefReader()
