"""The layering of docs/architecture.md, checked on the source: imports point down the layers,
no module is over 500 lines, and tomolearn modules are imported at module level only."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tomolearn"

#: Layer of each top-level part of the package (higher may import lower or equal, never higher).
LAYERS = {
    "files": 0, "metrics": 0, "phantoms": 0, "noise": 0, "resources": 0, "hardware": 0,
    "operators": 1, "registry": 2,
    "data": 3,
    "modalities": 4, "ct": 4,
    "solvers": 5, "uq": 5,
    "learned": 6,
    "weights": 7, "model_cards": 7, "learned_priors": 7,
    "train": 8, "studies": 8, "report": 8,
    "benchmarks": 9, "demo": 9,
    "cli": 10, "__main__": 10,
    "__init__": 11,  # the package facade re-exports from every layer
}
#: Imports allowed inside functions: optional or heavy third-party packages, kept lazy on purpose.
LAZY_OK = {"astra", "nibabel", "tensorboard", "matplotlib", "PIL", "pydicom", "tqdm", "skimage",
           "nilearn"}


def _modules():
    return sorted(p for p in SRC.rglob("*.py"))


def _part(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0][:-3] if len(rel.parts) == 1 else rel.parts[0]


def _target(path: Path, node: ast.ImportFrom) -> str:
    """The top-level tomolearn part a relative (or absolute) import names, or ''."""
    if node.level == 0:
        mod = node.module or ""
        return mod.split(".")[1] if mod.startswith("tomolearn.") else ""
    rel = path.relative_to(SRC).parts[:-1]
    base = list(rel[:len(rel) - (node.level - 1)]) if node.level - 1 <= len(rel) else []
    full = base + (node.module.split(".") if node.module else [])
    if not full:  # "from . import x" at the top level
        return node.names[0].name
    return full[0]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_and_are_at_module_level(path):
    tree = ast.parse(path.read_text())
    part = _part(path)
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _target(path, node)
            if target and target != part and target in LAYERS:
                assert LAYERS[target] <= LAYERS[part], \
                    f"{path.relative_to(SRC)} ({part}) imports {target}, a higher layer"
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top_level:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            for name in names:
                is_ours = isinstance(node, ast.ImportFrom) and (node.level > 0 or
                                                                 name.startswith("tomolearn"))
                where = f"{path.relative_to(SRC)}:{node.lineno} imports {name or '.'}"
                assert not is_ours, f"{where} inside a function (tomolearn imports are at the top)"
                # a third-party import in a function: a lazy heavy one, or an optional one in try:
                assert name.split(".")[0] in LAZY_OK or _inside_try(tree, node), \
                    f"{where} inside a function"


def _inside_try(tree, target) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(target is n for n in ast.walk(node)):
            return True
    return False


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= 500, f"{path.relative_to(SRC)} has {n} lines (the layout aims at one idea per module)"


def test_every_part_has_a_layer():
    parts = {_part(p) for p in _modules()}
    assert parts <= set(LAYERS), sorted(parts - set(LAYERS))
