"""Launch a GPU serving engine from a config file and register it in models.yaml as a router endpoint.

Engines: vLLM (``vllm serve``) and TensorRT-LLM (``trtllm-serve``), both OpenAI-compatible. A config names
the model and the serving features; this module turns it into the engine's exact command line (and, for
TensorRT-LLM, its ``--extra_llm_api_options`` YAML), starts it, waits for ``/health`` and adds an endpoint
entry to models.yaml so the router can send calls to it. On a machine without the engine installed,
``--dry-run`` prints the command and the endpoint entry without starting anything.

Features (see inference/README.md for the GPU recipes):

* prefix caching, chunked prefill (vLLM flags; TRT-LLM: KV block reuse, ``enable_chunked_prefill``);
* speculative decoding: n-gram (prompt lookup) or EAGLE/EAGLE-3 with a draft head;
* data parallel (vLLM ``--data-parallel-size``) and tensor parallel;
* disaggregated prefill/decode: two vLLM instances with a KV connector, one ``kv_producer`` (prefill) and
  one ``kv_consumer`` (decode); only the decode side is registered as the endpoint behind the proxy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Literal

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from naestro.endpoints import Capability, Endpoint, save_registry_data
from naestro.errors import ConfigError, EndpointUnavailable

__all__ = ["ServeConfig", "command", "endpoint_entry", "launch", "load_config", "register", "trtllm_options"]


class Speculative(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    method: Literal["ngram", "eagle", "eagle3"]
    num_speculative_tokens: int = Field(default=4, ge=1)
    prompt_lookup_max: int = Field(default=4, ge=1, description="ngram only")
    draft_model: str | None = Field(default=None, description="EAGLE head (required for eagle/eagle3)")


class Disaggregated(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    role: Literal["prefill", "decode"]
    connector: str = "NixlConnector"


class ServeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    engine: Literal["vllm", "trtllm"]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="endpoint name in models.yaml")
    model: str = Field(description="HF repo id or local checkpoint path")
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    context: int = Field(default=32768, gt=0)
    max_num_seqs: int = Field(default=64, ge=1, description="also the endpoint's concurrency for the router")
    tensor_parallel: int = Field(default=1, ge=1)
    data_parallel: int = Field(default=1, ge=1)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    prefix_caching: bool = True
    chunked_prefill: bool = True
    speculative: Speculative | None = None
    disaggregated: Disaggregated | None = None
    capabilities: tuple[Capability, ...] = ("json_schema", "tools", "code")
    price_in_per_1k: float = Field(default=0.0, ge=0)
    price_out_per_1k: float = Field(default=0.0, ge=0)
    extra_args: tuple[str, ...] = ()

    @property
    def model_id(self) -> str:
        return self.served_model_name or self.model


def load_config(path: Path) -> ServeConfig:
    try:
        data = yaml.safe_load(path.read_text())
        cfg = ServeConfig.model_validate(data)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=str(path)) from exc
    except ValidationError as exc:
        raise ConfigError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
                          file=str(path)) from exc
    if cfg.speculative and cfg.speculative.method != "ngram" and not cfg.speculative.draft_model:
        raise ConfigError(f"speculative.draft_model is required for {cfg.speculative.method}", file=str(path))
    if cfg.disaggregated and cfg.engine != "vllm":
        raise ConfigError("disaggregated: supported here for vllm only (trtllm uses `trtllm-serve "
                          "disaggregated -c`)", file=str(path))
    return cfg


def _speculative_json(spec: Speculative) -> str:
    if spec.method == "ngram":
        conf: dict[str, object] = {"method": "ngram", "num_speculative_tokens": spec.num_speculative_tokens,
                                   "prompt_lookup_max": spec.prompt_lookup_max}
    else:
        conf = {"method": spec.method, "model": spec.draft_model,
                "num_speculative_tokens": spec.num_speculative_tokens}
    return json.dumps(conf, separators=(",", ":"))


def trtllm_options(cfg: ServeConfig) -> dict[str, object]:
    """The ``--extra_llm_api_options`` YAML for trtllm-serve (LLM API arguments)."""
    options: dict[str, object] = {"kv_cache_config": {"enable_block_reuse": cfg.prefix_caching,
                                                      "free_gpu_memory_fraction": cfg.gpu_memory_utilization},
                                  "enable_chunked_prefill": cfg.chunked_prefill}
    if cfg.speculative is not None:
        if cfg.speculative.method == "ngram":
            options["speculative_config"] = {"decoding_type": "NGram",
                                             "max_draft_len": cfg.speculative.num_speculative_tokens,
                                             "max_matching_ngram_size": cfg.speculative.prompt_lookup_max}
        else:
            options["speculative_config"] = {"decoding_type": "Eagle",
                                             "max_draft_len": cfg.speculative.num_speculative_tokens,
                                             "speculative_model_dir": cfg.speculative.draft_model,
                                             "eagle3_one_model": cfg.speculative.method == "eagle3"}
    return options


def command(cfg: ServeConfig, *, options_file: Path | None = None) -> list[str]:
    """The engine's command line for this config (``options_file``: where trtllm's YAML is written)."""
    if cfg.engine == "vllm":
        argv = ["vllm", "serve", cfg.model, "--host", cfg.host, "--port", str(cfg.port),
                "--served-model-name", cfg.model_id, "--max-model-len", str(cfg.context),
                "--max-num-seqs", str(cfg.max_num_seqs), "--gpu-memory-utilization", str(cfg.gpu_memory_utilization),
                "--tensor-parallel-size", str(cfg.tensor_parallel)]
        if cfg.data_parallel > 1:
            argv += ["--data-parallel-size", str(cfg.data_parallel)]
        argv.append("--enable-prefix-caching" if cfg.prefix_caching else "--no-enable-prefix-caching")
        if cfg.chunked_prefill:
            argv.append("--enable-chunked-prefill")
        if cfg.speculative is not None:
            argv += ["--speculative-config", _speculative_json(cfg.speculative)]
        if cfg.disaggregated is not None:
            role = "kv_producer" if cfg.disaggregated.role == "prefill" else "kv_consumer"
            argv += ["--kv-transfer-config", json.dumps({"kv_connector": cfg.disaggregated.connector,
                                                         "kv_role": role}, separators=(",", ":"))]
        return [*argv, *cfg.extra_args]
    argv = ["trtllm-serve", cfg.model, "--host", cfg.host, "--port", str(cfg.port), "--backend", "pytorch",
            "--max_seq_len", str(cfg.context), "--max_batch_size", str(cfg.max_num_seqs),
            "--tp_size", str(cfg.tensor_parallel)]
    if options_file is not None:
        argv += ["--extra_llm_api_options", str(options_file)]
    return [*argv, *cfg.extra_args]


def endpoint_entry(cfg: ServeConfig) -> Endpoint:
    caps = set(cfg.capabilities) | ({"long_context"} if cfg.context >= 32768 else set())
    order: tuple[Capability, ...] = ("json_schema", "tools", "code", "long_context", "deep_research", "vision")
    return Endpoint(name=cfg.name, kind=cfg.engine, model=cfg.model_id, base_url=f"http://{cfg.host}:{cfg.port}/v1",
                    context=cfg.context, price_in_per_1k=cfg.price_in_per_1k, price_out_per_1k=cfg.price_out_per_1k,
                    capabilities=tuple(c for c in order if c in caps), locality="local",
                    concurrency=cfg.max_num_seqs)


def register(models_file: Path, cfg: ServeConfig) -> Endpoint:
    """Add (or replace) the config's endpoint in ``models_file``; validated before the file is replaced."""
    entry = endpoint_entry(cfg)
    try:
        data = yaml.safe_load(models_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(models_file)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("endpoints"), list):
        raise ConfigError("not a models.yaml (no endpoints list)", file=str(models_file))
    as_dict = entry.model_dump(mode="json", exclude_defaults=True, exclude={"gguf"})
    data["endpoints"] = [e for e in data["endpoints"] if not (isinstance(e, dict) and e.get("name") == cfg.name)]
    data["endpoints"].append(as_dict)
    save_registry_data(models_file, data)
    return entry


