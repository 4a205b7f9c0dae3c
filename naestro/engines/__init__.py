"""Model engines Naestro can start itself (the embedded llama.cpp server)."""
