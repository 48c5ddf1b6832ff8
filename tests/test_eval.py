import gymnasium as gym
import numpy as np
import torch

from envs.platformer import ExplorerPolicy, detect_objects
from envs.platformer import palette as P
from worldgen.eval import Method, RolloutResult, _object_fidelity, compare, held_out_seeds, record_references
from worldgen.frames import psnr


def refs(n=2, steps=60):
    make = lambda: gym.make("worldgen/Platformer-v0")  # noqa: E731
    return record_references(make, ExplorerPolicy(seed=0), list(range(500, 500 + n)), steps)


def empty_result():
    nan = float("nan")
    return RolloutResult(np.zeros(1), nan, nan, nan, nan, nan)


def test_references_are_real_play_with_ground_truth():
    (ref,) = refs(1)
    assert ref.frames.shape[0] == len(ref.actions) + 1 == ref.player.shape[0]
    env = gym.make("worldgen/Platformer-v0")
    obs, _ = env.reset(seed=ref.seed)
    assert np.array_equal(obs, ref.frames[0])
    for t, a in enumerate(ref.actions[:20]):
        obs, *_ = env.step(a)
        assert np.array_equal(obs, ref.frames[t + 1])


def test_object_fidelity_is_perfect_on_the_real_frames_and_zero_on_empty_ones():
    (ref,) = refs(1)
    real = ref.frames[None, 10:42]
    r = empty_result()
    _object_fidelity(r, real, real, ref.player[None, 10:42], detect_objects, 3.0, 16.0)
    assert r.player_error < 1.0 and r.player_found == 1.0 and r.invented == 0
    assert np.isnan(r.coins_kept) or r.coins_kept == 1.0
    sky = np.broadcast_to(np.array(P.SKY, dtype=np.uint8), real.shape).copy()
    _object_fidelity(r, sky, real, ref.player[None, 10:42], detect_objects, 3.0, 16.0)
    assert r.player_found == 0.0 and r.player_error == 16.0


class _CopyCodec:
    """Latents are the frames themselves, so a method's quality is the dynamics alone."""

    device = torch.device("cpu")

    def encode(self, frames):
        return torch.from_numpy(frames.astype(np.float32)).permute(0, 3, 1, 2) / 255.0

    def decode(self, latents):
        return (latents.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


class _ZeroNet(torch.nn.Module):
    """F = 0: the consistency sampler then returns cos(t_max) times the noise, a near-black frame."""

    def forward(self, x, t, context, actions, level):
        return torch.zeros_like(x)


def test_compare_scores_every_method_against_the_same_reality():
    rs = refs(2, 50)
    methods = [Method("repeat", None), Method("zero", _ZeroNet(), "consistency", 1)]
    rows = compare(methods, rs, _CopyCodec(), k=4, horizon=8, context_noise=0.0, detect=detect_objects)
    by = {r["method"]: r for r in rows}
    expected = float(np.mean([psnr(r.frames[t - 1], r.frames[t]) for r in rs for t in range(1, len(r.frames), 4)]))
    assert abs(by["repeat"]["next_psnr"] - expected) < 1e-6
    assert by["repeat"]["next_psnr"] > by["zero"]["next_psnr"] + 10
    assert len(by["zero"]["rollout_psnr_curve"]) == 8
    assert by["zero"]["player_found"] == 0.0


def test_held_out_seeds_skip_training_levels():
    assert held_out_seeds(3, {1_000_000, 1_000_002}) == [1_000_001, 1_000_003, 1_000_004]
