import numpy as np

from gtlomics.datasets import SyntheticDesign, make_synthetic_counts


def test_synthetic_is_labelled_synthetic_and_integer_counts():
    adata = make_synthetic_counts(50, n_genes=120, random_state=3)
    assert "synthetic" in adata.uns["synthetic"]["note"]
    assert np.all(adata.X >= 0) and np.all(adata.X == np.round(adata.X))
    assert set(adata.obs["condition"]) == {"treated", "control"}


def test_same_seed_same_counts_and_global_rng_untouched():
    state = np.random.get_state()[1].copy()
    a = make_synthetic_counts(20, n_genes=50, random_state=7)
    b = make_synthetic_counts(20, n_genes=50, random_state=7)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_condition_genes_shift_in_treated_samples():
    design = SyntheticDesign.random(n_genes=300, n_clusters=1, condition_effect=1.0, random_state=0)
    adata = design.sample(400, random_state=1)
    logcpm = np.log1p(adata.X / adata.X.sum(1, keepdims=True) * 1e6)
    treated = (adata.obs["condition"] == "treated").to_numpy()
    diff = logcpm[treated].mean(0) - logcpm[~treated].mean(0)
    genes = design.condition_genes
    signs = np.sign(design.condition_shift[genes])
    assert np.mean(diff[genes] * signs) > 0.5
    others = np.setdiff1d(np.arange(300), genes)
    assert np.abs(diff[others]).mean() < 0.2
