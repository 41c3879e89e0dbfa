"""The import direction is the architecture: annotator_core never imports ray, bentoml or a web framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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
