"""The unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", §2.1).

From n samples of which c passed, pass@k = 1 - C(n-c, k) / C(n, k): the probability that at least one of k
samples drawn without replacement passes. Computed as a product so large n does not overflow.
"""

from __future__ import annotations

from collections.abc import Iterable

from naestro.errors import UsageError

__all__ = ["mean_pass_at_k", "pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise UsageError(f"pass@k needs 1 <= k <= n and 0 <= c <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    fail = 1.0
    for i in range(n - c + 1, n + 1):
        fail *= 1.0 - k / i
    return 1.0 - fail


def mean_pass_at_k(samples: Iterable[tuple[int, int]], k: int) -> float:
    """Mean over problems of pass@k; each problem is (n, c). Problems with fewer than k samples are an error."""
    values = [pass_at_k(n, c, k) for n, c in samples]
    if not values:
        raise UsageError("pass@k over no problems")
    return sum(values) / len(values)
