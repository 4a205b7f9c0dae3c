"""GPU engine launch configs: exact command lines, trtllm options, registration in models.yaml, clear errors.

No GPU here: the engines are not installed, so launching must fail with EndpointUnavailable naming the fix.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from inference import ServeConfig, command, endpoint_entry, launch, load_config, register, trtllm_options
from naestro.cli import app
from naestro.endpoints import load_registry
from naestro.errors import ConfigError, EndpointUnavailable
from tests.conftest import REPO

CONFIGS = sorted((REPO / "inference" / "configs").glob("*.yaml"))


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_every_shipped_config_loads_and_registers(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    shutil.copy(REPO / "naestro" / "models.yaml", models)
    assert len(CONFIGS) >= 4
    for path in CONFIGS:
        register(models, load_config(path))
    registry = load_registry(models)
    names = {e.name for e in registry.endpoints}
    assert {load_config(p).name for p in CONFIGS} <= names and {"coder-1.5b", "coder-0.5b"} <= names
    vllm = registry.get("vllm-coder-7b")
    assert (vllm.kind, vllm.base_url, vllm.model, vllm.concurrency) == (
        "vllm", "http://127.0.0.1:8000/v1", "qwen2.5-coder-7b-instruct", 64)
    assert "long_context" in vllm.capabilities
    register(models, load_config(CONFIGS[0]))  # registering again replaces, never duplicates
    assert len(load_registry(models).endpoints) == len(registry.endpoints)


def test_vllm_command_lines() -> None:
    argv = command(load_config(REPO / "inference/configs/vllm-qwen2.5-coder-7b.yaml"))
    assert argv[:3] == ["vllm", "serve", "Qwen/Qwen2.5-Coder-7B-Instruct"]
    assert {"--enable-prefix-caching", "--enable-chunked-prefill"} <= set(argv)
    assert json.loads(flag(argv, "--speculative-config")) == {"method": "ngram", "num_speculative_tokens": 4,
                                                               "prompt_lookup_max": 4}
    dp = command(load_config(REPO / "inference/configs/vllm-qwen2.5-coder-32b-dp.yaml"))
    assert (flag(dp, "--data-parallel-size"), flag(dp, "--tensor-parallel-size")) == ("2", "2")
    assert json.loads(flag(dp, "--speculative-config"))["method"] == "eagle3"
    prefill = command(load_config(REPO / "inference/configs/vllm-disagg-prefill.yaml"))
    decode = command(load_config(REPO / "inference/configs/vllm-disagg-decode.yaml"))
    assert json.loads(flag(prefill, "--kv-transfer-config"))["kv_role"] == "kv_producer"
    assert json.loads(flag(decode, "--kv-transfer-config"))["kv_role"] == "kv_consumer"
    off = command(ServeConfig(engine="vllm", name="x", model="m", prefix_caching=False, chunked_prefill=False))
    assert "--no-enable-prefix-caching" in off and "--enable-chunked-prefill" not in off


def test_trtllm_command_and_options(tmp_path: Path) -> None:
    cfg = load_config(REPO / "inference/configs/trtllm-qwen2.5-coder-7b.yaml")
    argv = command(cfg, options_file=tmp_path / "o.yaml")
    assert argv[0] == "trtllm-serve" and flag(argv, "--backend") == "pytorch"
    assert flag(argv, "--extra_llm_api_options") == str(tmp_path / "o.yaml")
    options = trtllm_options(cfg)
    assert options["enable_chunked_prefill"] is True
    assert options["speculative_config"] == {"decoding_type": "Eagle", "max_draft_len": 3,
                                             "speculative_model_dir": "path/to/eagle-head-for-qwen2.5-coder-7b",
                                             "eagle3_one_model": False}
    assert endpoint_entry(cfg).kind == "trtllm"


@pytest.mark.parametrize(("text", "message"), [
    ("engine: sglang\nname: a\nmodel: m\n", "engine: Input should be"),
    ("engine: vllm\nname: a\nmodel: m\nspeculative: {method: eagle}\n", "speculative.draft_model is required"),
    ("engine: trtllm\nname: a\nmodel: m\ndisaggregated: {role: decode}\n", "supported here for vllm only"),
    ("engine: vllm\nname: A B\nmodel: m\n", "name: String should match pattern"),
])
def test_bad_configs_are_clear(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert message in str(info.value) and info.value.file == str(p)


def test_launch_without_the_engine_installed_says_so(tmp_path: Path) -> None:
    cfg = load_config(REPO / "inference/configs/vllm-qwen2.5-coder-7b.yaml")
    if shutil.which("vllm"):
        pytest.skip("vllm is installed on this machine")
    with pytest.raises(EndpointUnavailable, match="`vllm` is not installed"):
        launch(cfg, run_dir=tmp_path, models_file=None)


def test_cli_dry_run_prints_command_and_entry() -> None:
    res = CliRunner().invoke(app, ["router", "launch", str(REPO / "inference/configs/trtllm-qwen2.5-coder-7b.yaml"),
                                   "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "trtllm-serve Qwen/Qwen2.5-Coder-7B-Instruct" in res.output
    entry = yaml.safe_load(res.output[res.output.index("endpoints:"):])["endpoints"][0]
    assert entry["name"] == "trtllm-coder-7b" and entry["kind"] == "trtllm"
