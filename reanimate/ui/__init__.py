"""``reanimate ui``: the web app (Gradio), built on the library's pipelines only.

:mod:`~reanimate.ui.files` the server's private folder, sessions, upload checks and
limits; :mod:`~reanimate.ui.jobs` what the Animate and Edit tabs do; :mod:`~reanimate.ui.live`
the Live tab's webcam frames; :mod:`~reanimate.ui.app` the page (imports Gradio);
:mod:`~reanimate.ui.server` starts it.
"""
