"""Data sources: the synthetic default and real loaders (OSDR, recount3, local corpora).

The loaders are the only network code of gtlomics. Downloads go through
:mod:`gtlomics.datasets.download` (cache in ``$GTLOMICS_CACHE`` or ``~/.cache/gtlomics``).
"""

from gtlomics.datasets.download import DownloadConfig, FetchedFile, fetch, resolve_cache_dir
from gtlomics.datasets.errors import (
    ChecksumMismatchError,
    DataFormatError,
    DownloadError,
    LabelMismatchError,
    NoCountsTableError,
)
from gtlomics.datasets.gene_ids import harmonize_to_ensembl, map_gene_ids, strip_ensembl_version
from gtlomics.datasets.local import (
    load_benayoun_aging,
    load_benayoun_neutrophils,
    load_curated_adipo,
    load_weger_liver,
)
from gtlomics.datasets.osdr import OsdrFile, list_osdr_files, load_osdr, pick_counts_file
from gtlomics.datasets.osdr_catalog import list_osdr_studies
from gtlomics.datasets.recount3 import (
    build_recount3_corpus,
    list_recount3_projects,
    load_recount3,
)
from gtlomics.datasets.synthetic import SyntheticDesign, make_synthetic_counts

__all__ = [
    "ChecksumMismatchError",
    "DataFormatError",
    "DownloadConfig",
    "DownloadError",
    "FetchedFile",
    "LabelMismatchError",
    "NoCountsTableError",
    "OsdrFile",
    "SyntheticDesign",
    "build_recount3_corpus",
    "fetch",
    "harmonize_to_ensembl",
    "list_osdr_files",
    "list_osdr_studies",
    "list_recount3_projects",
    "load_benayoun_aging",
    "load_benayoun_neutrophils",
    "load_curated_adipo",
    "load_osdr",
    "load_recount3",
    "load_weger_liver",
    "make_synthetic_counts",
    "map_gene_ids",
    "pick_counts_file",
    "resolve_cache_dir",
    "strip_ensembl_version",
]
