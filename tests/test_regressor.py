"""GTLRegressor behaviour a user relies on: continuous targets, AnnData in, sklearn around it."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_regressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from gtlomics.classifier import GTLClassifier, GTLRegressor
from gtlomics.classifier.linear_probe import fit_ridge_probe, probe_features
from gtlomics.foundation import FoundationVersionError
from gtlomics.linear import DEFAULT_ALPHAS, InnerCVRidge
from gtlomics.nn import EncoderConfig, ExpressionEncoder, GTLModel, RegressionHead, SeedEnsemble

FAST = {"epochs": 3, "batch_size": 8, "random_state": 0}
SCRATCH = {"foundation": None, "d_model": 8, "n_heads": 2, "n_layers": 1, **FAST}


@pytest.fixture(scope="module")
def adata(gtl):
    data = gtl.fewshot(16)
    log_expr = np.log1p(np.asarray(data.X, dtype=float))
    rng = np.random.default_rng(0)
    # a planted continuous target: two genes' log expression plus a little noise
    data.obs["age"] = 10 + 4 * log_expr[:, 0] - 3 * log_expr[:, 1] + rng.normal(0, 0.1, 16)
    return data


@pytest.fixture(scope="module")
def fitted(adata, foundation):
    return GTLRegressor(foundation=foundation, target_key="age", **FAST).fit(adata)


def test_is_a_regressor_and_reads_the_target_from_obs(fitted, adata):
    assert is_regressor(GTLRegressor())
    y = adata.obs["age"].to_numpy()
    assert fitted.target_mean_ == pytest.approx(y.mean())
    assert fitted.target_scale_ == pytest.approx(y.std())
    prediction = fitted.predict(adata)
    assert prediction.shape == (16,) and np.isfinite(prediction).all()
    assert fitted.transform(adata).shape == (16, 16)


def test_targets_are_standardised_inside_fit(adata):
    y = adata.obs["age"].to_numpy()
    plain = GTLRegressor(**SCRATCH).fit(adata, y)
    rescaled = GTLRegressor(**SCRATCH).fit(adata, 1000 * y - 7)
    np.testing.assert_allclose(rescaled.predict(adata), 1000 * plain.predict(adata) - 7, rtol=1e-5)


def _planted_target(data) -> np.ndarray:
    """A target linear in two genes' log-CPM: what a linear read-out can recover."""
    X = np.asarray(data.X, dtype=float)
    log_cpm = np.log1p(X / X.sum(axis=1, keepdims=True) * 1e6)
    return 10 + 4 * log_cpm[:, 0] - 3 * log_cpm[:, 1]


def test_learns_a_planted_signal_on_held_out_samples(gtl):
    train, test = gtl.fewshot(40), gtl.fewshot(16, random_state=9)
    y, y_test = _planted_target(train), _planted_target(test)
    reg = GTLRegressor(**SCRATCH).fit(train, y)
    assert reg.score(test, y_test) > 0.7
    shuffled = GTLRegressor(**SCRATCH).fit(train, np.random.default_rng(1).permutation(y))
    assert shuffled.score(test, y_test) < 0.2


def test_three_arms_are_one_parameter_apart(adata, foundation):
    def predict(**params):
        params = {"foundation": foundation, "target_key": "age", **FAST, **params}
        return GTLRegressor(**params).fit(adata).predict(adata)

    gtl, pretrained = predict(), predict(guidance="none")
    assert not np.array_equal(gtl, pretrained)
    assert not np.array_equal(gtl, predict(foundation=None))
    np.testing.assert_array_equal(predict(guide_strength=0.0), pretrained)


def test_epochs_zero_predicts_exactly_what_the_ridge_probe_predicts(adata):
    reg = GTLRegressor(**{**SCRATCH, "epochs": 0}).fit(adata, adata.obs["age"].to_numpy())
    values, present = reg._prepared_inputs(adata)
    features = probe_features(reg.model_, values, present)
    standardized = (adata.obs["age"].to_numpy() - reg.target_mean_) / reg.target_scale_
    seed = 12345
    model = pickle.loads(pickle.dumps(reg.model_))
    probe = fit_ridge_probe(model, values, present, standardized, seed=seed)
    ridge = InnerCVRidge(random_state=seed).fit(features, standardized)
    assert probe.alpha == ridge.alpha_
    with torch.no_grad():
        outputs = torch.cat([model(values[i : i + 1], present) for i in range(len(values))])
    np.testing.assert_allclose(outputs[:, 0].double().numpy(), ridge.predict(features), atol=1e-4)


def test_seed_ensemble_averages_member_predictions(adata):
    y = adata.obs["age"].to_numpy()
    reg = GTLRegressor(**{**SCRATCH, "n_ensemble": 3}).fit(adata, y)
    assert isinstance(reg.model_, SeedEnsemble) and reg.model_.combine == "mean"
    values, present = reg._prepared_inputs(adata)
    with torch.no_grad():
        members = [m(values, present)[:, 0] for m in reg.model_.members]
    mean = torch.stack(members).mean(0).double().numpy()
    np.testing.assert_allclose(
        reg.predict(adata), mean * reg.target_scale_ + reg.target_mean_, rtol=1e-4
    )
    single = GTLRegressor(**SCRATCH).fit(adata, y)
    assert not np.allclose(single.predict(adata), reg.predict(adata))


