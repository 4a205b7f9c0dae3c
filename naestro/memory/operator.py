"""Memory as an operator reads it outside a run: ``naestro memory ...`` and the Studio's memory timeline.

Reads go through a policy gate of their own (run id ``memory-cli``), as role ``operator`` unless told otherwise,
audited to ``NAESTRO_HOME/memory/audit.jsonl``: the same rules as a run's recalls, with the home's policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from naestro.memory.fabric import Memory
    from naestro.settings import Settings
    from policies.gate import Gate

__all__ = ["open_operator_memory"]


def open_operator_memory(settings: Settings) -> tuple[Memory, Gate]:
    """The home's memory and a gate for an operator's reads. Nothing starts yet (the embedded FalkorDB starts on
    the first read); graphiti and the policy engine load here, not when a CLI only prints ``--help``."""
    from naestro.memory.fabric import Memory
    from naestro.memory.retention import Retention
    from nodes.roles import load_roles
    from policies.audit import AuditLog, anchors_dir, load_signing_key
    from policies.decision import RunPolicy
    from policies.engines import REGO_DIR, configured_engine, load_bundle
    from policies.gate import Gate
    from policies.switches import KillSwitches

    roles = {r.value: list(spec.tools) for r, spec in load_roles().items()}
    bundle = load_bundle(settings.policy_dir or REGO_DIR, roles=roles)
    memory = Memory.open(home=settings.home, url=settings.memory_url, roles=roles,
                         readable=bundle.data.get("naestro", {}).get("memory", {}).get("readable", {}),
                         retention=Retention(keep_runs=settings.memory_keep_runs,
                                             max_age_days=settings.memory_max_age_days))
    (settings.home / "memory").mkdir(parents=True, exist_ok=True)
    audit = AuditLog(settings.home / "memory" / "audit.jsonl", run_id="memory-cli",
                     key=load_signing_key(settings.keys_dir), anchors=anchors_dir(settings.home))
    gate = Gate(configured_engine(bundle, settings.policy_url), run_id="memory-cli", workspace=settings.home,
                policy=RunPolicy(), audit=audit, switches=KillSwitches(settings.control_db), registered=set,
                rate_limits={})
    return memory, gate
