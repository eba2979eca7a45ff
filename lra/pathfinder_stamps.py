"""Pathfinder drawing primitives: paddle and marker stamps, stamp tables.

Each paddle of Linsley et al.'s generator (github.com/drewlinsley/pathfinder,
`snakes.draw_line_n_mask`) is a line drawn with Pillow at `antialias_scale`
times the resolution and downsampled with Lanczos; its occupancy mask is that
line dilated by a disc of radius margin, downsampled the same way. Only a few
hundred distinct paddles occur per setting (seeds at integer degrees, and one
per candidate head on the extension circle), so `Tables` draws each once.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

def _disc(radius: float) -> np.ndarray:
  r = int(math.floor(radius))
  y, x = np.ogrid[-r:r + 1, -r:r + 1]
  return x * x + y * y <= radius * radius


def _dilate(image: np.ndarray, footprint: np.ndarray) -> np.ndarray:
  """Grey dilation (max filter) of `image` by a centred boolean footprint."""
  r = footprint.shape[0] // 2
  padded = np.pad(image, r)
  out = np.zeros_like(image)
  h, w = image.shape
  for dy, dx in zip(*np.nonzero(footprint)):
    np.maximum(out, padded[dy:dy + h, dx:dx + w], out=out)
  return out


def flip(angle):
  """The opposite direction, in (-pi, pi] (as the original's flip_by_pi)."""
  return np.where(angle < 0, angle + math.pi, angle - math.pi)


def _lanczos(image: np.ndarray, size: int) -> np.ndarray:
  """0/1 image -> uint8 -> Pillow's Lanczos resize -> float32 in [0, 1]."""
  im = Image.fromarray((image * 255).astype(np.uint8), "L")
  return np.asarray(im.resize((size, size), Image.LANCZOS), np.float32) / 255


def paddle_stamp(angle: float, length: int, thickness: float, margin: int,
                 aa: int) -> tuple[np.ndarray, np.ndarray]:
  """(line, mask) float32 [2r+1, 2r+1] of a paddle from the centre along angle.

  r = length + ceil(thickness) + margin. The line is drawn with Pillow at aa x
  resolution, width round(thickness * aa), to the point length * aa away
  (rounded up); the mask is that line dilated by a disc of radius margin * aa;
  both are downsampled with Lanczos, as in the original's draw_line_n_mask.
  """
  r = length + int(math.ceil(thickness)) + margin
  c = r * aa
  head_y = math.ceil(c + length * aa * math.sin(angle))
  head_x = math.ceil(c + length * aa * math.cos(angle))
  canvas = Image.new("L", (2 * c + 1,) * 2, 0)
  ImageDraw.Draw(canvas).line([(c, c), (head_x, head_y)], fill=255,
                              width=int(round(thickness * aa)))
  big = np.asarray(canvas, np.float32) / 255
  return (_lanczos(big, 2 * r + 1),
          _lanczos(_dilate(big, _disc(margin * aa)), 2 * r + 1))


def marker_stamp(radius: float, aa: int) -> np.ndarray:
  """float32 [2r+1, 2r+1]: a disc drawn at aa x resolution, downsampled."""
  r = int(math.ceil(radius)) + 1
  y, x = np.ogrid[-r * aa:(r + 1) * aa, -r * aa:(r + 1) * aa]
  big = (x * x + y * y <= (radius * aa) ** 2).astype(np.float32)
  return _lanczos(big, 2 * r + 1)


class Tables:
  """Every stamp one (resolution, difficulty, margin) needs, on a padded grid.

  Arrays are flat over a canvas padded by `pad` on each side (width `side`),
  so a stamp at any pixel of the image is a fixed set of flat offsets. Stamps
  0..359 are seed paddles at integer degrees -180..179; stamps 360.. are the
  paddles drawn back from each candidate head on the extension circle.
  """

  def __init__(self, s: dict, margin: int):
    n, length, aa = s["resolution"], s["paddle_length"], s["antialias_scale"]
    self.n, self.margin = n, margin
    self.r = length + int(math.ceil(s["paddle_thickness"])) + margin
    self.marker = marker_stamp(s["marker_radius"], aa)
    self.pad = max(self.r, len(self.marker) // 2)
    self.side = n + 2 * self.pad
    # Candidate heads: one sample per pixel of arc on the circle of radius
    # length + margin, truncated to pixels, de-duplicated (get_coords_cmf).
    radius = length + margin
    rad = np.arange(0, 360, 360 / (2 * radius * math.pi)) * math.pi / 180
    offsets = np.unique(np.stack([np.floor(radius * np.sin(rad)),
                                  np.floor(radius * np.cos(rad))], 1), axis=0)
    self.heads = offsets.astype(np.int64)  # [K, 2]
    self.head_angles = np.arctan2(offsets[:, 0], offsets[:, 1])
    angles = np.concatenate([np.arange(-180, 180) * math.pi / 180,
                             flip(self.head_angles)])
    stamps = [paddle_stamp(float(a), length, s["paddle_thickness"], margin, aa)
              for a in angles]
    self.lines = np.stack([line.ravel() for line, _ in stamps])  # [T, S*S]
    self.masks = np.stack([mask.ravel() for _, mask in stamps])
    self.window = self.offsets(np.arange(-self.r, self.r + 1))
    disc = np.stack(np.nonzero(_disc(margin)), 1) - margin
    self.disc = disc[:, 0] * self.side + disc[:, 1]
    self.footprints = [self.window[m >= 1 - 1e-6] for m in self.masks[:360]]
    widest = max(len(f) for f in self.footprints)  # Padded by repetition.
    self.footprint_table = np.stack([np.pad(f, (0, widest - len(f)), "edge")
                                     for f in self.footprints])
    self.marker_window = self.offsets(np.arange(len(self.marker)) -
                                      len(self.marker) // 2)
    self._band_tails = {}  # degree -> flat tails where a seed paddle fits.

  def offsets(self, span) -> np.ndarray:
    return (span[:, None] * self.side + span[None, :]).ravel()

  def flat(self, y, x):
    return (y + self.pad) * self.side + (x + self.pad)

  def blank(self, s: dict) -> np.ndarray:
    """Flat occupancy of an empty image: the `padding` border is occupied."""
    n, p = self.n, s["padding"]
    grid = np.zeros((self.side, self.side), np.float32)
    inner = grid[self.pad:self.pad + n, self.pad:self.pad + n]
    inner[:p], inner[-p:], inner[:, :p], inner[:, -p:] = 1, 1, 1, 1
    return grid.ravel()

  def band_tails(self, s: dict, degree: int) -> np.ndarray:
    """Flat tails of a first seed at `degree` clear of the 2*seed_distance band."""
    if degree not in self._band_tails:
      band = 2 * s["seed_distance"]
      occupied = self.blank(s).reshape(self.side, self.side)
      inner = occupied[self.pad:self.pad + self.n, self.pad:self.pad + self.n]
      inner[:band], inner[-band:], inner[:, :band], inner[:, -band:] = 1, 1, 1, 1
      yx = np.arange(self.n)
      pixels = self.flat(yx[:, None], yx[None, :]).ravel()
      blocked = occupied.ravel()[pixels[:, None] +
                                 self.footprints[degree + 180]] > 0.3
      self._band_tails[degree] = pixels[~blocked.any(1)]
    return self._band_tails[degree]

  def crop(self, flat: np.ndarray) -> np.ndarray:
    grid = flat.reshape(flat.shape[:-1] + (self.side, self.side))
    return grid[..., self.pad:self.pad + self.n, self.pad:self.pad + self.n]
