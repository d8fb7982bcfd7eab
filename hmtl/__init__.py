"""hmtl: distributed experiment orchestration for facial-representation research.

The code lives in the repository's top-level folders and is imported under this one name:
`hmtl.trainables` (plain PyTorch, no Ray, no MLflow), `hmtl.orchestration` (everything
that knows about Ray, MLflow, S3 and the command line) and `hmtl.search_spaces` (the
shipped spaces and studies). An install maps those folders under `hmtl`
(pyproject.toml's `package-dir`); run from a source checkout without that mapping (a
Ray job's uploaded copy of the project, whose own code must win over the installed
one), the folders are found beside this one.
"""

from __future__ import annotations

from pathlib import Path

# A checkout: the project's pyproject.toml beside the folders (not merely some unrelated
# `orchestration` package next to an installed hmtl in site-packages).
_checkout = Path(__file__).resolve().parent.parent
if (
    (_checkout / "pyproject.toml").is_file()
    and (_checkout / "orchestration" / "__init__.py").is_file()
    and str(_checkout) not in __path__
):
    __path__.append(str(_checkout))
