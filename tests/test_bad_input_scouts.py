"""Bad input to ClusterScoutGenerator.fit, beyond ``test_scouts.py``.

UMAP is replaced by a stand-in (the PCA coordinates) where a test must get past validation: these
tests are about the checks, and UMAP's numba compilation costs ~30 s per process.
"""

from __future__ import annotations

import importlib
import types

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from gtlomics.scouts import ClusterScoutGenerator

PARAMS = {"n_pca": 5, "n_components": 3, "n_clusters": 4, "n_tasks": 2, "n_epochs": 10}


class _PcaAsUmap:
    def __init__(self, *, n_components: int, **_: object) -> None:
        self.n_components = n_components

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X)[:, : self.n_components].copy()


@pytest.fixture()
def no_umap(monkeypatch):
    scouts = importlib.import_module("gtlomics.scouts")
    monkeypatch.setattr(scouts, "_import_umap", lambda: types.SimpleNamespace(UMAP=_PcaAsUmap))


def _log_values(n_samples: int = 40, n_genes: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.log1p(rng.gamma(2.0, 20.0, (n_samples, n_genes))).astype(np.float32)


def test_sparse_nan_is_reported_with_its_position():
    values = sp.csr_matrix(_log_values())
    values.data[13] = np.nan  # row 1, column 1 of a dense 12-column matrix
    with pytest.raises(ValueError, match=r"1 NaN or infinite values, first at row 1, column 1"):
        ClusterScoutGenerator(**PARAMS).fit(values)


def test_no_samples():
    with pytest.raises(ValueError, match=r"Only 0 samples: .* needs at least 10"):
        ClusterScoutGenerator(**PARAMS).fit(np.zeros((0, 12), dtype=np.float32))


@pytest.mark.parametrize(
    "matrix", [np.full((40, 2), "1.5"), np.ones((40, 2), dtype=bool)], ids=["strings", "bool"]
)
def test_non_numeric_dtypes(matrix):
    with pytest.raises(TypeError, match="must be integer or float numbers"):
        ClusterScoutGenerator(**PARAMS).fit(matrix)


def test_float16_and_nested_lists_are_read_like_float32(no_umap):
    values = _log_values()
    reference = ClusterScoutGenerator(**PARAMS, random_state=0).fit(values)
    from_lists = ClusterScoutGenerator(**PARAMS, random_state=0).fit(values.tolist())
    np.testing.assert_array_equal(from_lists.labels_, reference.labels_)
    half = ClusterScoutGenerator(**PARAMS, random_state=0).fit(values.astype(np.float16))
    assert half.embedding_.dtype == np.float32 and len(half.tasks_) == 2


def test_negative_values_are_refused(no_umap):
    values = _log_values()
    z_scored = (values - values.mean(0)) / values.std(0)
    with pytest.raises(ValueError, match=r"negative values.*expect log-normalised, non-negative"):
        ClusterScoutGenerator(**PARAMS).fit(z_scored)


def test_negative_value_in_a_frame_names_sample_and_gene():
    frame = pd.DataFrame(_log_values(), index=[f"s{i}" for i in range(40)])
    frame.iloc[3, 5] = -0.5
    where = r"1 negative values, first at row 3, column 5 \(sample 's3', gene 5\)"
    with pytest.raises(ValueError, match=where):
        ClusterScoutGenerator(**PARAMS).fit(frame)


def test_no_genes():
    with pytest.raises(ValueError) as error:
        ClusterScoutGenerator(**PARAMS).fit(np.zeros((40, 0), dtype=np.float32))
    assert "0 genes" in str(error.value)
