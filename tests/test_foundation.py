"""Foundation: build, save/load round trip, model rebuild, guides, reproducibility."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from gtl_support import MICRO_PRESET

from gtlomics.foundation import Foundation, build_foundation, get_preset
from gtlomics.nn import GTLModel
from gtlomics.train import GuidanceConfig


def _values(n_samples: int = 5, n_genes: int = 64) -> torch.Tensor:
    return torch.rand(n_samples, n_genes, generator=torch.Generator().manual_seed(0)) * 5


def test_build_records_vocab_guides_and_provenance(gtl, foundation):
    assert len(foundation.vocab) == 64 == foundation.encoder_config.n_genes
    assert set(foundation.vocab.genes) <= set(gtl.design().gene_ids)
    prov = foundation.provenance
    assert prov.synthetic is True and prov.n_samples == 200 and prov.random_state == 0
    assert prov.n_scouts == foundation.guides.n_scouts == 4
    assert prov.build_config["pretrain"]["epochs"] == get_preset("tiny").pretrain.epochs
    assert foundation.head_classes == 2


def test_every_trainable_parameter_has_a_guide_in_unit_range(foundation):
    model, _ = foundation.make_model(2)
    guides = foundation.guides_for(model)
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    assert set(guides) == names
    flat = torch.cat([g.flatten() for g in guides.values()])
    assert float(flat.min()) >= 0.0 and float(flat.max()) <= 1.0
    assert float(flat.std()) > 0.01  # scouts moved some weights more than others


def test_guides_for_applies_the_whole_guidance_config(foundation):
    model, _ = foundation.make_model(2)
    assert foundation.guides_for(model, guidance=GuidanceConfig(mode="none")) is None
    per_tensor = foundation.guides_for(model, guidance=GuidanceConfig(normalize="per_tensor"))
    for name, guide in foundation.guides.normalized(mode="per_tensor").items():
        assert torch.equal(per_tensor[name], guide), name
    scouts = foundation.guides_for(model)
    shuffled = foundation.guides_for(model, guidance=GuidanceConfig(mode="shuffled"), seed=3)
    constant = foundation.guides_for(model, guidance=GuidanceConfig(mode="constant"))
    name = "encoder.norm.weight"
    assert torch.equal(shuffled[name].sort().values, scouts[name].sort().values)
    assert not torch.equal(shuffled[name], scouts[name])
    assert len(torch.unique(torch.cat([g.flatten() for g in constant.values()]))) == 1


def test_guides_for_a_foundation_without_guides_says_to_pass_none(foundation):
    bare = dataclasses.replace(foundation, guides=None)
    model, _ = bare.make_model(2)
    with pytest.raises(ValueError, match="pass guidance='none'"):
        bare.guides_for(model)
    assert bare.guides_for(model, guidance=GuidanceConfig(mode="none")) is None


def test_make_model_starts_from_pretrained_weights_and_head_init(foundation):
    model, head_from_init = foundation.make_model(2)
    assert head_from_init
    for name, tensor in foundation.encoder_state.items():
        assert torch.equal(model.encoder.state_dict()[name], tensor)
    for name, tensor in foundation.head_init.items():
        assert torch.equal(model.head.state_dict()[name], tensor)


def test_more_classes_get_a_seeded_fresh_head_with_guides_of_one(foundation):
    model, head_from_init = foundation.make_model(3, seed=5)
    again, _ = foundation.make_model(3, seed=5)
    assert not head_from_init
    assert model.head.linear.weight.shape == (3, 16)
    assert torch.equal(model.head.linear.weight, again.head.linear.weight)
    guides = foundation.guides_for(model)
    binary = foundation.guides_for(foundation.make_model(2)[0])
    assert torch.equal(guides["head.linear.weight"], torch.ones(3, 16))
    assert torch.equal(guides["encoder.norm.weight"], binary["encoder.norm.weight"])


def test_save_load_round_trip_gives_identical_outputs(foundation, foundation_dir):
    loaded = Foundation.load(foundation_dir)
    assert loaded.vocab == foundation.vocab
    assert loaded.preprocessing == foundation.preprocessing
    assert loaded.encoder_config == foundation.encoder_config
    assert loaded.provenance == foundation.provenance
    for name, raw in foundation.guides.raw.items():
        assert torch.equal(loaded.guides.raw[name], raw)
    original, _ = foundation.make_model(2)
    rebuilt, _ = loaded.make_model(2)
    original.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(original(_values()), rebuilt(_values()))


def test_saved_directory_layout(foundation_dir):
    from pathlib import Path

    folder = Path(foundation_dir)
    names = {p.name for p in folder.iterdir()}
    assert names == {
        "config.json",
        "genes.txt",
        "encoder.safetensors",
        "head_init.safetensors",
        "guides.safetensors",
        "checksums.json",
    }
    config = json.loads((folder / "config.json").read_text())
    assert config["format_version"] == 1 and config["library_version"]
    assert len((folder / "genes.txt").read_text().split()) == 64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_load_on_gpu(foundation, foundation_dir):
    loaded = Foundation.load(foundation_dir, device="cuda")
    model, _ = loaded.make_model(2, device="cuda")
    assert next(model.parameters()).is_cuda


FAST = MICRO_PRESET


def test_same_seed_gives_bit_identical_foundation_without_touching_global_rng(gtl):
    data = gtl.corpus()[:60]
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first = build_foundation(data, preset=FAST, random_state=3)
    second = build_foundation(data, preset=FAST, random_state=3)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()
    assert first.vocab == second.vocab
    for name, tensor in first.encoder_state.items():
        assert torch.equal(tensor, second.encoder_state[name]), name
    for name, raw in first.guides.raw.items():
        assert torch.equal(raw, second.guides.raw[name]), name


def test_checkpointed_build_resumes_to_the_same_foundation(gtl, tmp_path):
    data = gtl.corpus()[:60]
    build = dict(preset=FAST, random_state=4, checkpoint_dir=tmp_path, checkpoint_every=1)
    first = build_foundation(data, **build)
    assert {p.name for p in tmp_path.iterdir()} >= {"pretrain.pt", "scouts.pt"}
    resumed = build_foundation(data, **build)  # starts from the last checkpoints
    for name, raw in first.guides.raw.items():
        assert torch.equal(raw, resumed.guides.raw[name]), name


def test_model_is_a_gtl_model(foundation):
    model, _ = foundation.make_model(2)
    assert isinstance(model, GTLModel)
    names = [name for name, _ in model.named_parameters()]
    assert all(name.startswith(("encoder.", "head.")) for name in names)
