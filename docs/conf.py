"""Sphinx configuration: API reference from the numpydoc docstrings, markdown pages via MyST.

Build (offline, warnings are errors): ``bash scripts/dev.sh docs``, i.e.
``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gtlomics import __version__

project = "gtlomics"
author = "gtlomics developers"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

myst_heading_anchors = 3
# Pages link to files outside the docs tree (README.md, BENCHMARKS.md, source files): MyST cannot
# resolve those as documents; every other warning stays an error.
suppress_warnings = ["myst.xref_missing"]

html_theme = "alabaster"
html_title = f"gtlomics {version}"


def _skip_sklearn_routing(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_*_request`` methods (documented upstream)."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_routing)
