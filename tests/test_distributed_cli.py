"""The distributed backends through the command line: check and run over world sizes, failures recorded."""

from __future__ import annotations

import json
import os

from helpers import plugin, run_console


def _records(path):
    return json.loads(path.read_text())["records"]


def test_check_of_a_vocab_parallel_builtin_passes_at_world_sizes_2_and_4(tmp_path):
    out = tmp_path / "c.json"
    proc = run_console("check", "--backend", "vocab-parallel-fused", "--dtype", "float32", "--world-size", "2",
                       "--world-size", "4", "--case", "ce_ignore_index", "--case", "masked_prefix", "--case", "vocab_50257",
                       "--out", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    sharded = [r for r in _records(out) if r.get("world_size")]
    assert {r["world_size"] for r in sharded} == {2, 4}
    assert {r["op"] for r in sharded} >= {"softmax", "log_softmax", "cross_entropy", "ce_grad"}
    assert all(r["passed"] is True and r["max_ulp"] is not None for r in sharded)
    assert "vocab-parallel-fused x4" in proc.stdout


def test_the_planted_flawed_plugin_makes_check_exit_1_naming_the_case(tmp_path):
    proc = run_console("check", "--plugin", plugin("vocab_parallel_flawed"), "--backend", "vocab-parallel-flawed",
                       "--dtype", "float32", "--case", "randn_scale_1", "--out", tmp_path / "f.json")
    assert proc.returncode == 1
    assert any(line.startswith("FAIL vocab-parallel-flawed x2 cpu float32 randn_scale_1 softmax:")
               for line in proc.stdout.splitlines()), proc.stdout[-3000:]


def _spawned_processes() -> set[int]:
    """Live processes started by multiprocessing's spawn (the command's workers and ranks), by pid."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    cmdline = handle.read()
                with open(f"/proc/{entry}/stat") as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if b"multiprocessing" in cmdline and state != "Z":
                found.add(int(entry))
    return found


def test_run_records_world_size_and_communication_and_a_killed_rank_is_a_failure(tmp_path):
    out = tmp_path / "r.json"
    before = _spawned_processes()
    proc = run_console("run", "--plugin", plugin("vocab_parallel_faults"), "--backend", "vocab-parallel-killed",
                       "--backend", "vocab-parallel-fused", "--world-size", "2", "--sizes", "8x4096", "--mode", "warm",
                       "--op", "softmax", "--op", "cross_entropy", "--pass", "fwd", "--pass", "full", "--quick", "--no-check",
                       "--timeout", "60", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [r for r in _records(out) if r.get("world_size") == 2]
    fused = {r["op"]: r for r in records if r["backend"] == "vocab-parallel-fused" and r["pass"] == "full"}
    assert fused["cross_entropy"]["median_s"] > 0 and fused["cross_entropy"]["collectives"] == 2
    assert fused["cross_entropy"]["comm_bytes"] > 0
    killed = [r for r in records if r["backend"] == "vocab-parallel-killed"]
    assert len(killed) == 1 and all(r["failure"] in ("crashed", "timeout") and "rank 1" in r["reason"] for r in killed)
    assert _spawned_processes() - before == set()  # the command's workers and ranks went with it
    # Distributed backends run sharded only: nothing single-process was timed for them.
    assert not [r for r in _records(out) if r["backend"].startswith("vocab-parallel") and not r.get("world_size")]


def test_run_times_a_distributed_backend_warm_and_cold_and_announces_every_unit(tmp_path):
    """Both modes by default, as for any backend; the count said before timing is the count timed."""
    out = tmp_path / "m.json"
    proc = run_console("run", "--backend", "vocab-parallel-fused", "--world-size", "2", "--sizes", "8x1024",
                       "--op", "softmax", "--pass", "fwd", "--quick", "--no-check", "--timeout", "60", "--out", out,
                       env={"SOFTMAX_BENCH_LLC_BYTES": str(64 * 1024)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "timing 2 units (2 distributed, world size 2): 1 targets x 1 sizes x 2 modes x 1 op/pass pairs" in proc.stderr
    records = {r["mode"]: r for r in _records(out) if r.get("kind") == "timing"}
    assert sorted(records) == ["cold", "warm"]
    assert all(r["world_size"] == 2 and r["median_s"] > 0 and not r.get("failure") for r in records.values())
    # 16 KiB per rank's shard: 8 copies exceed twice the 64 KiB "cache".
    assert records["warm"]["buffers"] == 1 and records["cold"]["buffers"] == 8
