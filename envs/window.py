"""The pygame window behind `render_mode="human"`, and the rendering every single worldgen env shares."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.error import DependencyNotInstalled


class HumanWindow:
    """Shows frames enlarged to about 512 pixels, paced to `fps`; pygame loads on first use."""

    def __init__(self, title: str, fps: int) -> None:
        self.title, self.fps = title, fps
        self._screen = None
        self._clock = None

    def show(self, frame: np.ndarray) -> None:
        try:
            import pygame
        except ImportError as e:
            raise DependencyNotInstalled("pygame is not installed: pip install pygame") from e
        if self._screen is None:
            scale = max(1, 512 // frame.shape[0])
            pygame.init()
            pygame.display.set_caption(self.title)
            self._screen = pygame.display.set_mode((frame.shape[1] * scale, frame.shape[0] * scale))
            self._clock = pygame.time.Clock()
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
        self._screen.blit(pygame.transform.scale(surface, self._screen.get_size()), (0, 0))
        pygame.event.pump()
        pygame.display.flip()
        self._clock.tick(self.fps)

    def close(self) -> None:
        if self._screen is not None:
            import pygame

            pygame.display.quit()
            self._screen = None


class FrameEnv(gym.Env):
    """An env whose observation is the frame it shows: `render` returns or shows `_frame`,
    the last observation (None before the first reset)."""

    _frame: np.ndarray | None = None
    _window: HumanWindow

    def render(self) -> np.ndarray | None:
        if self._frame is None:
            raise RuntimeError("Call reset() before render().")
        if self.render_mode == "rgb_array":
            return self._frame.copy()
        if self.render_mode == "human":
            self._window.show(self._frame)
        return None

    def close(self) -> None:
        self._window.close()
