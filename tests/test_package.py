"""The package's shape: layers that point one way, and an inference API that does not pull in training."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import colorization

PACKAGE = Path(colorization.__file__).parent


def _imports(path: Path) -> set[str]:
    """Sibling modules a module imports anywhere in it (function-level imports too: they close circles as well)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("colorization."):
            found.add(node.module.split(".")[1])
    return found


def test_modules_import_each_other_without_a_circle():
    graph = {p.stem: _imports(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import circle: " + " -> ".join(path[path.index(module):] + (module,))
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, path + (module,))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_the_inference_api_does_not_import_training():
    script = ("import sys; from colorization import load_colorizer, Colorizer, evaluate; "
              "print(sorted(m for m in sys.modules if m.startswith(('colorization.', 'torch.distributed.elastic'))))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    for heavy in ("colorization.train", "colorization.gan", "colorization.data", "torch.distributed.elastic"):
        assert f"'{heavy}'" not in loaded, loaded


def test_the_app_uses_only_the_public_api():
    app = Path(colorization.__file__).parent.parent / "app.py"
    if not app.is_file():
        pytest.skip("an installed package without its app")
    from colorization import service, serving

    # The page may use the package's API and the serving layer written for it (colorization.serving and .service),
    # nothing else.
    public = {"colorization": set(colorization.__all__), "colorization.serving": set(serving.__all__),
              "colorization.service": set(service.__all__)}
    imports = [node for node in ast.walk(ast.parse(app.read_text())) if isinstance(node, ast.ImportFrom)
               and (node.module or "").startswith("colorization")]
    assert {node.module for node in imports} <= set(public), {node.module for node in imports}
    for node in imports:
        names = {alias.name for alias in node.names}
        assert names <= public[node.module], (node.module, names - public[node.module])
