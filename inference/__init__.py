"""GPU serving engines (vLLM, TensorRT-LLM): launch configs, a launcher that registers endpoints in models.yaml."""

from inference.launch import ServeConfig, command, endpoint_entry, launch, load_config, register, trtllm_options

__all__ = ["ServeConfig", "command", "endpoint_entry", "launch", "load_config", "register", "trtllm_options"]
