"""Pure-torch modules of gtlomics: encoder config, layers, encoder, heads, scout ensembles."""

from gtlomics.nn.config import EncoderConfig
from gtlomics.nn.encoder import ExpressionEncoder
from gtlomics.nn.ensemble import ensemble_logits
from gtlomics.nn.heads import (
    ClassificationHead,
    GeneReadoutHead,
    GTLModel,
    MaskedExpressionHead,
    RegressionHead,
    SeedEnsemble,
)
from gtlomics.nn.layers import set_dropout_generator

__all__ = [
    "ClassificationHead",
    "EncoderConfig",
    "ExpressionEncoder",
    "GTLModel",
    "GeneReadoutHead",
    "MaskedExpressionHead",
    "RegressionHead",
    "SeedEnsemble",
    "ensemble_logits",
    "set_dropout_generator",
]
