"""The scikit-learn / AnnData estimator of gtlomics.

* :class:`GTLClassifier` — :mod:`gtlomics.classifier.estimator`
* input reading, labels, seeds, device — :mod:`gtlomics.classifier.inputs`
* ``save`` / ``load`` of a fitted estimator — :mod:`gtlomics.classifier.persistence`
"""

from gtlomics.classifier.estimator import GTLClassifier

__all__ = ["GTLClassifier"]
