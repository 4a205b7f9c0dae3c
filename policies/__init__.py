"""Policy as code: Rego policies (``policies/rego``) decide every tool and model call, at one gate.

``engines`` runs the same ``.rego`` files in-process (regorus, the default), in the reference OPA Go
engine (the conformance oracle) or in an OPA server over REST; ``gate`` enforces the decision
(allow / deny / ask → LangGraph ``interrupt()``), ``audit`` signs what happened, ``switches`` holds the
kill switches that every gate reads.
"""
