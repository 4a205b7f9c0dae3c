"""The offline web Studio (later issue). Nothing here yet."""
