"""The web Studio (a later issue). ``studio/api.py``: Naestro's HTTP routes beside the LangGraph API."""
