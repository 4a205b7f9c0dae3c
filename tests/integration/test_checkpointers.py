"""Both checkpoint backends pass langgraph-checkpoint-conformance (async API) and carry a real run + resume.

Postgres is the real server on 127.0.0.1:5432 (trust auth, database ``test``); each test uses its own
schema-free thread ids, so runs never collide with other data in that database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate

from checkpoints import open_saver
from naestro.errors import ConfigError
from naestro.plan import Plan
from naestro.runner import Runner
from naestro.settings import Settings
from tests.fakes import ScriptedProvider
from tests.integration.test_run_graph import coder_script, regex_task

PG_URL = os.environ.get("NAESTRO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def backends(tmp_path: Path) -> dict[str, str | None]:
    return {"sqlite": f"sqlite:///{tmp_path / 'cp.sqlite'}", "postgres": PG_URL}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_conformance(backend: str, tmp_path: Path) -> None:
    url = backends(tmp_path)[backend]

    @checkpointer_test(name=f"naestro-{backend}")
    async def saver() -> AsyncIterator[BaseCheckpointSaver[str]]:
        async with open_saver(url, tmp_path / "unused.sqlite") as s:
            yield s

    report = await validate(saver)
    assert report.passed_all_base(), report


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_run_and_resume_on_backend(backend: str, settings: Settings, tmp_path: Path) -> None:
    cfg = settings.model_copy(update={"checkpoint_url": backends(tmp_path)[backend]})
    plan = Plan.model_validate({"goal": f"g-{uuid.uuid4().hex[:6]}", "tasks": [regex_task("a", "ok"),
                                                                              regex_task("b", "ok", ["a"])]})
    result = await Runner(cfg, ScriptedProvider(coder_script({"a": "ok", "b": "ok"}))).start("g", plan=plan)
    assert result.passed
    again = await Runner(cfg, ScriptedProvider(coder_script({}))).resume(result.record.run_id)
    assert again.passed  # nothing left to do: the finished thread is read back from the backend


async def test_bad_urls_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot connect to the checkpoint database"):
        async with open_saver("postgresql://nobody@127.0.0.1:9/none", tmp_path / "x"):
            pass
    with pytest.raises(ConfigError, match="use postgresql://"):
        async with open_saver("redis://127.0.0.1", tmp_path / "x"):
            pass


async def test_corrupted_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "cp.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="checkpoint database is unreadable"):
        async with open_saver(None, db):
            pass