def launch(cfg: ServeConfig, *, run_dir: Path, models_file: Path | None, start_timeout_s: float = 900.0
           ) -> subprocess.Popen[bytes]:
    """Start the engine, wait until ``/health`` answers, then register the endpoint (if ``models_file``)."""
    binary = command(cfg)[0]
    if shutil.which(binary) is None:
        raise EndpointUnavailable(endpoint=cfg.name, reason=f"`{binary}` is not installed (pip install "
                                  f"{'vllm' if cfg.engine == 'vllm' else 'tensorrt_llm'} on a CUDA machine)")
    run_dir.mkdir(parents=True, exist_ok=True)
    options_file = None
    if cfg.engine == "trtllm":
        options_file = run_dir / f"{cfg.name}.extra_llm_api_options.yaml"
        options_file.write_text(yaml.safe_dump(trtllm_options(cfg), sort_keys=False))
    log = run_dir / f"{cfg.name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(command(cfg, options_file=options_file), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EndpointUnavailable(endpoint=cfg.name, log=str(log),
                                      reason=f"{binary} exited with code {proc.returncode}")
        try:
            if httpx.get(f"http://{cfg.host}:{cfg.port}/health", timeout=2).status_code == 200:
                if models_file is not None:
                    register(models_file, cfg)
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    proc.kill()
    raise EndpointUnavailable(endpoint=cfg.name, log=str(log), reason=f"not healthy after {start_timeout_s:.0f}s")
