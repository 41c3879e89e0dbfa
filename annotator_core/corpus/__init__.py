"""The corpus a build scores: compressed int8 files shared by every worker, partitions, and the scorer interface.

- :mod:`~annotator_core.corpus.files` — the files beside LanceDB and their incremental sync;
- :mod:`~annotator_core.corpus.reads` — reading rows of the mapped files (concurrent pread, populating pages);
- :mod:`~annotator_core.corpus.partitions` — IVF partitions (centroids, assignment);
- :mod:`~annotator_core.corpus.candidates` — block scoring, pruning, merging shards' candidates;
- :mod:`~annotator_core.corpus.scorer` — what a build asks of the corpus, in memory or memory-mapped.
"""
