"""The benchmark scripts that README and the bars name run to the end on a fresh clone."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_mixed_report_writes_json_into_a_new_folder(tmp_path):
    # bandwidth_report.py ends by running this with --json under bench/results/, which a fresh
    # clone does not have: the script must create the folder, not fail after minutes of timing.
    pytest.importorskip("ml_dtypes", reason="mixed_report.py measures bfloat16 (ml_dtypes)")
    out = tmp_path / "not" / "yet" / "mixed.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "mixed_report.py"),
            "--log2",
            "12",
            "--rounds",
            "1",
            "--json",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())
    names = {r["name"] for r in rows}
    assert {"fastadam f32 plain", "fastadam f32 clip+skip", "fastadam bf16 clip+skip"} <= names
    assert "f32 clip+skip step / plain step" in result.stdout
    assert "bf16 clip+skip step / plain step" in result.stdout
