"""Technical tokens: words NER must not take for a person or a place.

spaCy's small English pipeline tags name-like words in goals as PERSON or GPE (seen: "python3" in "check it by
running python3 hello.py" became ``[REDACTED:pii:…]`` in the live header, ``runs show``, ``runs list`` and
report.md, issue 18), and presidio gives every NER entity the same score (0.85), so the score alone cannot tell
a name from a command. Here is the rest of the evidence: the shape of the word as written in the text (a
person's or a place's name in English prose is capitalised letters; a command, a file name or an identifier
has lower case, digits, dots, underscores or slashes) and an allow-list of technical words that are also
capitalised at the start of a sentence (``Python``, ``Docker``...). Checksummed recognizers, e-mails and phone
numbers never come here: only NER findings are filtered.
"""

from __future__ import annotations

import re

__all__ = ["TECHNICAL_WORDS", "is_technical", "name_like"]

TECHNICAL_WORDS: frozenset[str] = frozenset({
    "python", "python3", "python2", "py", "pip", "pip3", "pytest", "unittest", "pandas", "numpy", "scipy",
    "json", "csv", "yaml", "toml", "xml", "html", "css", "sql", "sqlite", "sqlite3", "postgres", "postgresql",
    "mysql", "redis", "bash", "sh", "zsh", "shell", "powershell", "cmd", "git", "github", "gitlab", "docker",
    "podman", "kubectl", "kubernetes", "helm", "node", "npm", "npx", "yarn", "deno", "java", "javac", "kotlin",
    "scala", "go", "golang", "rust", "cargo", "rustc", "ruby", "gem", "perl", "php", "lua", "swift", "clang",
    "gcc", "make", "cmake", "ninja", "linux", "ubuntu", "debian", "fedora", "alpine", "windows", "macos",
    "unix", "posix", "http", "https", "ftp", "ssh", "tcp", "udp", "api", "rest", "grpc", "graphql", "cli",
    "gui", "ui", "url", "uri", "uuid", "utf", "ascii", "markdown", "readme", "license", "makefile",
    "dockerfile", "fib", "fibonacci", "hello", "world", "foo", "bar", "baz", "qux", "main", "test", "tests",
    "todo", "fixme", "naestro", "langgraph", "langchain", "llama", "qwen", "ollama", "vllm", "openai", "mcp",
    "rego", "opa", "regorus", "bubblewrap", "bwrap", "jupyter", "notebook", "vscode", "vim", "emacs", "nano",
    "stdin", "stdout", "stderr", "true", "false", "none", "null", "nan", "inf", "lambda", "def", "class",
    "import", "print", "return", "async", "await", "self", "args", "kwargs",
})
"""Lower-case; compared with the word's lower-case form (``Python`` at the start of a sentence is the language)."""

# Letters only, each word capitalised; apostrophes and hyphens inside a name (O'Brien, Anne-Marie, McDonald).
# CamelCase is not a name here: DataFrame and HelloWorld are identifiers.
_NAME_WORD = re.compile(r"(?:Mc|Mac)?[A-Z][a-z]+(?:['’-][A-Za-z][a-z]*)*|[A-Z][a-z]*(?:['’-][A-Z][a-z]+)+")
_EDGE = "\"'`()[]{}<>,;:!?.…“”‘’«»"
_TECHNICAL_CHAR = re.compile(r"[0-9_./\\=@#$%^&*+|~<>{}\[\]`();:\"]")


def _word_at(text: str, start: int, end: int) -> str:
    """The whitespace-delimited word(s) around ``text[start:end]``, without sentence punctuation at the edges:
    NER may cut ``hello`` out of ``hello.py``, so the shape is judged on what the text really says there."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[start:end].strip(_EDGE)


def name_like(words: str) -> bool:
    """Every word capitalised letters (``Maria Gonzalez``, ``O'Brien``, ``New York``), none a technical word."""
    parts = words.split()
    return bool(parts) and all(_NAME_WORD.fullmatch(p) and p.lower() not in TECHNICAL_WORDS for p in parts)


def is_technical(text: str, start: int, end: int) -> bool:
    """Whether the span ``text[start:end]`` (an NER finding) is written as a technical token, not a name:
    a command, file name, identifier, path or allow-listed word, judged on the whole word it sits in."""
    span = text[start:end].strip(_EDGE + " ")
    around = _word_at(text, start, end)
    if _TECHNICAL_CHAR.search(around) or _TECHNICAL_CHAR.search(span):
        return True
    return not name_like(span)
