"""`worldgen play`: a generated world in a pygame window, in real time, at the keyboard.

Keys come from the world's action names: arrows or WASD move, Space (or Up/W) jumps or fires;
digits 1-9 choose actions by number, which is how a world on latent actions (`code 0`, ...)
is played. F1 lists them; V previews every action: a strip of what each does from the current
frame, so a player finds "jump" among unnamed codes in seconds. R resets, P pauses, TAB
switches 1 and 2 sampling steps, F5 starts and stops recording a clip, Backspace rewinds a
second, G re-grounds the world from the real game (with --compare), M hands control between
an agent (with --agent) and the keyboard, Esc quits.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from worldgen.agent import new_episode
from worldgen.frames import psnr
from worldgen.record import Clip, write_video
from worldgen.world import World

_TOKEN_KEYS = {
    "LEFT": ("K_LEFT", "K_a"),
    "RIGHT": ("K_RIGHT", "K_d"),
    "UP": ("K_UP", "K_w"),
    "DOWN": ("K_DOWN", "K_s"),
    "JUMP": ("K_SPACE", "K_UP", "K_w"),
    "FIRE": ("K_SPACE",),
}


_NAME_TOKENS = re.compile("|".join(_TOKEN_KEYS))
"""The parts of an action's name: `LEFT_JUMP` (the Platformer's) and `UPRIGHTFIRE` (Atari's) alike."""
_DIGIT_KEYS = tuple(f"K_{i}" for i in range(1, 10))
"""Digit key i chooses action i - 1."""
PREVIEW_STEPS = 18
"""Frames each action is held for in the preview (0.6 s at 30 fps). A player with momentum, or
in mid-air, shows what a key does only after several frames: held 6, the run keys of a
Platformer world from video looked like its NOOP; held 18, which keys run, jump and go left is
plain (README, *Worlds from video*)."""
PREVIEW_SHOWN = 6
"""Frames of each action's strip in the preview picture, evenly spaced, ending on its last."""


class NoDisplay(RuntimeError):
    """pygame found no screen to open a window on."""


def action_for_keys(meanings: list[str], pressed: set[str]) -> int:
    """A held digit's action (1: the first), else the action whose name's parts (LEFT, JUMP, ...)
    are exactly the held keys' parts, else the one covering most of them; NOOP (or action 0)
    when nothing matches."""
    digits = [i for i, key in enumerate(_DIGIT_KEYS) if key in pressed and i < len(meanings)]
    if digits:
        return digits[0]
    held = {token for token, keys in _TOKEN_KEYS.items() if pressed & set(keys)}
    best, best_score = 0, 0
    for i, name in enumerate(meanings):
        tokens = set(_NAME_TOKENS.findall(name)) - {"NOOP"}
        if tokens == held:
            return i
        if tokens <= held and len(tokens) > best_score:
            best, best_score = i, len(tokens)
    return best


def held_keys(pygame: Any) -> set[str]:
    """Names (K_LEFT, K_a, ...) of the mapped keys held down now."""
    keys = pygame.key.get_pressed()
    names = {k for keys_of in _TOKEN_KEYS.values() for k in keys_of} | set(_DIGIT_KEYS)
    return {name for name in names if keys[getattr(pygame, name)]}


def key_help(meanings: list[str]) -> list[str]:
    """One line per action: its name and the keys that choose it."""
    lines = []
    for i, name in enumerate(meanings):
        keys = [" + ".join("/".join(k[2:].upper() for k in _TOKEN_KEYS[t]) for t in _NAME_TOKENS.findall(name))]
        keys += [str(i + 1)] if i < len(_DIGIT_KEYS) else []
        lines.append(f"{name:<12} {', '.join(k for k in keys if k) or '(no key)'}")
    return lines + ["", "V preview every action  R reset  P pause", "TAB 1/2 steps  F5 record  Backspace rewind",
                    "G re-ground  M agent/you  Esc quit"]


def action_previews(world: World, steps: int = PREVIEW_STEPS) -> np.ndarray:
    """What each action does from the world's current state: (A, steps, H, W, 3), action a held
    for `steps` frames, all actions stepped as one batch from the same state and noise. The
    world itself is left as it was."""
    if world.batch_size != 1:
        raise ValueError(f"previews branch a single world; this one steps {world.batch_size}")
    actions = np.arange(len(world.action_meanings))
    branches = world.branches(len(actions))
    return np.stack([branches.step(actions).frames for _ in range(steps)], axis=1)


PREVIEW_DIFFERENCE = 24
"""Largest channel difference (of 255) from the actions' consensus that still counts as the same pixel."""


def own_effect(strips: np.ndarray, threshold: int = PREVIEW_DIFFERENCE) -> np.ndarray:
    """What each action draws unlike most of the others: its last frame, dimmed, with the pixels
    that differ from the median of all actions' last frames in magenta. A key that moves the
    player a few pixels further than the rest, hard to see in the strip, shows as a bright mark.
    strips (A, T, H, W, 3) -> (A, H, W, 3) uint8."""
    last = strips[:, -1].astype(np.int16)
    consensus = np.median(last, axis=0)
    differs = np.abs(last - consensus).max(axis=-1) > threshold  # (A, H, W)
    out = (last * 0.35).astype(np.uint8)
    out[differs] = (255, 0, 255)
    return out


def shown_steps(steps: int, shown: int = PREVIEW_SHOWN) -> np.ndarray:
    """Which of a strip's `steps` frames the preview picture shows: at most `shown`, evenly
    spaced, the last among them."""
    picks = np.round(np.linspace(steps / shown, steps, shown)).astype(int) - 1
    return np.unique(np.clip(picks, 0, steps - 1))


def preview_picture(world: World, strips: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The preview as one labelled picture: a row per action (its digit key and name), the
    current frame first, then `PREVIEW_SHOWN` of the frames it leads to, then what it draws
    unlike the other actions at the end (`own_effect`)."""
    from worldgen.frames import labelled_grid

    effects = own_effect(strips)
    shown = shown_steps(strips.shape[1])
    rows = [(f"{i + 1}: {name}", np.concatenate([frame, *strip[shown], effect], axis=1))
            for i, (name, strip, effect) in enumerate(zip(world.action_meanings, strips, effects))]
    return labelled_grid(rows, ["now", *[f"+{t + 1}" for t in shown], "unlike the rest"], scale=2)


@dataclass
class PlayStats:
    frames: int = 0
    seconds: float = 0.0
    model_ms: list[float] = field(default_factory=list)
    clips: list[Path] = field(default_factory=list)
    agent_frames: int = 0
    """Frames the agent drove (the rest, the keyboard)."""

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


class Viewer:
    def __init__(
        self,
        world: World,
        prompt: int | str | Path | None = None,
        scale: int = 8,
        fps: int | None = None,
        compare_env: Callable[[], Any] | None = None,
        clip_dir: Path = Path("clips"),
        seed: int = 0,
        agent: Callable[[np.ndarray], int] | None = None,
    ) -> None:
        """`agent`: a policy (frame -> action) that drives the world until M hands control to
        the keyboard; M again gives it back (as in DIAMOND's viewer)."""
        self.world = world
        self.agent = agent
        self.prompt: int | str = seed if prompt is None else (str(prompt) if isinstance(prompt, Path) else prompt)
        """A level seed of the source game or an image path: what a clip can name to replay."""
        if compare_env is not None and not isinstance(self.prompt, int):
            raise ValueError("--compare starts the world and the real game from the same level; it takes no image prompt")
        self.scale = scale
        self.fps = fps or world.spec.fps
        self.make_real = compare_env
        self.clip_dir = Path(clip_dir)
        self.seed = seed

    def run(self, max_frames: int | None = None, script: Callable[[int], list[Any]] | None = None) -> PlayStats:
        """Play until Esc (or `max_frames`); `script(frame)` may return pygame events to post,
        which is how tests drive the viewer under SDL's dummy video driver."""
        import pygame

        try:
            pygame.display.init()
            pygame.font.init()
            size = self.world.spec.frame_size * self.scale
            panes = 2 if self.make_real else 1
            screen = pygame.display.set_mode((size * panes, size + (96 if self.agent is not None else 72)))
        except pygame.error as e:
            raise NoDisplay(str(e)) from None
        pygame.display.set_caption(f"worldgen: {self.world.spec.name}")
        font = pygame.font.Font(None, 22)
        clock = pygame.time.Clock()
        meanings = self.world.action_meanings
        stats = PlayStats()
        history: deque = deque(maxlen=self.fps * 10)
        real_env, real_frames, real_actions = None, deque(maxlen=self.world.spec.context), deque(maxlen=self.world.spec.context)

        def reset() -> tuple[np.ndarray, np.ndarray | None]:
            nonlocal real_env, real_done
            history.clear()
            if self.agent is not None:
                new_episode(self.agent)
            if self.make_real:
                real_env = real_env or self.make_real()
                real, _ = real_env.reset(seed=self.prompt)
                real_done = False
                real_frames.clear()
                real_actions.clear()
                real_frames.append(real)
                real_actions.append(0)  # keeps real_actions[j] = the action that led to real_frames[j]
            return self.world.reset(self.prompt, seed=self.seed)[0], real if self.make_real else None

        real_done = False

        log: list[tuple[int, int]] = []  # (action, sampling steps) since the reset, for clips

        frame, real = reset()
        paused, show_help, recording, preview = False, False, None, None
        agent_drives = self.agent is not None
        total_reward, steps, drift = 0.0, 0, float("nan")
        start = time.perf_counter()
        running = True
        while running:
            for event in script(stats.frames) if script else []:
                pygame.event.post(event)
            for event in pygame.event.get():
                if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                    running = False
                elif event.type == pygame.KEYDOWN:
                    if event.key in (pygame.K_r, pygame.K_g) and recording is not None:
                        recording = self._toggle_recording(recording, log, stats)  # a clip replays from one reset
                    if event.key == pygame.K_r:
                        frame, real = reset()
                        total_reward, steps = 0.0, 0
                        log.clear()
                    elif event.key == pygame.K_p:
                        paused = not paused
                    elif event.key == pygame.K_TAB and self.world.spec.sampler == "consistency":
                        self.world.sampling_steps = 3 - self.world.sampling_steps
                    elif event.key == pygame.K_m and self.agent is not None:
                        agent_drives = not agent_drives
                    elif event.key == pygame.K_F1:
                        show_help = not show_help
                    elif event.key == pygame.K_v:
                        preview = None if preview is not None else self._fit(pygame, screen, preview_picture(
                            self.world, action_previews(self.world), frame))
                    elif event.key == pygame.K_F5:
                        recording = self._toggle_recording(recording, log, stats, frame)
                    elif event.key == pygame.K_BACKSPACE and history:
                        back = min(self.fps, len(history))
                        for _ in range(back - 1):
                            history.pop()
                        state, frame = history.pop()
                        self.world.set_state(state)
                        steps = max(steps - back, 0)
                        del log[len(log) - back:]
                        if recording is not None:
                            del recording[1][max(len(recording[1]) - back, 1):]
                    elif event.key == pygame.K_g and self.make_real and len(real_frames):
                        frame = self.world.reset(np.stack(real_frames), list(real_actions)[1:], seed=self.seed + steps)[0]
                        log.clear()
            if not running:
                break
            if not paused and preview is None:  # the preview holds the world still until V closes it
                action = self.agent(frame) if agent_drives else action_for_keys(meanings, held_keys(pygame))
                stats.agent_frames += agent_drives
                history.append((self.world.get_state(), frame))
                t0 = time.perf_counter()
                result = self.world.step([action])
                stats.model_ms.append((time.perf_counter() - t0) * 1e3)
                frame = result.frames[0]
                total_reward += float(result.rewards[0])
                steps += 1
                log.append((action, self.world.sampling_steps))
                if recording is not None:
                    recording[1].append(frame)
                if real_env is not None and not real_done:  # the real game stops at its episode's end; R restarts both
                    real, _, terminated, truncated, _ = real_env.step(action)
                    real_done = terminated or truncated
                    real_frames.append(real)
                    real_actions.append(action)
                    drift = float(psnr(frame, real))
            self._draw(pygame, screen, font, frame, real, show_help, recording is not None, stats, steps, total_reward, drift, clock,
                       real_done, agent_drives, preview)
            pygame.display.flip()
            clock.tick(self.fps)  # real time: never faster than the target
            stats.frames += 1
            if max_frames is not None and stats.frames >= max_frames:
                running = False
        if recording is not None:
            self._toggle_recording(recording, log, stats)
        stats.seconds = time.perf_counter() - start
        pygame.display.quit()
        return stats

    def _toggle_recording(self, recording: Any, log: list[tuple[int, int]], stats: PlayStats, frame: np.ndarray | None = None) -> Any:
        """Start a recording (returns (first step, frames)), or finish one: the video, and the
        clip JSON with every action since the reset so `worldgen replay` redraws it exactly."""
        if recording is None:
            return len(log), [frame]
        start, frames = recording
        steps = [n for _, n in log] or [self.world.sampling_steps]
        clip = Clip(
            world=str(self.world.folder or self.world.spec.name),
            seed=self.seed,
            sampling_steps=steps[0] if len(set(steps)) == 1 else steps,
            prompt=self.prompt,
            actions=[a for a, _ in log],
            start=min(start, len(log)),
            fps=self.fps,
        )
        self.clip_dir.mkdir(parents=True, exist_ok=True)
        path = self.clip_dir / f"clip-{time.strftime('%Y%m%d-%H%M%S')}-{len(stats.clips)}.mp4"
        write_video(path, np.stack(frames), clip.fps)
        clip.save(path.with_suffix(".json"))
        stats.clips.append(path)
        return None

    @staticmethod
    def _fit(pygame: Any, screen: Any, picture: np.ndarray) -> Any:
        """A picture as a surface scaled to fit the window, made once, not every frame."""
        fit = min(screen.get_width() / picture.shape[1], screen.get_height() / picture.shape[0])
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(picture.swapaxes(0, 1)))
        return pygame.transform.smoothscale(surface, (int(picture.shape[1] * fit), int(picture.shape[0] * fit)))

    def _draw(self, pygame, screen, font, frame, real, show_help, recording, stats, steps, reward, drift, clock, real_done,
              agent_drives, preview=None) -> None:
        size = self.world.spec.frame_size * self.scale
        screen.fill((20, 20, 28))
        for i, image in enumerate([frame] + ([real] if real is not None else [])):
            surface = pygame.surfarray.make_surface(np.ascontiguousarray(image.swapaxes(0, 1)))
            screen.blit(pygame.transform.scale(surface, (size, size)), (i * size, 0))
        if real is not None and real_done:  # the real game stops at its episode's end: say so on its pane
            for j, line in enumerate(["real game: episode over", "R restarts both"]):
                screen.blit(font.render(line, True, (255, 255, 120), (0, 0, 0)), (size + 8, 8 + 20 * j))
        ms = np.mean(stats.model_ms[-30:]) if stats.model_ms else 0.0
        status = "real game ended, R restarts" if real_done else f"drift: PSNR {drift:4.1f} dB vs the real game (G re-grounds)"
        hud = [
            f"{clock.get_fps():5.1f} fps   {ms:5.1f} ms/frame   {self.world.sampling_steps} step(s)   step {steps}   reward {reward:+.1f}",
            ("REC  " if recording else "") + (status if real is not None else "F1: keys"),
        ]
        if self.agent is not None:
            hud.append("control: AGENT (M: take over)" if agent_drives else "control: YOU (M: hand to the agent)")
        for i, line in enumerate(hud):
            screen.blit(font.render(line, True, (230, 230, 230)), (8, size + 8 + 24 * i))
        if preview is not None:
            screen.blit(preview, (0, 0))
        elif show_help:
            for i, line in enumerate(key_help(self.world.action_meanings)):
                screen.blit(font.render(line, True, (255, 255, 120), (0, 0, 0)), (8, 8 + 20 * i))


def has_display() -> bool:
    """Whether SDL can open a window here (an X or Wayland display, a non-Linux desktop, or a
    driver chosen explicitly, such as the tests' dummy driver)."""
    return bool(os.environ.get("SDL_VIDEODRIVER") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or os.name == "nt" or os.uname().sysname == "Darwin"
