"""Naestro Studio (issue 17): the offline web UI and its JSON/SSE API.

``studio/api.py`` builds the Starlette app (``naestro studio`` serves it on uvicorn; ``langgraph.json`` mounts it
as ``http.app``), ``control.py`` acts on runs (start, consent, resume, history, rollback, fork), ``runview.py``
reads them, ``stream.py`` tails their events over SSE, ``auth.py`` checks the token, ``metrics.py`` folds the
metrics; the front end lives in ``web/`` and is built into ``static/``.
"""
