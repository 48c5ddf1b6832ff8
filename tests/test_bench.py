import json

from worldgen.cli import main


def test_bench_reports_every_figure(tiny_world, tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--world", str(tiny_world), "--batches", "1", "3", "--num-envs", "1", "2", "--seconds", "0.05",
            "--json", str(out)]  # the teacher: the world's own
    assert main(args) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["batch1_2step_fps"] > 0 and set(run["vector_env"]) == {"1", "2"}
    assert set(run["throughput"]) == {"1 step", "2 steps", "teacher 8 steps", "teacher 32 steps"}
    assert set(run["throughput"]["2 steps"]) == {"1", "3"} and set(run["throughput"]["teacher 32 steps"]) == {"1", "16"}
    calls = run["model_call_ms"]
    assert {"network", "decode", "reward head", "consistency_1step", "consistency_2step", "teacher_8step", "teacher_32step"} <= set(calls)
    assert calls["teacher_32step"] > calls["teacher_8step"] > calls["consistency_2step"] > calls["consistency_1step"]
    printed = capsys.readouterr().out
    assert "throughput, 2 steps, batch 3" in printed and "vector env, 2 envs" in printed
