"""Command-line interface: ``clinie`` (or ``python -m spacy_clinie``)."""
from . import convert, evaluate, export, meddra  # noqa: F401  (commands register on import)
from . import pipe  # noqa: F401
from . import adapt  # noqa: F401
from . import review  # noqa: F401
from . import kfold  # noqa: F401
from . import report  # noqa: F401
from . import calibrate  # noqa: F401
from . import package  # noqa: F401
from . import tune_verifier  # noqa: F401
from . import fit_gate  # noqa: F401
from ._util import app

__all__ = ["app"]
