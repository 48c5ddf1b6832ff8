"""Content over long play: the Platformer's measures, and the eval section that compares a
world's content with the real game's per horizon bin."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from envs.platformer import KIT, ExplorerPolicy, palette, platformer_content
from models.reward import RewardConfig
from worldgen.codec import LatentCodec
from worldgen.content import content_report, format_content, record_streams, write_content
from worldgen.eval import Method
from worldgen.frames import colour_recall, frequent_colours, to_model
from worldgen.kit import GameKit, colour_content, kit_for
from worldgen.metrics import colour_histogram, histogram_intersection
from worldgen.rollout import Sampler

K = 4


class Identity(nn.Module):
    """An 'autoencoder' whose latents are the frames themselves (3, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def encode(self, x):
        return x

    def decode(self, z):
        return z


class Scripted(nn.Module):
    """A 1-step 'world' that draws a given frame sequence, one per call, whatever its context:
    f(x, t) = cos t x - sin t sigma_d F(x / sigma_d) equals `frames[call]` for this F."""

    def __init__(self, frames: np.ndarray) -> None:
        super().__init__()
        self.frames = to_model(frames) * 0.5  # (R, H, 3, h, w) latents in sigma_d units
        self.calls = 0

    def forward(self, x, t, context, actions, level):
        target = self.frames[:, self.calls]
        self.calls += 1
        cos, sin = torch.cos(t).reshape(-1, 1, 1, 1), torch.sin(t).reshape(-1, 1, 1, 1)
        return (cos * x * 0.5 - target) / (sin * 0.5)


@pytest.fixture(scope="module")
def streams():
    seeds = list(range(1_000_000, 1_000_040))
    return record_streams(lambda: gym.make("worldgen/Platformer-v0"), ExplorerPolicy(seed=0), seeds, 2, 140 + K)


def test_streams_go_on_across_levels(streams):
    assert all(len(s.frames) == 145 and len(s.actions) == 144 for s in streams)
    assert [s.levels[0] for s in streams] == [1_000_000, 1_000_001]
    again = record_streams(lambda: gym.make("worldgen/Platformer-v0"), ExplorerPolicy(seed=0), list(range(1_000_000, 1_000_040)), 2, 144)
    assert all(np.array_equal(a.frames, b.frames) and a.levels == b.levels for a, b in zip(streams, again))
    with pytest.raises(ValueError, match="need at least 3 level seeds"):
        record_streams(lambda: gym.make("worldgen/Platformer-v0"), ExplorerPolicy(seed=0), [1, 2], 3, 10)


def test_platformer_content_counts_what_is_drawn(streams):
    frames = streams[0].frames
    c = platformer_content(frames)
    assert set(c) == {"coins", "enemies", "flags", "platform_px", "gap_columns", "texture_px", "unsupported"}
    assert c["texture_px"].min() > 0 and c["coins"].sum() > 0
    # An emptied level: sky above a flat strip of grass, the player standing on it.
    empty = np.empty((3, 64, 64, 3), dtype=np.uint8)
    empty[:] = palette.SKY
    empty[:, 56:] = palette.GRASS
    for f in empty:
        f[49:56, 20:25] = palette.PLAYER
    e = platformer_content(empty)
    assert e["coins"].sum() == e["flags"].sum() == e["platform_px"].sum() == e["texture_px"].sum() == e["gap_columns"].sum() == 0
    with_flag = empty.copy()  # the level's end comes into view in the last frame
    with_flag[2, 40:56, 40] = palette.POLE
    with_flag[2, 40:43, 41:46] = palette.FLAG
    assert platformer_content(with_flag)["flags"].tolist() == [0.0, 0.0, 1.0]
    assert np.isnan(e["unsupported"][0]) and e["unsupported"][1:].tolist() == [0.0, 0.0]
    # The same player held up by nothing: one row higher, no grass under its feet, still.
    empty[:, 49:56, 20:25] = palette.SKY
    empty[:, 44:51, 20:25] = palette.PLAYER
    assert platformer_content(empty)["unsupported"][1:].tolist() == [1.0, 1.0]
    # Falling past the same spot is not floating.
    empty[2] = empty[1]
    empty[2, 44:51, 20:25] = palette.SKY
    empty[2, 47:54, 20:25] = palette.PLAYER
    assert platformer_content(empty)["unsupported"][2] == 0.0


def test_a_world_that_draws_the_real_game_scores_one_everywhere(streams, tmp_path):
    frames = 140
    real = np.stack([s.frames[K : K + frames] for s in streams])
    blank = np.empty_like(real)
    blank[:] = palette.SKY
    codec = LatentCodec(Identity(), torch.device("cpu"))
    one_step = Sampler("consistency", 1, 0.0)
    methods = [Method("repeat last frame", None), Method("oracle", Scripted(real), one_step), Method("empty", Scripted(blank), one_step)]
    report = content_report(methods, streams, codec, K, KIT.content, frames)
    assert report["bins"] == [(1, 32), (33, 128), (129, 140)]
    assert list(report["methods"]) == ["oracle", "empty"]
    oracle, empty = report["methods"]["oracle"], report["methods"]["empty"]
    scored = 0
    for kind, ratios in oracle["ratio"].items():  # NaN only where the real game showed none
        shown = [r > 0 for r in report["real"][kind]]
        assert [v for v, s in zip(ratios, shown) if s] == pytest.approx([1.0] * sum(shown)), kind
        assert all(v != v for v, s in zip(ratios, shown) if not s)
        scored += sum(shown)
    assert scored >= 9  # of 15: these levels show no enemies, and coins only after step 32
    assert oracle["rate"]["unsupported"] == pytest.approx(report["real"]["unsupported"])
    assert empty["ratio"]["platform_px"][1:] == [0.0] * 2 and empty["ratio"]["coins"][1:] == [0.0] * 2
    assert min(empty["ratio"]["gap_columns"]) > 1  # no ground at all: every column is a gap
    assert "unsupported" not in oracle["ratio"] and "unsupported" in format_content(report)
    assert oracle["colour_intersection"] == pytest.approx([1.0] * 3)
    sky = colour_histogram(real)[colour_histogram(blank).argmax()]  # the blank frame's one colour, in the real frames
    assert empty["colour_intersection"] == pytest.approx([sky] * 3, abs=0.05) and max(empty["colour_intersection"]) < 0.9
    write_content(report, tmp_path)
    json.dumps(report)  # plain JSON once the strip frames are written
    from PIL import Image

    strip = np.asarray(Image.open(tmp_path / "content_strip.png"))
    tiles = strip[-3 * 64 * 3:, -3 * 64 * 4:]  # steps 0, 30, 60, 120; real, oracle, empty; labels above and left
    assert strip.shape[0] > tiles.shape[0] and strip.shape[1] > tiles.shape[1]
    assert np.array_equal(tiles[3 * 64: 6 * 64: 3, 3 * 64: 6 * 64: 3], real[0, 29])  # the oracle at frame 30
    assert np.array_equal(tiles[6 * 64:: 3, :3 * 64: 3], streams[0].frames[K - 1])  # every row starts from the prompt
    assert (strip[: strip.shape[0] - tiles.shape[0]] < 128).any() and (strip[:, : strip.shape[1] - tiles.shape[1]] < 128).any()
    assert (tmp_path / "content_vs_horizon.png").stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp*"))


def test_colour_recall_finds_a_lost_texture(streams):
    real = streams[0].frames[:20]
    smoothed = real.copy()
    dots = (real == np.array(palette.DIRT_DARK, dtype=np.uint8)).all(axis=-1)
    smoothed[dots] = palette.DIRT  # the autoencoder's failure: dirt without its dots
    recall = colour_recall(real, smoothed, KIT.palette)
    assert recall["dirt_dark"] == 0.0 and recall["dirt"] == 1.0 and recall["sky"] == 1.0
    assert np.isnan(recall["flag"]) or recall["flag"] == 1.0
    generic = frequent_colours(real)
    assert "#%02x%02x%02x" % palette.SKY in generic and len(generic) <= 16


def test_games_without_a_kit_get_an_empty_one():
    assert kit_for("envs:worldgen/Platformer-v0") is KIT
    assert kit_for("CartPole-v1") == GameKit()


class CopyLast(nn.Module):
    """A 1-step world that draws its (possibly noised) last context frame again."""

    def forward(self, x, t, context, actions, level):
        cos, sin = torch.cos(t).reshape(-1, 1, 1, 1), torch.sin(t).reshape(-1, 1, 1, 1)
        return (cos * x * 0.5 - context[:, -1]) / (sin * 0.5)


def test_a_method_can_play_at_its_own_context_noise(streams):
    from worldgen.eval import generate

    codec = LatentCodec(Identity(), torch.device("cpu"))
    context = codec.encode(streams[0].frames[:K])[None]  # (1, K, 3, 64, 64)
    actions = torch.zeros(1, K + 2, dtype=torch.long)
    clean = generate(Method("world", CopyLast(), Sampler("consistency", 1, 0.0)), context, actions, codec)
    assert np.array_equal(clean[0, 0], streams[0].frames[K - 1])
    noisy = generate(Method("noisier", CopyLast(), Sampler("consistency", 1, 0.5)), context, actions, codec)
    assert np.abs(noisy[0, 0].astype(int) - streams[0].frames[K - 1]).mean() > 10


def test_a_built_in_games_kit_is_found_before_anything_imported_it():
    import subprocess
    import sys

    code = ("import sys; from worldgen.kit import kit_for; assert 'envs' not in sys.modules; "
            "kit = kit_for('envs:worldgen/Platformer-v0'); assert kit.policy is not None and kit.events is not None; "
            "assert kit_for('ALE/Freeway-v5').events is not None; assert kit_for('my/Game-v0').policy is None")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_game_without_a_kit_is_judged_by_its_colours(streams):
    frames = 40
    real = np.stack([s.frames[K : K + frames] for s in streams])
    blank = np.empty_like(real)
    blank[:] = palette.SKY
    kit = colour_content(frequent_colours(real[0], most=4))
    one_step = Sampler("consistency", 1, 0.0)
    methods = [Method("oracle", Scripted(real), one_step), Method("sky", Scripted(blank), one_step)]
    report = content_report(methods, streams, LatentCodec(Identity(), torch.device("cpu")), K, kit, frames)
    sky = "colour #%02x%02x%02x" % tuple(palette.SKY)
    assert sky in report["real"] and len(report["real"]) == 4
    oracle = [v for ratios in report["methods"]["oracle"]["ratio"].values() for v in ratios if v == v]
    assert len(oracle) >= 6 and oracle == pytest.approx([1.0] * len(oracle))
    empty = report["methods"]["sky"]["ratio"]
    assert min(empty[sky]) > 1 and all(v == 0 for kind, ratios in empty.items() if kind != sky for v in ratios if v == v)


class MarkerHead(nn.Module):
    """A reward head that pays 1 (and ends the episode) where the next frame's top-left pixel is
    marked, `late` steps after the mark: it reads the same pictures as the rules below."""

    def pay(self, regressed):
        return regressed  # as regressed: the tests read the head's own output

    def __init__(self, late: int = 0) -> None:
        super().__init__()
        self.late, self.seen = late, []
        self.cfg = RewardConfig(pay_once=False)  # every step it reads is paid: the tests count them

    def forward(self, context, actions, next_latent):
        self.seen.append(next_latent[:, 0, 0, 0] > 0.4)  # the marked red channel: 1.0 in the frame, sigma_d = 0.5 here
        marked = self.seen[-1 - self.late] if len(self.seen) > self.late else torch.zeros_like(self.seen[-1])
        return marked.float() * np.log(2.0), torch.where(marked, 1.0, -1.0)


def _marker_rules(frames):
    """Rules read from pictures: +1 and an ending for each step into a marked frame."""
    marked = frames[1:, 0, 0, 0] == 255
    return marked.astype(np.float32), marked


def test_the_reward_head_is_judged_on_the_worlds_own_frames_per_bin():
    from worldgen.content import Stream, format_events

    frames, steps = 140, 140 + K
    rng = np.random.default_rng(0)
    marks = [np.sort(rng.choice(np.arange(2, frames), 12, replace=False)) for _ in range(2)]  # horizons
    streams, drawn = [], []
    for m in marks:
        video = np.full((steps + 1, 64, 64, 3), 100, np.uint8)
        rewards = np.zeros(steps, np.float32)
        rewards[K + m - 2] = 1.0  # the step into horizon h is step K + h - 2 of the stream
        streams.append(Stream(video, np.zeros(steps, np.int64), [0], rewards, rewards > 0))
        world = video[K : K + frames].copy()
        world[m - 1, 0, 0, 0] = 255  # horizon h is index h - 1
        drawn.append(world)
    codec = LatentCodec(Identity(), torch.device("cpu"))
    one_step = Sampler("consistency", 1, 0.0)
    judged = {}
    for late in (0, 1, 3):
        method = Method("world", Scripted(np.stack(drawn)), one_step)
        report = content_report([method], streams, codec, K, KIT.content, frames, reward_head=MarkerHead(late),
                                rules=_marker_rules)
        judged[late] = report["methods"]["world"]["events"]
    exact = judged[0]
    assert exact["bins"] == [(1, 32), (33, 128), (129, 140)]
    events = sum(s["reward_events"] for s in exact["rules"])
    assert events == 24 and sum(s["terminations"] for s in exact["rules"]) == 24
    for scores in exact["rules"] + [exact["real_game"]]:
        if scores["reward_events"]:
            assert scores["reward_precision"] == scores["reward_recall"] == scores["termination_recall"] == 1.0
    one_late = judged[1]["rules"]
    assert all(s["reward_recall"] == 1.0 for s in one_late if s["reward_events"])  # within the tolerance of a step
    assert all(s["reward_recall"] < 0.5 for s in judged[3]["rules"] if s["reward_events"])
    table = format_events(report)
    assert "h33-128 (rules)" in table and "| world | termination |" in table


def _atari_frames(env_id: str, actions: list[int]) -> np.ndarray:
    from worldgen.data.sources import make_source_env

    env = make_source_env(env_id, 64)
    frame, _ = env.reset(seed=0)
    frames = [frame] + [env.step(a)[0] for a in actions]
    env.close()
    return np.stack(frames)


def _boxing_frames(steps: int) -> np.ndarray:
    return _atari_frames("ALE/Boxing-v5", [a % 18 for a in range(steps)])


def test_boxing_is_judged_by_its_own_named_colours_and_boxers():
    frames = _boxing_frames(30)
    kit = kit_for("ALE/Boxing-v5")
    shares = kit.content.measure(frames)
    colours = {f"colour {name}" for name in kit.palette}
    assert set(shares) == colours | {"white boxer drawn", "black boxer drawn"}
    assert set(kit.content.shares) == {"white boxer drawn", "black boxer drawn"}
    covered = sum(shares[c] for c in colours)  # the rest: digits and rope ends blended by the resize to 64 x 64
    assert covered.min() > 0.8 and shares["colour ring"].mean() > 0.5
    assert shares["colour white boxer"].min() > 0 and shares["colour black boxer and left border"].min() > 0
    assert shares["white boxer drawn"].all() and shares["black boxer drawn"].all()


def test_boxing_detector_follows_the_boxers_and_loses_them_when_they_fade():
    frames = _boxing_frames(60)
    detect = kit_for("ALE/Boxing-v5").detect
    first, last = detect(frames[0]), detect(frames[-1])
    # The game starts with the white boxer top left and the black one bottom right of the ring.
    (wx, wy), (bx, by) = first["white boxer"][0], first["black boxer"][0]
    assert wx < 32 < bx and wy < 32 < by
    assert all(len(last[k]) == 1 for k in ("white boxer", "black boxer"))
    ring = np.broadcast_to(np.array([110, 156, 66], dtype=np.uint8), frames[0].shape)
    assert all(len(v) == 0 for v in detect(ring).values())
    big = detect(frames[0].repeat(2, 0).repeat(2, 1))  # any square size, positions in 64 x 64 pixels
    assert np.abs(big["white boxer"] - first["white boxer"]).max() < 0.5
    with pytest.raises(ValueError, match="RGB frame"):
        detect(frames[0][..., 0])


def test_freeway_counts_one_car_per_lane_and_follows_the_chicken_up():
    from envs.atari import FREEWAY_LANES

    frames = _atari_frames("ALE/Freeway-v5", [1] * 40)  # UP: the chicken walks up its column
    kit = kit_for("ALE/Freeway-v5")
    found = [kit.detect(f) for f in frames]
    cars = [f["car"] for f in found]
    assert np.mean([len(c) for c in cars]) > 8  # ten lanes, a car off screen now and then
    rows = [(top, bottom) for top, bottom, _, _ in FREEWAY_LANES.values()]
    assert all(any(top <= y < bottom for top, bottom in rows) for c in cars for _, y in c)
    moved = cars[5][:, 0] - cars[4][:, 0]
    assert len(cars[4]) == len(cars[5]) and np.abs(moved).max() > 0  # the traffic moves every step
    chicken = [f["chicken"][0] for f in found if len(f["chicken"])]
    assert len(chicken) > 20 and abs(chicken[0][0] - 18.5) < 1.5
    assert chicken[-1][1] < chicken[0][1] - 5  # up the screen
    shares = kit.content.measure(frames)
    assert set(shares) == {"colour road", "colour lane marks", "colour border", "cars drawn", "chicken drawn"}
    assert kit.content.shares == ("chicken drawn",)  # a count of cars is a rate, compared as a ratio
    road = np.broadcast_to(np.array([142, 142, 142], dtype=np.uint8), frames[0].shape)
    assert all(len(v) == 0 for v in kit.detect(road).values())


def test_freeways_explorer_crosses_the_road_that_uniform_play_leaves_half_seen():
    """make-world's default player for Freeway: data with the whole road and its rewards in it."""
    from worldgen.data.policies import RandomRepeatPolicy
    from worldgen.data.sources import make_source_env
    from worldgen.make_world import default_policy

    assert default_policy("ALE/Freeway-v5") == "explore" and default_policy("ALE/Boxing-v5") == "random"
    kit = kit_for("ALE/Freeway-v5")
    results = {}
    for name, policy in (("explore", kit.policy(0)), ("uniform", RandomRepeatPolicy(3, seed=0))):
        env = make_source_env("ALE/Freeway-v5", 64)
        frame, _ = env.reset(seed=0)
        crossings, heights = 0.0, []
        for t in range(1000):
            frame, reward, *_ = env.step(int(policy.act(frame[None], [{}], np.array([t == 0]))[0]))
            crossings += reward
            heights += [y for _, y in kit.detect(frame)["chicken"]]
        env.close()
        results[name] = (crossings, np.mean(np.array(heights) < 32))  # share of frames in the upper half
    assert results["explore"][0] >= 3 > results["uniform"][0], results
    assert results["explore"][1] > 0.3 > results["uniform"][1], results


def test_freeways_rules_read_each_paid_crossing_off_the_frames():
    """The truth for a Freeway world's reward head on frames the game never drew."""
    from worldgen.data.sources import make_source_env

    kit = kit_for("ALE/Freeway-v5")
    policy, env = kit.policy(0), make_source_env("ALE/Freeway-v5", 64)
    frames, rewards = [env.reset(seed=0)[0]], []
    for t in range(1000):
        frame, reward, *_ = env.step(int(policy.act(frames[-1][None], [{}], np.array([t == 0]))[0]))
        frames.append(frame)
        rewards.append(reward)
    env.close()
    read, ended = kit.events(np.stack(frames))
    assert sum(rewards) >= 3 and np.array_equal(read, np.array(rewards, dtype=np.float32))
    assert read.shape == ended.shape == (1000,) and not ended.any()  # the clock ends Freeway: a truncation
    with pytest.raises(ValueError, match=r"frames \(T \+ 1, H, W, 3\)"):
        kit.events(np.stack(frames)[0])


def test_colour_histograms_intersect_by_amount_not_by_place():
    red, blue = np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    half = red.copy()
    half[:, :, :4] = blue[:, :, :4]
    mirrored = half[:, :, ::-1]  # the same colours elsewhere in the picture
    assert histogram_intersection(colour_histogram(half), colour_histogram(mirrored)) == pytest.approx(1.0)
    assert histogram_intersection(colour_histogram(half), colour_histogram(red)) == pytest.approx(0.5)
    assert histogram_intersection(colour_histogram(red), colour_histogram(blue)) == 0.0
    grey = np.full((1, 8, 8, 3), 100, np.uint8)
    assert colour_histogram(grey + 3).argmax() == colour_histogram(grey).argmax()  # a decoder's small error stays in its bin


def test_the_second_step_is_chosen_by_how_near_the_real_mix_the_content_stays():
    from worldgen.tune import content_deviation

    bins = [(1, 32), (33, 128), (129, 512)]
    assert content_deviation({"coins": [0.1, 1.0, 1.0], "gaps": [5.0, 1.0, 1.0]}, bins) == 0.0  # the first 32 frames are not judged
    half, double = content_deviation({"coins": [1.0, 0.5, 0.5]}, bins), content_deviation({"coins": [1.0, 2.0, 2.0]}, bins)
    assert half == pytest.approx(double) == pytest.approx(np.log(2))
    assert content_deviation({"coins": [1.0, 0.0, float("nan")]}, bins) == pytest.approx(np.log(100))  # gone: floored; unseen: left out
    assert content_deviation({"coins": [0.5]}, [(1, 32)]) == pytest.approx(np.log(2))  # a short rollout: judged on what it has
    with pytest.raises(ValueError, match="no content to judge"):
        content_deviation({"coins": [1.0, float("nan"), float("nan")]}, bins)


def test_the_choice_of_second_step_counts_the_player_too():
    from worldgen.tune import FLOOR, judged_ratios

    report = {"shares": ["chicken drawn", "unsupported"], "rare": ["flags"],
              "real": {"cars drawn": [9.0, 9.0], "chicken drawn": [1.0, 1.0], "unsupported": [0.0, 0.0]},
              "methods": {"w": {"ratio": {"cars drawn": [1.0, 0.9], "flags": [float("nan"), 0.0]},
                                "rate": {"cars drawn": [9.0, 8.1], "chicken drawn": [1.0, 0.25], "unsupported": [0.0, 0.05]}}}}
    ratios = judged_ratios(report, "w")
    assert ratios["cars drawn"] == [1.0, 0.9]  # a rate kind as the report has it
    assert ratios["chicken drawn"] == [1.0, 0.25]  # the player drawn in a quarter of the frames the game draws it
    assert ratios["unsupported"] == [1.0, pytest.approx(0.05 / FLOOR)]  # floating, where the game never floats
    assert "flags" not in ratios  # a level's end, seen in a few frames of a bin: reported, not chosen by
