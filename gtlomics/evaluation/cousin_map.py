"""The cousin-task map of a report: clusters of the unlabelled corpus and a few task pairs.

A saved :class:`~gtlomics.foundation.Foundation` keeps its guides but not the fitted cluster
generator, so the map re-fits a :class:`~gtlomics.scouts.ClusterScoutGenerator` on the corpus with
the cousin-task settings recorded in the foundation's provenance. The figure says so: it shows
the same kind of tasks the scouts trained on, not necessarily the identical clusters.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["cousin_task_map"]


def cousin_task_map(foundation: Any, corpus: Any, *, seed: int = 0, n_tasks: int = 3):
    """Figure of corpus clusters and ``n_tasks`` cousin tasks, re-fitted for display.

    Parameters
    ----------
    foundation
        The ``Foundation`` whose vocabulary, preprocessing and cousin-task settings are used.
    corpus
        The unlabelled corpus it was built on (AnnData, DataFrame or array with gene names).
    seed
        Seed of the re-fitted generator.
    n_tasks
        Task panels to draw.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from gtlomics.expression import prepare_expression
    from gtlomics.foundation import CousinTaskSettings, FoundationPreset
    from gtlomics.plotting.cousin_tasks import plot_cousin_tasks
    from gtlomics.scouts import ScoutCapWarning, shift_to_nonnegative

    values = prepare_expression(corpus, foundation.vocab, foundation.preprocessing).values
    values = shift_to_nonnegative(values)  # rank-encoded foundations give negative values
    recorded = foundation.provenance.build_config.get("cousin_tasks", {})
    preset = FoundationPreset(n_scouts=max(n_tasks, 1), cousin_tasks=CousinTaskSettings(**recorded))
    generator = preset.task_generator(values.shape[0], seed)
    with warnings.catch_warnings():  # sizes are scaled to the corpus on purpose
        warnings.simplefilter("ignore", ScoutCapWarning)
        generator.fit(values)
    figure = plot_cousin_tasks(generator, n_tasks=n_tasks)
    figure.suptitle(
        "Cousin tasks on the unlabelled corpus (clusters re-fitted for display with the "
        "foundation's recorded settings)"
    )
    return figure
