"""Rewrite expected_failures.txt from a fresh run: ``python -m tests.conformance.update_expected_failures``.

Keeps the hand-written reason of a case that still fails; new failures get the first line of
their error as the reason (edit it into a real explanation before committing).
"""

from __future__ import annotations

import os
import re
import sys

from tests.conformance.test_node_cases import CASES, EXPECTED_FAILURES, HERE, run_case


def _reason(exc: Exception) -> str:
    text = str(exc)
    if type(exc).__name__ == "NotImplemented":
        ops = sorted(set(re.findall(r"op ([\w.]+::\w+) \(opset (\d+)\)", text)))
        missing = ", ".join(f"{op}-{v}" for op, v in ops[:4])
        return f"no CPU implementation yet: {missing}"
    first = (text.strip().splitlines() or [type(exc).__name__])[0][:160]
    return f"{type(exc).__name__}: {first}"


def main() -> int:
    failures = {}
    for name in sorted(CASES):
        try:
            run_case(CASES[name])
        except Exception as exc:  # noqa: BLE001 - we record every kind of failure
            failures[name] = EXPECTED_FAILURES.get(name) or _reason(exc)
    path = os.path.join(HERE, "expected_failures.txt")
    with open(path, "w") as f:
        f.write("# Node conformance cases ferry does not pass yet: NAME  reason\n")
        for name, reason in failures.items():
            f.write(f"{name}  {reason}\n")
    passed = len(CASES) - len(failures)
    print(f"{passed} of {len(CASES)} node cases pass; {len(failures)} listed in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
