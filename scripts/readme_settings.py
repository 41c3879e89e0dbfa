"""Rewrite the settings table in README.md from the code (`va status --settings --markdown`)."""

import subprocess
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
table = subprocess.run(
    [sys.executable, "-m", "va_cli.main", "status", "--settings", "--markdown"],
    cwd=root,
    capture_output=True,
    text=True,
    check=True,
).stdout.strip()
readme = root / "README.md"
text = readme.read_text()
start = text.index("| setting | default | what it does |")
end = text.index("\n\n", start)
readme.write_text(text[:start] + table + text[end:])
