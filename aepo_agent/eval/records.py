"""Per-sample records: one JSONL per benchmark, each line fsynced as soon as its sample is scored, and the
identity file that refuses a rerun with other settings into the same directory.

A kill -9 can leave at most a torn last line; it is cut off when the file is opened again, so the samples
lost are those in flight. A later line for the same (task, run) supersedes an earlier one (``retry_errors``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

IDENTITY_FILE = "eval_config.json"

SampleKey = tuple[str, int]


class EvalConfigMismatch(ValueError):
    """An output directory holds an evaluation with another model, benchmarks, settings or judge."""


def check_identity(output_dir: Path, identity: dict[str, Any]) -> None:
    """Write ``identity`` into a fresh ``output_dir``, or check that it is the one already there."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / IDENTITY_FILE
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))["identity"]
        if stored != identity:
            diff = _diff(stored, identity)
            raise EvalConfigMismatch(
                f"{output_dir} holds an evaluation with other settings ({'; '.join(diff)}). Rerun with the same "
                "model, envs, settings and judge to resume it, or pass another --output for a new evaluation."
            )
        return
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"identity": identity}, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _diff(old: Any, new: Any, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
        return out
    return [] if old == new else [f"{where or 'identity'}: stored {old!r}, now {new!r}"]


class RecordStore:
    """The records of one benchmark, in memory and (with a path) appended to a JSONL file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.records: dict[SampleKey, dict[str, Any]] = {}
        if path is not None and path.is_file():
            self._load(path)

    def _load(self, path: Path) -> None:
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):  # a torn last line from a kill during its write: drop it
            with path.open("r+b") as fh:
                fh.truncate(cut)
                os.fsync(fh.fileno())
        for line in data[:cut].decode("utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                self.records[(rec["task_id"], int(rec["run"]))] = rec

    def __contains__(self, key: SampleKey) -> bool:
        return key in self.records

    def done(self, key: SampleKey, *, retry_errors: bool = False) -> bool:
        """Whether ``key`` has a record (one that ended on an engine error counts only without ``retry_errors``)."""
        rec = self.records.get(key)
        return rec is not None and not (retry_errors and rec.get("error"))

    def append(self, record: dict[str, Any]) -> None:
        """Keep ``record`` and, with a file, append it as one line, flushed and fsynced before returning."""
        self.records[(record["task_id"], int(record["run"]))] = record
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
