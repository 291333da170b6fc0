"""Execution providers. The session core (runtime) is loaded first: providers build on its IR
and errors, and importing a provider module on its own must work."""

import runtime  # noqa: F401  (import order: runtime, then providers)
