"""The :class:`Foundation` record: everything a downstream classifier starts from.

A foundation is a gene vocabulary, the preprocessing settings, an encoder config and its
pre-trained weights, the seeded binary head every scout started from (``head_init``), the guide
values the scouts produced (optional) and the provenance of the build. It is saved as a checked
directory (see :mod:`gtlomics.foundation.storage`)::

    config.json           format/library version, encoder + preprocessing configs, provenance
    genes.txt             the vocabulary, one gene id a line, in token order
    encoder.safetensors   pre-trained encoder weights
    head_init.safetensors the scouts' shared head initialisation
    guides.safetensors    raw guide values (mean squared scout change per parameter), if any
    checksums.json        sha256 of every file, the format version and the library version
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from gtlomics._version import __version__
from gtlomics.expression import GeneVocab, PreprocessingConfig
from gtlomics.foundation.storage import (
    FoundationIntegrityError,
    load_tensors,
    read_checked_dir,
    read_json,
    save_tensors,
    write_checked_dir,
    write_json,
)
from gtlomics.nn import ClassificationHead, EncoderConfig, ExpressionEncoder, GTLModel
from gtlomics.train import GuidanceConfig, GuideValues, adapt_guides, control_guides

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Foundation", "Provenance"]

FORMAT_NAME = "gtlomics.foundation"
FORMAT_VERSION = 1
_CONFIG, _GENES = "config.json", "genes.txt"
_ENCODER, _HEAD, _GUIDES = "encoder.safetensors", "head_init.safetensors", "guides.safetensors"


@dataclass(frozen=True)
class Provenance:
    """Where a foundation came from.

    Parameters
    ----------
    corpus : str
        Human-readable description of the pre-training corpus.
    n_samples : int
        Number of corpus samples used for pre-training and cousin tasks.
    synthetic : bool
        Whether the corpus was synthetic (generated, not measured).
    random_state : int or None
        The build's seed.
    n_scouts : int
        Number of scouts behind the guides (0 when there are none).
    build_config : dict
        JSON-serialisable settings of every build stage.
    library_version : str
        gtlomics version that built it.
    """

    corpus: str
    n_samples: int
    synthetic: bool
    random_state: int | None
    n_scouts: int = 0
    build_config: dict = field(default_factory=dict)
    library_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**dict(data))


@dataclass(frozen=True, eq=False)
class Foundation:
    """A pre-trained, scouted starting point for guided fine-tuning.

    Build one with :func:`~gtlomics.foundation.build_foundation`, or load a saved one with
    :meth:`load`. :meth:`make_model`
    rebuilds the model a classifier fine-tunes, and :meth:`guides_for` the matching guides.

    Parameters
    ----------
    vocab : GeneVocab
        Gene tokens of the encoder, in order.
    preprocessing : PreprocessingConfig
        How raw input is turned into encoder values.
    encoder_config : EncoderConfig
        Shape of the encoder.
    encoder_state : Mapping[str, torch.Tensor]
        Pre-trained encoder weights (``ExpressionEncoder.state_dict()`` names).
    head_init : Mapping[str, torch.Tensor]
        Weights of the seeded classification head every scout started from.
    guides : GuideValues or None
        Raw guide values from scouting, keyed by ``GTLModel`` parameter names.
    provenance : Provenance
        Corpus description, seeds, build settings, library version.

    Examples
    --------
    >>> from gtlomics.datasets import make_synthetic_counts
    >>> from gtlomics.foundation import build_foundation
    >>> corpus = make_synthetic_counts(120, n_genes=48, random_state=0)
    >>> foundation = build_foundation(corpus, preset="tiny", random_state=0)  # doctest: +SKIP
    >>> model, head_from_init = foundation.make_model(2)  # doctest: +SKIP
    """

    vocab: GeneVocab
    preprocessing: PreprocessingConfig
    encoder_config: EncoderConfig
    encoder_state: Mapping[str, torch.Tensor]
    head_init: Mapping[str, torch.Tensor]
    guides: GuideValues | None
    provenance: Provenance

    def __copy__(self) -> Foundation:
        return self

    def __deepcopy__(self, memo: dict) -> Foundation:
        # Immutable by contract (nothing modifies its tensors; models get copies), so copies
        # share it: sklearn's clone in cross-validation must not duplicate the weights per fold.
        return self

    @property
    def n_genes(self) -> int:
        """Number of gene tokens."""
        return len(self.vocab.genes)

    @property
    def head_classes(self) -> int:
        """Number of classes of the scouts' head (2 for the usual binary cousin tasks)."""
        return int(self.head_init["linear.weight"].shape[0])

    def make_encoder(self, device: str | torch.device = "cpu") -> ExpressionEncoder:
        """A fresh encoder holding the pre-trained weights, on ``device``."""
        encoder = ExpressionEncoder(self.encoder_config)
        _load_weights(encoder, self.encoder_state, "encoder", self.provenance)
        return encoder.to(device)

    def make_model(
        self, n_classes: int, *, seed: int = 0, device: str | torch.device = "cpu"
    ) -> tuple[GTLModel, bool]:
        """Rebuild the model a classifier fine-tunes.

        The encoder gets the pre-trained weights. When ``n_classes`` equals :attr:`head_classes`
        the head starts from ``head_init`` (the scouts' starting point, so the head's guides mean
        something); otherwise it is a fresh head seeded by ``seed`` and :meth:`guides_for` gives
        it guides of 1 (free to move: no scout ever trained a head of that shape).

        Returns
        -------
        model : GTLModel
            Encoder + head on ``device``.
        head_from_init : bool
            Whether the head started from ``head_init``.
        """
        head = ClassificationHead(self.encoder_config.d_model, n_classes, seed=seed)
        head_from_init = n_classes == self.head_classes
        if head_from_init:
            _load_weights(head, self.head_init, "head_init", self.provenance)
        return GTLModel(self.make_encoder(), head).to(device), head_from_init

    def guides_for(
        self, model: GTLModel, *, guidance: GuidanceConfig | None = None, seed: int = 0
    ) -> dict[str, torch.Tensor] | None:
        """The guides fine-tuning of ``model`` (from :meth:`make_model`) uses; None: unguided.

        The one place raw guides are prepared: normalised (``guidance.normalize``), replaced by
        a seeded control for ``mode="shuffled"`` / ``"constant"``
        (:func:`gtlomics.train.control_guides`), fitted to ``model``
        (:func:`gtlomics.train.adapt_guides`: a head of another shape than the scouts' gets
        guides of 1). ``guidance=None`` is ``GuidanceConfig()``. Raises ``ValueError`` when
        guidance is asked of a foundation built without scouts.
        """
        guidance = GuidanceConfig() if guidance is None else guidance
        if not guidance.guided:
            return None
        if self.guides is None:
            raise ValueError(
                "This foundation has no guide values (it was built without scouts); pass "
                "guidance='none' to fine-tune it unguided, or rebuild it with scouts."
            )
        normalized = self.guides.normalized(mode=guidance.normalize)
        if guidance.control is not None:
            normalized = control_guides(normalized, guidance.control, seed=seed)
        return adapt_guides(normalized, model)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save as a checked directory (atomic: written to a temporary folder, then renamed)."""
        return write_checked_dir(
            path,
            self._write_files,
            format_name=FORMAT_NAME,
            format_version=FORMAT_VERSION,
            overwrite=overwrite,
        )

    def _write_files(self, folder: Path) -> None:
        write_json(folder / _CONFIG, self._config_dict())
        (folder / _GENES).write_text("\n".join(self.vocab.to_list()) + "\n", encoding="utf-8")
        save_tensors(folder / _ENCODER, self.encoder_state)
        save_tensors(folder / _HEAD, self.head_init)
        if self.guides is not None:
            save_tensors(folder / _GUIDES, self.guides.state_dict())

    def _config_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "encoder": self.encoder_config.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "provenance": self.provenance.to_dict(),
            "has_guides": self.guides is not None,
        }

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> Foundation:
        """Load a saved foundation onto ``device`` after verifying checksums and versions.

        Raises
        ------
        FoundationVersionError
            Written in a format version this gtlomics cannot read.
        FoundationIntegrityError
            A file is missing, truncated, edited or unreadable, ``config.json`` lacks a section,
            or the parts do not fit together (gene list, encoder config and weights, guide names
            and shapes); the message names the file or tensor.
        """
        folder = Path(path).expanduser()
        read_checked_dir(folder, format_name=FORMAT_NAME, supported_version=FORMAT_VERSION)
        foundation = cls._from_files(folder, device)
        foundation._check_consistent(folder)
        return foundation

    @classmethod
    def _from_files(cls, folder: Path, device: str | torch.device) -> Foundation:
        config = read_json(folder / _CONFIG)
        try:
            return cls(
                vocab=GeneVocab.from_list(_read_genes(folder / _GENES)),
                preprocessing=PreprocessingConfig.from_dict(config["preprocessing"]),
                encoder_config=EncoderConfig.from_dict(config["encoder"]),
                encoder_state=load_tensors(folder / _ENCODER, device),
                head_init=load_tensors(folder / _HEAD, device),
                guides=_read_guides(folder, config, device),
                provenance=Provenance.from_dict(config["provenance"]),
            )
        except FoundationIntegrityError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise FoundationIntegrityError(
                f"{folder / _CONFIG} or {_GENES} is not a valid foundation description "
                f"({type(error).__name__}: {error}). Save or build it again."
            ) from error

    def _check_consistent(self, folder: Path) -> None:
        if self.encoder_config.n_genes != self.n_genes:
            raise FoundationIntegrityError(
                f"{folder}: {_GENES} lists {self.n_genes} genes but the encoder was built for "
                f"{self.encoder_config.n_genes}. Rebuild the foundation."
            )
        if "linear.weight" not in self.head_init:
            raise FoundationIntegrityError(
                f"{folder / _HEAD} has no 'linear.weight' tensor. Rebuild the foundation."
            )
        model, _ = self.make_model(self.head_classes)  # weights must fit the module layout
        if self.guides is not None:
            _check_guides_fit(self.guides, model, folder / _GUIDES)


def _read_genes(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise FoundationIntegrityError(f"{path} is not UTF-8 text: {error}.") from error


def _read_guides(folder: Path, config: Mapping[str, Any], device) -> GuideValues | None:
    if not config.get("has_guides"):
        return None
    try:
        return GuideValues.from_state_dict(load_tensors(folder / _GUIDES, device))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        if isinstance(error, FoundationIntegrityError):
            raise
        raise FoundationIntegrityError(
            f"{folder / _GUIDES} is not a valid guide file ({error}). Rebuild the foundation."
        ) from error


def _check_guides_fit(guides: GuideValues, model: GTLModel, path: Path) -> None:
    """Every trainable parameter has a finite, non-negative guide of its shape, and no more.

    A guide that does not fit would be silently replaced by 1 (unguided) at fine-tuning time.
    """
    shapes = {name: p.shape for name, p in model.named_parameters() if p.requires_grad}
    for name, guide in guides.raw.items():
        if shapes.get(name) != guide.shape:
            expected = tuple(shapes[name]) if name in shapes else "no such parameter"
            raise FoundationIntegrityError(
                f"{path}: the guide for {name!r} has shape {tuple(guide.shape)} but the model "
                f"has {expected}. Rebuild the foundation."
            )
        if not bool(torch.isfinite(guide).all()) or bool((guide < 0).any()):
            raise FoundationIntegrityError(
                f"{path}: the guide for {name!r} holds NaN, infinite or negative values (guides "
                "are mean squared changes). Rebuild the foundation."
            )
    missing = sorted(set(shapes) - set(guides.raw))
    if missing:
        raise FoundationIntegrityError(
            f"{path}: guides are missing for {missing[:3]} ({len(missing)} parameters). "
            "Rebuild the foundation."
        )


def _load_weights(
    module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, provenance: Provenance
) -> None:
    try:
        module.load_state_dict(dict(state))
    except RuntimeError as error:
        raise FoundationIntegrityError(
            f"The foundation's {what} weights do not fit its config with this gtlomics "
            f"{__version__} (foundation built by {provenance.library_version}). Rebuild the "
            f"foundation. Details: {error}"
        ) from error
