"""Data sources: the synthetic default and real loaders (OSDR, recount3)."""

from gtlomics.datasets.synthetic import SyntheticDesign, make_synthetic_counts

__all__ = ["SyntheticDesign", "make_synthetic_counts"]
