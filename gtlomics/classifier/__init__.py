"""The scikit-learn / AnnData estimators of gtlomics.

* :class:`GTLClassifier` — :mod:`gtlomics.classifier.estimator`
* :class:`GTLRegressor` — :mod:`gtlomics.classifier.regressor`
* what both share (input, foundation, guides, ensembles) — :mod:`gtlomics.classifier.core`
* input reading, labels, seeds, device — :mod:`gtlomics.classifier.inputs`
* ``save`` / ``load`` of a fitted estimator — :mod:`gtlomics.classifier.persistence`
"""

from gtlomics.classifier.estimator import GTLClassifier
from gtlomics.classifier.regressor import GTLRegressor

__all__ = ["GTLClassifier", "GTLRegressor"]
