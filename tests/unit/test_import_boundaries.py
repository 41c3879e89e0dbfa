"""The import direction is the architecture (docs: DESIGN.md, "The parts"); these tests hold every module to it.

Two checks: a static scan of every import statement in every module, those inside functions
included (they hide a dependency from a reader, not from this scan), and a real import of
``annotator_core`` with ray, bentoml and the web framework blocked.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("annotator_core", "pipelines", "serving", "va_cli")
WEB = ("fastapi", "starlette", "uvicorn")

# folder -> (module prefixes it must never import, why)
FORBIDDEN: dict[str, tuple[tuple[str, ...], str]] = {
    "annotator_core": (
        ("pipelines", "serving", "va_cli", "ray", "bentoml", *WEB),
        "the library imports none of the adapters, Ray, BentoML or the web framework",
    ),
    "pipelines": (("serving", "va_cli", "bentoml", *WEB), "Ray jobs import only annotator_core and ray"),
    "serving/scoring": (
        ("pipelines", "serving.annotation", "va_cli"),
        "the scoring service imports neither the Ray jobs nor the other service",
    ),
    "serving/annotation": (
        ("pipelines", "serving.scoring", "va_cli"),
        "the annotation service imports neither the Ray jobs nor the other service",
    ),
}


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # the absolute module imported
    names: tuple[str, ...]  # names taken from it by `from module import ...`


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str | None = None) -> list[Import]:
    """Every import in ``path`` (the module ``module``), at any depth, with relative imports made absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = (module or module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append(Import(path, node.lineno, base, tuple(alias.name for alias in node.names)))
    return found


def python_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "migrations/versions" not in p.as_posix())


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_scan_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    # The scanner itself must not be blind: a function-level and a relative import are both found.
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from serving.scoring import models\n\nfrom .catalog import title_of\n")
    found = {(i.module, i.names) for i in imports_of(probe, "pipelines.probe")}
    assert ("serving.scoring", ("models",)) in found
    assert ("pipelines.catalog", ("title_of",)) in found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_layering(folder: str) -> None:
    forbidden, why = FORBIDDEN[folder]
    files = python_files(folder)
    assert files, f"no modules under {folder}"
    wrong = [
        f"{i.path.relative_to(ROOT)}:{i.line} imports {i.module}"
        for path in files
        for i in imports_of(path)
        if any(under(i.module, prefix) for prefix in forbidden)
        or any(under(f"{i.module}.{name}", prefix) for name in i.names for prefix in forbidden)
    ]
    assert not wrong, f"{folder}: {why}; these imports break it:\n" + "\n".join(wrong)


def test_benchmarks_use_public_names_only() -> None:
    wrong = []
    for path in python_files("benchmarks"):
        for i in imports_of(path):
            if not any(under(i.module, p) for p in PROJECT):
                continue
            private = [part for part in i.module.split(".") if part.startswith("_")]
            private += [name for name in i.names if name.startswith("_")]
            if private:
                wrong.append(f"{path.relative_to(ROOT)}:{i.line} takes {private} from {i.module}")
    assert not wrong, "benchmarks measure what users can call; make the name public or use another:\n" + "\n".join(
        wrong
    )


BLOCKER = """
import sys
# A None entry in sys.modules makes `import x` fail and find_spec(x) report "not installed".
for name in ("ray", "bentoml", "fastapi", "starlette", "uvicorn"):
    sys.modules[name] = None
import pkgutil, importlib, annotator_core
for mod in pkgutil.walk_packages(annotator_core.__path__, "annotator_core."):
    if ".migrations" in mod.name:
        continue
    importlib.import_module(mod.name)
print("ok")
"""


def test_annotator_core_imports_with_ray_bentoml_and_web_frameworks_blocked() -> None:
    result = subprocess.run([sys.executable, "-c", BLOCKER], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_the_ingest_workers_stage_module_loads_neither_lancedb_nor_torch() -> None:
    # Ray workers import pipelines.stages to run a decode task or an embedding actor: the driver's LanceDB
    # (~1 s) and, for an encoder that is not a torch model, torch (~1.5 s) must not come with it.
    code = (
        "import sys; import pipelines.stages; from pipelines.stages import EmbedShots; EmbedShots('handcrafted', "
        "'cpu', 3); print(sorted(m for m in ('lancedb', 'lance', 'torch', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