def test_samples_with_missing_targets_are_not_fine_tuned_on(adata):
    y = adata.obs["age"].to_numpy().copy()
    y[:3] = np.nan
    partial = GTLRegressor(**SCRATCH).fit(adata, y)
    subset = GTLRegressor(**SCRATCH).fit(adata[3:], y[3:])
    np.testing.assert_array_equal(partial.predict(adata), subset.predict(adata))


def test_cross_val_score_with_anndata(adata, foundation):
    reg = GTLRegressor(foundation=foundation, **FAST)
    scores = cross_val_score(reg, adata, adata.obs["age"], cv=KFold(3), scoring="r2")
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_pipeline_and_grid_search(adata):
    X, y = np.asarray(adata.X), adata.obs["age"].to_numpy()
    pipe = Pipeline([("cpm", FunctionTransformer(_per_million)), ("gtl", GTLRegressor(**SCRATCH))])
    assert pipe.fit(X, y).predict(X).shape == (16,)
    search = GridSearchCV(GTLRegressor(**SCRATCH), {"epochs": [0, 2]}, cv=KFold(2)).fit(adata, y)
    # The refitted model is the one a user gets by setting the chosen epochs directly.
    direct = GTLRegressor(**{**SCRATCH, "epochs": search.best_params_["epochs"]}).fit(adata, y)
    np.testing.assert_array_equal(search.predict(adata), direct.predict(adata))


def _per_million(X):
    return X / X.sum(axis=1, keepdims=True) * 1e6


def test_clone_pickle_save_and_load(fitted, adata, tmp_path):
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params() and not hasattr(fresh, "model_")
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(adata), fitted.predict(adata))
    fitted.save(tmp_path / "reg")
    loaded = GTLRegressor.load(tmp_path / "reg")
    np.testing.assert_array_equal(loaded.predict(adata), fitted.predict(adata))
    assert loaded.target_mean_ == fitted.target_mean_
    with pytest.raises(FoundationVersionError, match="load it with the matching class"):
        GTLClassifier.load(tmp_path / "reg")


def test_saved_ensemble_reloads_as_a_mean_ensemble(adata, tmp_path):
    reg = GTLRegressor(**{**SCRATCH, "n_ensemble": 2, "head": "pooled"})
    reg.fit(adata, adata.obs["age"].to_numpy()).save(tmp_path / "ens")
    loaded = GTLRegressor.load(tmp_path / "ens")
    assert loaded.model_.combine == "mean"
    assert isinstance(loaded.model_.members[0].head, RegressionHead)
    np.testing.assert_array_equal(loaded.predict(adata), reg.predict(adata))


def test_errors_say_what_to_do(adata):
    labels = adata.obs["condition"].astype(str).to_numpy()
    with pytest.raises(ValueError, match=r"numeric targets.*use GTLClassifier"):
        GTLRegressor(**SCRATCH).fit(adata, labels)
    with pytest.raises(ValueError, match="target_key='nope' is not a column"):
        GTLRegressor(**{**SCRATCH, "target_key": "nope"}).fit(adata)
    with pytest.raises(ValueError, match="infinity"):
        GTLRegressor(**SCRATCH).fit(adata, np.full(16, np.inf))


def test_regression_head_and_mean_ensemble_shapes():
    config = EncoderConfig(n_genes=4, d_model=8, n_heads=2, n_layers=1)
    members = [
        GTLModel(ExpressionEncoder(config, seed=s), RegressionHead(8, seed=s)) for s in (0, 1)
    ]
    ensemble = SeedEnsemble(members, combine="mean")
    values = torch.rand(3, 4, generator=torch.Generator().manual_seed(0))
    expected = (members[0](values) + members[1](values)) / 2
    torch.testing.assert_close(ensemble(values), expected)
    with pytest.raises(ValueError, match="combine must be one of"):
        SeedEnsemble(members, combine="median")


@pytest.mark.parametrize("n_samples", [5, 9])
def test_inner_cv_ridge_picks_the_alpha_of_least_inner_mean_squared_error(n_samples):
    # 3 inner folds of 5 samples leave a one-sample test fold, where R² is undefined.
    rng = np.random.default_rng(n_samples)
    X = rng.normal(size=(n_samples, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.5, size=n_samples)
    model = InnerCVRidge(random_state=0).fit(X, y)
    folds = KFold(3, shuffle=True, random_state=0)
    mse = {
        alpha: -cross_val_score(
            Ridge(alpha=alpha), X, y, cv=folds, scoring="neg_mean_squared_error"
        ).mean()
        for alpha in DEFAULT_ALPHAS
    }
    assert model.inner_cv_used_
    assert model.alpha_ == min(mse, key=mse.get)
