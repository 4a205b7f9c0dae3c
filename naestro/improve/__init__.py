"""Guarded self-improvement (issue 21): Collect → Propose → Validate → Canary → Merge → Learn.

Findings from the Introspector become minimal self-PRs on a local git repository of Naestro's own config
(HOME/improve/config.git: role prompts, router priors, tool adapter configs, golden counter-examples), refused by
policy before anything is written when they leave the allowlist, validated on the golden suite against the
current config (and by offline replays of recorded runs), shadowed on live runs, and merged as signed releases
whose prompts and router priors runs then use. See ``loop.py``.

This package's ``__init__`` exports the parts the runtime and the CLI read without running anything; the loop
itself (``naestro.improve.loop``), validation and the canary import the runner and are loaded on use.
"""

from naestro.improve.active import ActiveConfig, load_active, with_active_priors, with_active_prompts
from naestro.improve.allowlist import check_proposal
from naestro.improve.findings import FindingsQueue, QueuedFinding
from naestro.improve.proposal import Change, Proposal, ProposalKind
from naestro.improve.release import Release, releases, verify
from naestro.improve.repo import ConfigRepo, GitFailed

__all__ = [
    "ActiveConfig",
    "Change",
    "ConfigRepo",
    "FindingsQueue",
    "GitFailed",
    "Proposal",
    "ProposalKind",
    "QueuedFinding",
    "Release",
    "check_proposal",
    "load_active",
    "releases",
    "verify",
    "with_active_priors",
    "with_active_prompts",
]
