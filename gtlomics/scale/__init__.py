"""Scale-out helpers above the torch core: corpora read from disk in chunks, cousin tasks on a
bounded subsample. (Distributed training itself lives in :mod:`gtlomics.train.distributed`.)"""

from gtlomics.scale.corpus import H5adCorpus
from gtlomics.scale.cousins import SubsampledCousinTasks, assign_to_centroids, read_rows

__all__ = ["H5adCorpus", "SubsampledCousinTasks", "assign_to_centroids", "read_rows"]
