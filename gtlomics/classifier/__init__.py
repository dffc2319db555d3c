"""The scikit-learn / AnnData estimators of gtlomics.

* :class:`GTLClassifier` — :mod:`gtlomics.classifier.estimator`
* :class:`GTLRegressor` — :mod:`gtlomics.classifier.regressor`
* what both share (input, foundation, guides, ensembles) — :mod:`gtlomics.classifier.core`
* input reading, seeds — :mod:`gtlomics.classifier.inputs`
* the fitted-model record, its ``save`` / ``load`` — :mod:`gtlomics.classifier.fitted`
"""

from gtlomics.classifier.estimator import GTLClassifier
from gtlomics.classifier.regressor import GTLRegressor

__all__ = ["GTLClassifier", "GTLRegressor"]
