"""Property-based invariants of guide normalisation and GuidedUpdate (hypothesis).

* ``GuideValues.normalized``: for every mode and transform the guides lie in [0, 1], keep each
  parameter's shape, keep the order of the raw values, and the largest raw change maps to 1.
* ``GuidedUpdate`` on any optimiser (AdamW and Adam with weight decay, SGD with momentum,
  RMSprop): a guide of 0 freezes an entry bit-for-bit over many steps, a guide of 1 is the
  unguided step bit-for-bit, strength 0 is unguided, and one step is linear in the guide.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder, GTLModel
from gtlomics.train import GuidedUpdate, GuideValues

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True)
TORCH_PROPERTY = settings(max_examples=15, deadline=None, derandomize=True)


# ------------------------------------------------------------------ guide normalisation

_RAW_VALUES = st.one_of(
    st.floats(0.0, 1e3, allow_nan=False, width=32),
    st.sampled_from([0.0, 1e-30, 1e-8, 1.0]),  # ties, exact zeros and tiny spreads
)
_RAW_TENSOR = st.lists(_RAW_VALUES, min_size=1, max_size=12).map(
    lambda xs: torch.tensor(xs, dtype=torch.float32)
)
RAW_GUIDES = st.dictionaries(
    st.sampled_from(["encoder.a", "encoder.b", "head.w", "head.b"]), _RAW_TENSOR, min_size=1
)
TRANSFORMS = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["global", "per_tensor"]),
        "floor": st.floats(0.0, 1.0),
        "power": st.floats(0.05, 8.0),
        "sparsify_below": st.one_of(st.none(), st.floats(0.0, 1.0)),
    }
)


@PROPERTY
@given(raw=RAW_GUIDES, options=TRANSFORMS)
def test_normalised_guides_lie_in_the_unit_interval_with_the_raw_shapes(raw, options):
    guides = GuideValues(raw=raw, n_scouts=3).normalized(**options)
    assert guides.keys() == raw.keys()
    for name, guide in guides.items():
        assert guide.shape == raw[name].shape, name
        assert bool(torch.isfinite(guide).all()), name
        assert float(guide.min()) >= 0.0 and float(guide.max()) <= 1.0, (name, guide)


@PROPERTY
@given(raw=RAW_GUIDES, mode=st.sampled_from(["global", "per_tensor"]), power=st.floats(0.05, 8))
def test_normalisation_keeps_the_order_and_the_largest_change_maps_to_one(raw, mode, power):
    guides = GuideValues(raw=raw, n_scouts=3).normalized(mode, power=power)
    for name, guide in guides.items():
        order = torch.argsort(raw[name], stable=True)
        assert bool((guide[order].diff() >= 0).all()), (name, raw[name], guide)
    if mode == "per_tensor":
        assert all(float(g.max()) == 1.0 for g in guides.values())
    else:
        assert max(float(g.max()) for g in guides.values()) == 1.0


@PROPERTY
@given(raw=RAW_GUIDES, scale=st.floats(1e-3, 1e3), mode=st.sampled_from(["global", "per_tensor"]))
def test_normalised_guides_do_not_depend_on_the_unit_of_change(raw, scale, mode):
    guides = GuideValues(raw=raw, n_scouts=3).normalized(mode)
    rescaled = GuideValues({n: t * scale for n, t in raw.items()}, n_scouts=3).normalized(mode)
    for name, guide in guides.items():
        # a zero spread can become a tiny non-zero one through float rounding: compare loosely
        torch.testing.assert_close(rescaled[name], guide, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- GuidedUpdate

OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], float], torch.optim.Optimizer]] = {
    "adamw": lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.3),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr, weight_decay=0.1),
    "sgd_momentum": lambda params, lr: torch.optim.SGD(
        params, lr=lr, momentum=0.9, nesterov=True, weight_decay=0.05
    ),
    "rmsprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr, momentum=0.5),
}


def _model(seed: int) -> GTLModel:
    config = EncoderConfig(n_genes=6, d_model=8, n_heads=2, n_layers=1)
    return GTLModel(ExpressionEncoder(config, seed=seed), ClassificationHead(8, 2, seed=seed))


def _batch(seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed * 1000 + step)
    return torch.randn(6, 6, generator=generator), torch.randint(0, 2, (6,), generator=generator)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, seed: int, steps: int) -> None:
    for step in range(steps):
        values, labels = _batch(seed, step)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(values), labels).backward()
        optimizer.step()


def _random_guides(model: nn.Module, seed: int, p_zero: float, p_one: float):
    """Guides in [0, 1] with a share of exact zeros and exact ones."""
    generator = torch.Generator().manual_seed(seed)
    guides = {}
    for name, param in model.named_parameters():
        draw = torch.rand(param.shape, generator=generator)
        guide = torch.rand(param.shape, generator=generator)
        guide = torch.where(draw < p_zero, torch.zeros_like(guide), guide)
        guides[name] = torch.where(draw > 1 - p_one, torch.ones_like(guide), guide)
    return guides


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


CASE = st.fixed_dictionaries(
    {
        "optimizer": st.sampled_from(sorted(OPTIMIZERS)),
        "lr": st.sampled_from([1e-3, 3e-2, 0.3]),
        "seed": st.integers(0, 2**16),
    }
)


@TORCH_PROPERTY
@given(case=CASE, steps=st.integers(1, 6))
def test_a_zero_guide_freezes_its_entry_exactly_over_many_steps(case, steps):
    model = _model(case["seed"])
    guides = _random_guides(model, case["seed"], p_zero=0.4, p_one=0.2)
    start = _snapshot(model)
    optimizer = OPTIMIZERS[case["optimizer"]](list(model.parameters()), case["lr"])
    with GuidedUpdate(optimizer, model, guides):
        _train(model, optimizer, case["seed"], steps)
    moved = 0
    for name, param in model.named_parameters():
        frozen = guides[name] == 0
        assert torch.equal(param.detach()[frozen], start[name][frozen]), name
        moved += int((param.detach()[~frozen] != start[name][~frozen]).sum())
    assert moved > 0  # the free entries did train


@TORCH_PROPERTY
@given(case=CASE)
def test_a_guide_of_one_is_the_unguided_step_bit_for_bit(case):
    guided, plain = _model(case["seed"]), _model(case["seed"])
    guides = _random_guides(guided, case["seed"], p_zero=0.3, p_one=0.4)
    opt_guided = OPTIMIZERS[case["optimizer"]](list(guided.parameters()), case["lr"])
    opt_plain = OPTIMIZERS[case["optimizer"]](list(plain.parameters()), case["lr"])
    with GuidedUpdate(opt_guided, guided, guides):
        _train(guided, opt_guided, case["seed"], 1)
    _train(plain, opt_plain, case["seed"], 1)
    plain_params = dict(plain.named_parameters())
    for name, param in guided.named_parameters():
        free = guides[name] == 1
        assert torch.equal(param.detach()[free], plain_params[name].detach()[free]), name


@TORCH_PROPERTY
@given(case=CASE, steps=st.integers(1, 4), all_ones=st.booleans())
def test_strength_zero_and_all_ones_guides_equal_unguided_training(case, steps, all_ones):
    guided, plain = _model(case["seed"]), _model(case["seed"])
    if all_ones:
        guides, strength = {n: torch.ones_like(p) for n, p in guided.named_parameters()}, 1.0
    else:
        guides, strength = _random_guides(guided, case["seed"], 0.5, 0.0), 0.0
    opt_guided = OPTIMIZERS[case["optimizer"]](list(guided.parameters()), case["lr"])
    opt_plain = OPTIMIZERS[case["optimizer"]](list(plain.parameters()), case["lr"])
    with GuidedUpdate(opt_guided, guided, guides, strength=strength):
        _train(guided, opt_guided, case["seed"], steps)
    _train(plain, opt_plain, case["seed"], steps)
    for (name, a), b in zip(guided.named_parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b), name


def _one_guided_step(case, guides_of, strength: float = 1.0):
    """Update of one guided step taken after two unguided warm-up steps (same state for all)."""
    model = _model(case["seed"])
    optimizer = OPTIMIZERS[case["optimizer"]](list(model.parameters()), case["lr"])
    _train(model, optimizer, case["seed"] + 1, 2)  # non-trivial optimiser state
    start = _snapshot(model)
    with GuidedUpdate(optimizer, model, guides_of(model), strength=strength):
        _train(model, optimizer, case["seed"], 1)
    return {name: p.detach() - start[name] for name, p in model.named_parameters()}


@TORCH_PROPERTY
@given(case=CASE, strength=st.floats(0.0, 1.0))
def test_one_step_is_linear_in_the_effective_guide(case, strength):
    def random(model):
        return _random_guides(model, case["seed"], p_zero=0.2, p_one=0.2)

    def ones(model):
        return {name: torch.ones_like(p) for name, p in model.named_parameters()}

    full = _one_guided_step(case, ones)
    guided = _one_guided_step(case, random, strength)
    guides = random(_model(case["seed"]))
    for name, update in guided.items():
        effective = 1.0 - strength * (1.0 - guides[name])
        # weights are O(1) and float32: p_old + g·(p_new − p_old) rounds at ~1e-7 absolute
        torch.testing.assert_close(update, effective * full[name], rtol=1e-4, atol=1e-6, msg=name)
