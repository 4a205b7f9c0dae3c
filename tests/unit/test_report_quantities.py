"""Which printed quantities a report's reference keeps: the ones the goal names (``nodes.report_quantities``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nodes.report_quantities import asked_lines

REGION = ("sales.csv has columns region,amount. Write totals.csv with the columns region,total (one row per region, "
          "the sum of amount for that region) and write report.md stating the grand total of all sales.")
PRINTED = "north: 150.75\nsouth: 99.75\neast: 50.0\nGrand Total: 300.5\n"


def test_the_grand_total_the_goal_asks_for_is_kept_and_the_per_region_totals_dropped() -> None:
    # issue-22 slice at 6dd829b: a report stating exactly "Grand total of all sales: $300.50" failed because the
    # agreed reference also printed each region's total
    assert asked_lines(REGION, "report.md", PRINTED) == "Grand Total: 300.5\n"


def test_several_named_quantities_are_all_kept() -> None:
    goal = ("Read sales.csv (columns region,amount) and write report.md: a short Markdown report stating the total "
            "amount of all sales and the number of sales.")
    printed = "Total amount: 300.5\nNumber of sales: 6\nLargest sale: 120.5\n"
    assert asked_lines(goal, "report.md", printed) == "Total amount: 300.5\nNumber of sales: 6\n"
    stats = ("scores.csv has columns student,score. Write stats.json with the keys mean, max and count and write "
             "summary.md, a short report stating the mean score.")
    assert asked_lines(stats, "summary.md", "Mean score: 78.5\nMax score: 95\nCount: 4\n") == "Mean score: 78.5\n"


def test_nothing_is_dropped_when_the_goal_asks_per_group() -> None:
    for phrase in ("the total of each region", "the totals per region", "the total by region and the grand total"):
        goal = f"sales.csv has columns region,amount. Write report.md stating {phrase}."
        assert asked_lines(goal, "report.md", PRINTED) == PRINTED


def test_nothing_is_dropped_when_no_printed_label_is_named() -> None:
    big = ("orders.csv has columns id,customer,amount. Write big_orders.csv ... and write report.md stating how many "
           "orders that is.")
    assert asked_lines(big, "report.md", "Number of big orders: 3\n") == "Number of big orders: 3\n"
    assert asked_lines(big, "report.md", "3\n12.5\n") == "3\n12.5\n"
    assert asked_lines("Write report.md.", "report.md", PRINTED) == PRINTED  # no phrase for what it states
    assert asked_lines(REGION, "other.md", PRINTED) == PRINTED  # the goal says nothing about this file


_LINE = st.builds(lambda name, value: f"{name}: {value}", st.sampled_from(
    ["Grand Total", "north", "Total amount", "Number of sales", "Mean score", "count", "x y z"]),
    st.floats(allow_nan=False, allow_infinity=False, width=32))


@given(st.lists(_LINE, min_size=1, max_size=6), st.sampled_from(
    [REGION, "Write report.md stating the mean score and the number of sales.", "Write report.md stating x.",
     "Write report.md stating the total per region."]))
def test_the_result_is_the_input_or_a_non_empty_ordered_subset_of_its_lines(lines: list[str], goal: str) -> None:
    printed = "\n".join(lines) + "\n"
    kept = asked_lines(goal, "report.md", printed)
    if kept != printed:
        out = kept.splitlines()
        assert out and len(out) < len(lines)
        it = iter(lines)
        assert all(any(line == x for x in it) for line in out)  # in the printed order
