"""The package as users install it: declared dependencies, `python -m pathmoe`, configs from a wheel.

A checkout hides packaging mistakes (a module that happens to be installed, a config read from the
repository instead of the package), so these tests look at the installed form: the import graph
against pyproject.toml, and a wheel built and imported outside the checkout.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(files: list[Path]) -> dict[str, set[str]]:
    """Top-level module of every absolute import (module level or inside functions) -> files importing it."""
    found: dict[str, set[str]] = {}
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(f.relative_to(ROOT)))
    return found


def _requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def _undeclared(files: list[Path], declared: set[str], local: set[str]) -> dict[str, list[str]]:
    """Third-party imports of `files` whose distribution is not in `declared`."""
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for module, where in _imports(files).items():
        if module in sys.stdlib_module_names or module in local:
            continue
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & declared:
            missing[module] = sorted(where)
    return missing


def test_every_third_party_import_is_a_declared_dependency():
    """src/ imports only distributions in [project] dependencies or an extra (an optional feature);
    tests and benchmarks may add the `test` extra. A module installed here by accident fails this."""
    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the environment's)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    extras = set().union(*(_requirement_names(r) for r in project.get("optional-dependencies", {}).values()))
    src = sorted((ROOT / "src").rglob("*.py"))
    assert _undeclared(src, core | extras, {"pathmoe"}) == {}
    others = sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
    local = {"pathmoe"} | {p.stem for p in others}  # helper modules next to the tests
    test_extra = _requirement_names(project["optional-dependencies"]["test"])
    assert _undeclared(others, core | test_extra, local) == {}
    # the check sees imports inside functions too: pyarrow is imported only in a parquet reader
    assert "src/pathmoe/data/sources.py" in _imports(src)["pyarrow"] and "pyarrow" in core


def test_python_dash_m_pathmoe_is_the_cli(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-m", "pathmoe", "--version"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"pathmoe {importlib.metadata.version('pathmoe')}"
    out = subprocess.run([sys.executable, "-m", "pathmoe", "config", "validate", "nonexistent-config"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "config 'nonexistent-config' not found" in out.stderr
    assert "default" in out.stderr and "Traceback" not in out.stderr


def test_config_names_resolve_from_an_installed_wheel(tmp_path):
    """A wheel (no checkout, no editable install) carries the named configs; `find_config("default")`
    resolves to the installed copy and `python -m pathmoe config validate default` accepts it."""
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(ROOT / "pyproject.toml", tree)
    shutil.copy(ROOT / "README.md", tree)
    shutil.copytree(ROOT / "configs", tree / "configs", symlinks=True)
    shutil.copytree(ROOT / "src", tree / "src", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(tree)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("pathmoe-*.whl"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "pathmoe" / "configs" / "default.yaml").read_bytes() == (ROOT / "configs" / "default.yaml").read_bytes()

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import pathmoe.config as c; print(c.__file__); print(c.find_config('default'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=run_dir,
                         timeout=120, check=True)
    module, found = out.stdout.split()
    assert Path(module).is_relative_to(site) and Path(found) == (site / "pathmoe" / "configs" / "default.yaml").resolve()
    out = subprocess.run([sys.executable, "-m", "pathmoe", "config", "validate", "default"], capture_output=True,
                         text=True, env=env, cwd=run_dir, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("default: OK")
