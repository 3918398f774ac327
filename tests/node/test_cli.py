"""``sentiflow classify`` and ``sentiflow replay`` as a user runs them: the installed console
script in a subprocess (its own event loop and logging), on the embedded default model trained
once per session (``default_model_home``), with a store of its own per test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from sentiflow.stores.factory import open_result_store

pytestmark = [pytest.mark.slow, pytest.mark.data]

SEED_FIELDS = {"request_id", "sentiment", "confidence", "model_used", "aspects",
               "language_detected", "latency_ms"}


def sentiflow_command() -> list[str]:
    script = Path(sys.executable).with_name("sentiflow")
    if script.exists():
        return [str(script)]
    found = shutil.which("sentiflow")
    return [found] if found else [sys.executable, "-c", "from sentiflow.cli import main; main()"]


def run_cli(args: list[str], home: Path, results_db: Path,
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ,
           "SENTIFLOW_NODE__HOME": str(home),
           "SENTIFLOW_STORAGE__RESULTS_URL": f"sqlite:///{results_db}",
           "SENTIFLOW_TRENDS__ENABLED": "false"}
    env.pop("SENTIFLOW_CONFIG", None)
    return subprocess.run([*sentiflow_command(), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def stored_ids(results_db: Path, ids: list[str]) -> set[str]:
    async def main() -> set[str]:
        store = await open_result_store(f"sqlite:///{results_db}")
        try:
            return {i for i in ids if await store.get_result(i) is not None}
        finally:
            await store.close()
    return anyio.run(main)


def test_classify_prints_one_seed_result_per_text(default_model_home: Path,
                                                  tmp_path: Path) -> None:
    texts = ["I absolutely love this phone, best purchase I have ever made!",
             "Horrible, el peor servicio que he tenido. Nunca más."]
    done = run_cli(["classify", *texts], default_model_home, tmp_path / "r.db")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 2, done.stdout
    for line in lines:
        assert set(line) == SEED_FIELDS
        assert line["model_used"].startswith("sentiflow-linear")
        assert 0.0 <= line["confidence"] <= 1.0
    assert [(x["language_detected"], x["sentiment"]) for x in lines] == [
        ("en", "positive"), ("es", "negative")]


def test_classify_refuses_junk_text_with_the_reason(default_model_home: Path,
                                                    tmp_path: Path) -> None:
    done = run_cli(["classify", "\x01\x02\x03\x04 junk"], default_model_home, tmp_path / "r.db")
    assert done.returncode == 2
    assert "(invalid_encoding)" in done.stderr
    assert done.stdout == ""


def write_jsonl(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_replay_jsonl_counts_every_line_and_reports_the_bad_ones(
        default_model_home: Path, tmp_path: Path) -> None:
    good = [{"text": "I love this, it is great", "request_id": "g-1"},
            {"text": "Das Essen war wirklich schlecht und kalt", "request_id": "g-2",
             "source": "reviews"},
            {"text": "質が悪すぎる、二度と買わない", "request_id": "g-3"}]
    lines = [json.dumps(g).encode() for g in good]
    lines += [b"{not json",                                            # line 4
              json.dumps({"language": "en"}).encode(),                 # line 5: no text
              json.dumps({"text": "\x01\x02\x03\x04\x05"}).encode(),  # line 6: junk
              b"",                                                     # blank: skipped
              b'{"text": "caf\xe9 latin-1 byte, not UTF-8 \xff\xfe"}',  # line 8
              b"[" * 3000]                                             # line 9: too deep
    posts = tmp_path / "posts.jsonl"
    write_jsonl(posts, lines)
    summary_file = tmp_path / "summary.json"
    done = run_cli(["replay", str(posts), "--json-out", str(summary_file)], default_model_home,
                   tmp_path / "r.db")
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(summary_file.read_text())
    assert json.loads(done.stdout[done.stdout.index("{"):]) == summary
    assert (summary["read"], summary["classified"], summary["dead_lettered"],
            summary["failed"]) == (8, 3, 5, 0)
    assert sum(summary["sentiments"].values()) == 3
    assert sum(summary["languages"].values()) == 3
    dead_file = Path(summary["dead_letter_file"])
    assert dead_file == tmp_path / "posts.jsonl.deadletter.jsonl"
    dead = [json.loads(line) for line in dead_file.read_text(encoding="utf-8").splitlines()]
    assert [d["line"] for d in dead] == [4, 5, 6, 8, 9]
    by_line = {d["line"]: d for d in dead}
    assert by_line[4]["error"].startswith("invalid JSON")
    assert "text: Field required" in by_line[5]["error"]
    assert "(invalid_encoding)" in by_line[6]["error"]
    assert "(invalid_encoding)" in by_line[8]["error"]
    # the raw line survives exactly: its undecodable bytes as \udcXX escapes
    assert by_line[8]["raw"].encode("utf-8", "surrogateescape") == lines[7]
    assert by_line[9]["error"].startswith("invalid JSON")
    assert stored_ids(tmp_path / "r.db", ["g-1", "g-2", "g-3"]) == {"g-1", "g-2", "g-3"}


def test_replay_csv_counts_and_reports_bad_rows(default_model_home: Path,
                                                tmp_path: Path) -> None:
    posts = tmp_path / "posts.csv"
    posts.write_text(
        "request_id,text,language\n"
        "c-1,\"Great hotel, friendly staff, would stay again\",en\n"
        "c-2,,en\n"                                   # empty text: dead letter
        "c-3,\"Le service était horrible, très déçu\",auto\n"
        "c-4,\"\x01\x02\x03\x04\x05\x06\",en\n"      # control characters
        "c-5,\"fine\",english\n",                     # bad language code
        encoding="utf-8")
    done = run_cli(["replay", str(posts)], default_model_home, tmp_path / "r.db")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert (summary["read"], summary["classified"], summary["dead_lettered"],
            summary["failed"]) == (5, 2, 3, 0)
    dead = [json.loads(line) for line in
            Path(summary["dead_letter_file"]).read_text(encoding="utf-8").splitlines()]
    assert [d["line"] for d in dead] == [3, 5, 6]
    assert "text: Field required" in dead[0]["error"]
    assert "(invalid_encoding)" in dead[1]["error"]
    assert "language:" in dead[2]["error"]
    assert dead[2]["raw"] == "c-5,fine,english"
    assert stored_ids(tmp_path / "r.db", ["c-1", "c-3", "c-5"]) == {"c-1", "c-3"}


def test_replay_of_a_missing_file_fails_with_a_usage_error(default_model_home: Path,
                                                           tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    done = run_cli(["replay", str(missing)], default_model_home, tmp_path / "r.db")
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert not (tmp_path / "nope.jsonl.deadletter.jsonl").exists()
    assert not (tmp_path / "r.db").exists()  # no node was started


def count_results(results_db: Path) -> int:
    import sqlite3

    with sqlite3.connect(results_db) as db:
        return int(db.execute("SELECT count(*) FROM results").fetchone()[0])


def test_replaying_a_file_twice_stores_each_post_once(default_model_home: Path,
                                                      tmp_path: Path) -> None:
    posts = tmp_path / "posts.jsonl"
    posts.write_text("\n".join(json.dumps({"text": t}) for t in (
        "Loved every minute of it", "Never again, awful service", "Arrived on Tuesday")) + "\n",
        encoding="utf-8")
    for _ in range(2):
        done = run_cli(["replay", str(posts)], default_model_home, tmp_path / "r.db")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout[done.stdout.index("{"):])["classified"] == 3
    assert count_results(tmp_path / "r.db") == 3  # ids are "line N of this file"
