"""Expression layer: any user matrix → vocabulary-aligned, log1p-normalised float32 values.

Numpy, pandas and scipy at import time; anndata, h5py and scanpy are imported only where used.
"""

from gtlomics.expression.config import LOG_SCALE_MAX, PreprocessingConfig, ReadSettings
from gtlomics.expression.ids import strip_ensembl_version
from gtlomics.expression.prepare import (
    DuplicateGeneWarning,
    PreparedExpression,
    check_overlap,
    prepare_expression,
)
from gtlomics.expression.table import ExpressionTable, read_expression
from gtlomics.expression.vocab import GeneVocab

__all__ = [
    "LOG_SCALE_MAX",
    "DuplicateGeneWarning",
    "ExpressionTable",
    "GeneVocab",
    "PreparedExpression",
    "PreprocessingConfig",
    "ReadSettings",
    "check_overlap",
    "prepare_expression",
    "read_expression",
    "strip_ensembl_version",
]
