"""The import layers of scripts/envfile and scripts/verify, read from the source with `ast`.

A module may import its own layer or a lower one, never a higher one, and no imports may go in a
circle: a cycle once hid behind a TYPE_CHECKING guard (results -> context -> envfile -> results).
scripts/envfile imports only the standard library, because `make init` runs it before any
virtualenv exists. Function-local imports count too: deferring an import hides no dependency.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.native_stack.paths import REPO

pytestmark = pytest.mark.lint  # run by `make lint` (and so once per `make test`)

PACKAGES = ("scripts.envfile", "scripts.verify")

# Lowest first. A module is in the layer of its longest matching prefix.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("envfile: the .env file, standard library only", ("scripts.envfile",)),
    ("vocabulary: results and their severity", ("scripts.verify.results",)),
    (
        "context and helpers",
        (
            "scripts.verify.context",
            "scripts.verify.hop",
            "scripts.verify.prom",
            "scripts.verify.httpcheck",
            "scripts.verify.polling",
            "scripts.verify.compose",
            "scripts.verify.hook_health",
        ),
    ),
    ("hops", ("scripts.verify.hops",)),
    (
        "runner, renderers and command line",
        (
            "scripts.verify",
            "scripts.verify.runner",
            "scripts.verify.render",
            "scripts.verify.__main__",
        ),
    ),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package.replace(".", "/")).rglob("*.py")):
            found[module_name(path)] = path
    return found


MODULES = modules()


def imported(name: str, path: Path) -> Iterator[str]:
    """Absolute names of everything the module imports (submodules resolved when known)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in MODULES else target


def layer_of(name: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), index)
    return None if best is None else best[1]


def internal_edges() -> dict[str, set[str]]:
    return {
        name: {target for target in imported(name, path) if target in MODULES}
        for name, path in MODULES.items()
    }


def test_every_module_has_a_layer() -> None:
    assert MODULES, "no modules found"
    assert [name for name in MODULES if layer_of(name) is None] == []


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for name, targets in internal_edges().items():
        for target in targets:
            low, high = layer_of(name), layer_of(target)
            assert low is not None and high is not None
            if high > low:
                upward.append(f"{name} ({LAYERS[low][0]}) imports {target} ({LAYERS[high][0]})")
    assert upward == []


def test_no_import_cycles() -> None:
    edges = internal_edges()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        for target in sorted(edges[name]):
            if cycle := visit(target, [*path, name]):
                return cycle
        done.add(name)
        return None

    for name in sorted(edges):
        cycle = visit(name, [])
        assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("scripts.envfile")])
def test_envfile_imports_only_the_standard_library(name: str) -> None:
    foreign = sorted(
        target
        for target in imported(name, MODULES[name])
        if target.split(".")[0] not in sys.stdlib_module_names
        and not target.startswith("scripts.envfile")
        and target != "__future__"
    )
    assert foreign == []


def test_span_contract_needs_only_the_standard_library_and_the_hook() -> None:
    """Every script imports scripts.span_contract: a leaf that must not pull in the test harness
    (scripts/native_stack) or any other package of the repository."""
    foreign = sorted(
        target
        for target in imported("scripts.span_contract", REPO / "scripts" / "span_contract.py")
        if target.split(".")[0] not in sys.stdlib_module_names and target != "llm_otel"
    )
    assert foreign == []


def test_the_layer_test_sees_imports() -> None:
    """Guards the walker itself: a known upward-free edge and a known internal edge are found."""
    edges = internal_edges()
    assert "scripts.verify.results" in edges["scripts.verify.hop"]
    assert "scripts.envfile.parser" in edges["scripts.verify.context"]
    assert "scripts.verify.hops.collector" in edges["scripts.verify.hops"]
