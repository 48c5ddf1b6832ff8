import json

from worldgen.cli import main


def test_bench_reports_every_figure(tiny_world, tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--world", str(tiny_world), "--batches", "1", "3", "--num-envs", "1", "2", "--seconds", "0.05",
            "--teacher", str(tiny_world.parent / "teacher" / "export"), "--json", str(out)]
    assert main(args) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["batch1_2step_fps"] > 0 and set(run["batch"]) == {"1", "3"} and set(run["vector_env"]) == {"1", "2"}
    assert {"network", "decode", "consistency_1step", "consistency_2step", "teacher_8step", "teacher_32step"} <= set(run["model_call_ms"])
    printed = capsys.readouterr().out
    assert "throughput, batch 3" in printed and "vector env, 2 envs" in printed
