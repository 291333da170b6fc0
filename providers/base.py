"""The execution-provider interface.

A provider states what it can run (:meth:`ExecutionProvider.capability`), turns a subgraph into
something runnable (:meth:`ExecutionProvider.compile`), and moves tensors between the host and
its device. The session's partitioner asks providers in the user's order; the first to claim a
node keeps it, a failed compile hands the nodes to the next provider in the chain.

Writing a provider: subclass :class:`ExecutionProvider`, set ``name``/``ort_name``/``device``,
declare options in ``option_specs``, implement ``capability`` and ``compile``. Register it
under the ``ferry.providers`` entry-point group (``name = "pkg.module:Class"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from runtime import ir
from runtime.errors import ProviderOptionError, suggest


@dataclass
class OptionSpec:
    """One provider option: its type, default, allowed values and a line of documentation.

    Values arrive as strings from ORT-style dicts as often as typed; ``parse`` converts.
    """

    kind: type | str  # int, float, bool, str, or "list" (comma-separated strings)
    default: Any = None
    choices: tuple | None = None
    doc: str = ""
    validate: Callable[[Any], str | None] | None = None  # returns an error message or None

    def parse(self, provider: str, name: str, value: Any) -> Any:
        try:
            if self.kind is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(value)
                    value = low in ("1", "true", "yes", "on")
                else:
                    value = bool(value)
            elif self.kind is int:
                if isinstance(value, bool):
                    raise ValueError(value)
                value = int(value)
            elif self.kind is float:
                value = float(value)
            elif self.kind == "list":
                if isinstance(value, str):
                    value = [v.strip() for v in value.split(",") if v.strip()]
                else:
                    value = [str(v) for v in value]
            elif self.kind is str:
                value = str(value)
        except (TypeError, ValueError):
            raise ProviderOptionError(
                f"provider '{provider}': option '{name}' expects {self._kind_name()}, "
                f"got {value!r}") from None
        if self.choices is not None:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if item not in self.choices:
                    raise ProviderOptionError(
                        f"provider '{provider}': option '{name}' = {item!r} is not valid; "
                        f"choose one of {', '.join(map(str, self.choices))}"
                        f"{suggest(item, self.choices)}")
        if self.validate is not None:
            err = self.validate(value)
            if err:
                raise ProviderOptionError(f"provider '{provider}': option '{name}': {err}")
        return value

    def _kind_name(self) -> str:
        return self.kind if isinstance(self.kind, str) else self.kind.__name__


# Options every provider accepts (the partitioner applies them).
GENERIC_OPTIONS: dict[str, OptionSpec] = {
    "min_subgraph_size": OptionSpec(
        int, 1, doc="partitions with fewer nodes go to the next provider in the chain",
        validate=lambda v: None if v >= 1 else "must be >= 1"),
    "exclude_ops": OptionSpec(
        "list", [], doc="op types (or domain::op) this provider must not take"),
}


@dataclass
class Capability:
    """What a provider can run among the nodes offered to it.

    ``claimed``: the nodes it takes. ``reasons``: for each node it does not take, why not (one
    line, shown by ``session.explain()``)."""

    claimed: set = field(default_factory=set)
    reasons: dict = field(default_factory=dict)


class StaleRunner(Exception):
    """Raised by a :class:`DirectRunner` whose plan its partition no longer keeps."""


@dataclass
class DirectRunner:
    """One of a partition's compiled runs, reachable in one call: ``run(values)`` takes the
    values of ``input_names`` in that order and returns those of ``output_names`` in theirs.
    It raises :class:`StaleRunner` once the partition has dropped what it runs."""

    input_names: list[str]
    output_names: list[str]
    run: Callable[[list], list]


class CompiledPartition:
    """A subgraph compiled by a provider. ``inputs``/``outputs`` are value names at the
    partition's boundary; :meth:`run` maps input values (on this provider's device) to output
    values (on this provider's device)."""

    provider: "ExecutionProvider"
    inputs: list[str]
    outputs: list[str]

    def run(self, feeds: dict[str, Any], run_state: Any) -> dict[str, Any]:
        """Run once. ``run_state`` carries the run's options (terminate flag, profiler)."""
        raise NotImplementedError("need run")

    def direct_runner(self, feeds: dict[str, Any]) -> DirectRunner | None:
        """What :meth:`run` does for feeds of this signature (names, shapes, dtypes; host
        arrays) without run options or a profiler, as one call that skips run's per-call
        lookups: a session sends repeated requests of a model held by one partition straight
        to it. None (the default) when there is no such shortcut."""
        return None

    def explain(self) -> dict[str, Any]:
        """Provider-specific facts about this partition (kernels used, memory plan...)."""
        return {}

    def memory_stats(self) -> dict[str, int]:
        """Bytes this partition holds: ``planned_bytes``, ``reserved_bytes``, ``peak_bytes``
        (providers without an arena of their own report nothing)."""
        return {}

    def release_memory(self) -> int:
        """Give back memory held between runs (arenas, pools); returns the bytes freed."""
        return 0


class ExecutionProvider:
    """Base class of every execution provider."""

    #: short name used in ``providers=[...]`` ("cpu", "cuda", ...)
    name: str = ""
    #: onnxruntime's name for the equivalent provider ("CPUExecutionProvider", ...)
    ort_name: str = ""
    #: where its tensors live: "cpu" (host) or "cuda:0"...
    device: str = "cpu"
    #: provider-specific options; GENERIC_OPTIONS are added automatically
    option_specs: dict[str, OptionSpec] = {}

    def __init__(self, options: dict[str, Any] | None = None, session_options: Any = None):
        self.session_options = session_options
        self.options = self.parse_options(options or {})

    # --- options -------------------------------------------------------------------------
    @classmethod
    def all_option_specs(cls) -> dict[str, OptionSpec]:
        specs = dict(GENERIC_OPTIONS)
        specs.update(cls.option_specs)
        return specs

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Validate user options; unknown names and bad values raise ProviderOptionError."""
        if not isinstance(options, dict):
            raise ProviderOptionError(
                f"provider '{cls.name}': options must be a dict, got {type(options).__name__}")
        specs = cls.all_option_specs()
        parsed = {k: spec.default for k, spec in specs.items()}
        for key, value in options.items():
            if key not in specs:
                raise ProviderOptionError(
                    f"provider '{cls.name}' has no option '{key}'{suggest(key, specs)}; "
                    f"valid options: {', '.join(sorted(specs))}")
            parsed[key] = specs[key].parse(cls.name, key, value)
        return parsed

    # --- availability --------------------------------------------------------------------
    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """(True, "") when usable on this machine, else (False, the reason)."""
        return True, ""

    # --- the work ------------------------------------------------------------------------
    def capability(self, graph: ir.Graph, nodes: Iterable[ir.Node]) -> Capability:
        """Which of ``nodes`` (nodes of ``graph`` not yet taken) this provider can run."""
        raise NotImplementedError("need capability")

    def compile(self, subgraph: ir.Graph, context: "CompileContext") -> CompiledPartition:
        """Turn a subgraph into a runnable partition. May raise: the session then hands the
        subgraph's nodes to the next provider in the chain and logs the reason."""
        raise NotImplementedError("need compile")

    # --- tensors across the boundary -----------------------------------------------------
    def to_device(self, value: Any) -> Any:
        """Host value -> this provider's device. The host providers return it unchanged."""
        return value

    def to_host(self, value: Any) -> Any:
        """This provider's device value -> host (numpy)."""
        return value

    def is_on_device(self, value: Any) -> bool:
        """Whether ``value`` already lives on this provider's device."""
        return self.device == "cpu"

    def provider_options_for_report(self) -> dict[str, str]:
        """Options as ORT's get_provider_options() shows them: strings."""
        out = {}
        for k, v in self.options.items():
            out[k] = ",".join(v) if isinstance(v, list) else str(v)
        return out

    def close(self) -> None:
        """Release resources (device memory, compiled engines)."""


@dataclass
class CompileContext:
    """What a provider's compile step may use besides the subgraph."""

    session_options: Any
    opsets: dict[str, int]
    # Names of the subgraph's inputs that are constant initializers of the model (weights).
    constant_names: set[str] = field(default_factory=set)
    # Initializers that a run may override (graph inputs with a default value).
    overridable: set[str] = field(default_factory=set)
    model_path: str | None = None
    # Declared input shape ranges (SessionOptions.set_input_shape_range): input name ->
    # runtime.options.ShapeRange; compiled providers size their engines from them.
    input_shape_ranges: dict = field(default_factory=dict)
