"""The modules follow the pipeline, each layer importing only from layers below it:
op table → programs drawn → engine and references run → verdict → reduce, blame,
save → campaign records → report. Read from the source, imports inside functions
included; the reports that render (stats, summary, plots, comparison) import no
engine, oracle backend or checker: they show what was recorded, nothing else."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"mflow": "mflow", "oracles": "mflow.oracles", "strategies": "mflow.strategies",
           "reports": "mflow.reports"}
LAYERS = [
    ["mflow", "mflow.shapes", "mflow.rule_ops", "mflow.ops", "mflow.node", "mflow.forward",
     "mflow.gradients", "mflow.functions", "mflow.nn"],
    # (files: the one bounded reader and writer, the standard library's alone: below
    # everything that reads or writes, the JAX interpreters' cache included)
    ["mflow.reports.files", "mflow.reports",
     "mflow.oracles", "mflow.oracles.catalogue", "mflow.oracles.program",
     "mflow.oracles.numpy_backend", "mflow.oracles.verdict", "mflow.strategies.domains",
     "mflow.oracles.points", "mflow.oracles.world"],
    ["mflow.strategies", "mflow.strategies.graphs"],
    ["mflow.oracles.engine", "mflow.oracles.torch_backend", "mflow.oracles.jax_backend",
     "mflow.oracles.finite_differences"],
    ["mflow.oracles.tolerance", "mflow.oracles.modes", "mflow.oracles.checker",
     "mflow.oracles.kinks"],
    ["mflow.oracles.local", "mflow.reports.reduce",
     "mflow.reports.regressions", "mflow.reports.inflight"],
    ["mflow.reports.stats", "mflow.reports.records"],
    ["mflow.reports.summary", "mflow.reports.plots", "mflow.reports.comparison"],
    ["mflow.reports.campaign", "mflow.reports.merge", "mflow.reports.saving",
     "mflow.reports.profiles", "mflow.reports.sequence", "mflow.reports.search"],
    ["mflow.reports.plugin", "mflow.reports.fuzzing", "mflow.reports.gate",
     "mflow.reports.sessions",
     "mflow.reports.__main__", "mflow.__main__"],
]
LAYER = {m: i for i, names in enumerate(LAYERS) for m in names}
RENDER_ONLY = ["mflow.reports.stats", "mflow.reports.records", "mflow.reports.summary",
               "mflow.reports.plots", "mflow.reports.comparison", "mflow.reports.merge"]
RUNS_SOMETHING = {"mflow.oracles.engine", "mflow.oracles.torch_backend",
                  "mflow.oracles.jax_backend", "mflow.oracles.finite_differences",
                  "mflow.oracles.checker", "mflow.oracles.kinks", "mflow.oracles.local",
                  "mflow.oracles.tolerance", "mflow.oracles.modes"}


def imports():
    graph = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            deps = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = package.split(".")[:len(package.split(".")) - node.level + 1]
                        module = ".".join(base + ([node.module] if node.module else []))
                        deps |= ({f"{module}.{a.name}" for a in node.names} if not node.module
                                 else {module})
                    elif (node.module or "").startswith("mflow"):
                        deps.add(node.module)
                elif isinstance(node, ast.Import):
                    deps |= {a.name for a in node.names if a.name.startswith("mflow")}
            graph[name] = {d for d in deps if d in LAYER and d != name}
    return graph


def test_every_module_has_a_layer():
    assert set(imports()) == set(LAYER)


def test_no_module_imports_from_a_higher_layer():
    upward = [(m, d) for m, deps in imports().items() for d in deps if LAYER[d] > LAYER[m]]
    assert not upward, upward


def test_the_reports_that_render_run_nothing():
    graph = imports()
    for module in RENDER_ONLY:
        seen, todo = set(), [module]
        while todo:  # everything it reaches, directly or not
            for d in graph[todo.pop()] - seen:
                seen.add(d)
                todo.append(d)
        assert not seen & RUNS_SOMETHING, (module, sorted(seen & RUNS_SOMETHING))


def test_the_engine_has_no_import_circle():
    """mflow/ in layers: the graph core (node.py) imports no operation table, rules
    receive the namespace they run on, and no module of the engine reaches itself
    again through its imports (imports inside functions included)."""
    graph = {m: {d for d in deps if d.startswith("mflow.") and d.count(".") == 1}
             for m, deps in imports().items() if m.startswith("mflow.") and m.count(".") == 1}
    assert "mflow.ops" not in graph["mflow.node"] and "mflow.functions" not in graph["mflow.node"]
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            assert m != start, f"{start} imports itself again through {sorted(seen)}"
            if m not in seen:
                seen.add(m)
                todo += graph.get(m, ())
