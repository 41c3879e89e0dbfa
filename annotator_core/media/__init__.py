"""Video media without Ray: probe a file, detect its shots, sample their frames, decode it once.

- :mod:`annotator_core.media.probe`: what a file is (size, duration, frame count) and whether to refuse it.
- :mod:`annotator_core.media.shots`: PySceneDetect cut detection fed frame by frame.
- :mod:`annotator_core.media.sampling`: what a shot keeps (encoder frames, a JPEG thumbnail).
- :mod:`annotator_core.media.decode`: one sequential decode of a title into shot samples.

Ingest (``pipelines``) and clip scoring (``serving.scoring``) both call these, so a clip scored
online gets exactly the vectors ingest would store for it.
"""
