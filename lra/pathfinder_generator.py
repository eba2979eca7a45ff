"""Pathfinder image generator (Linsley et al. 2018), seeded and fast.

Linsley, Kim, Veerabadran, Windolf and Serre, "Learning long-range spatial
dependencies with horizontal gated recurrent units", NeurIPS 2018; the images
of Long Range Arena's Pathfinder (32x32) and Path-X (128x128) tasks (Tay et
al., ICLR 2021) were made by their script (github.com/drewlinsley/pathfinder,
`snakes2.py`) with per-resolution settings, `RESOLUTIONS` below.

Procedure per image (our own code, following the published one):
1. label = randint(2); a paddle margin m from `paddle_margins`.
2. Two target snakes. Seed 1: a random integer orientation and a tail drawn
   uniformly among the pixels where the paddle's footprint is free (away from a
   2*seed_distance band at the edges). Seed 2: a tail at seed_distance from
   tail 1 at a random integer angle. Each snake then grows `contour_length - 1`
   paddles: the next pivot lies (paddle_length + 2m) ahead of the last one, the
   candidate heads on the circle of radius paddle_length + m around it (one
   per pixel of arc) are weighted by (1 - dilated occupancy) *
   max(cos(min(|turn| * continuity, pi/2)), 0)^2, a head is drawn, and the
   paddle is kept if it does not overlap anything drawn before (max(occupancy
   + paddle mask) < 1.8), else redrawn (max_paddle_retrial + 1 tries); a dead
   end restarts both snakes.
3. Distractors: `num_distractor_snakes` snakes of `distractor_length` paddles,
   each retried up to max_distractor_retrial + 1 times and otherwise skipped;
   stop when less than 1% of the image is free.
4. Markers: discs of `marker_radius` at the tail of one target snake and at the
   last head of the same snake (label 1) or of the other one (label 0).
5. Each paddle is drawn as a line `antialias_scale` times larger and
   downsampled with Lanczos (Pillow), as the original does; its occupancy mask
   is that line dilated by a disc of radius m. The image is max(paths,
   markers), scaled so that its maximum is 255 (as scipy's imsave did).

Fidelity (see docs/pathfinder.md): the same procedure, constants and drawing
primitives (`lra.pathfinder_stamps`); seed 2 and every paddle are checked
against everything drawn before except the same snake's previous paddle (the
original skips the other target snake's newest paddle and never checks seed
2, so its target snakes could touch). Images are exchangeable with the
original's in distribution, not pixel for pixel (our own seeded RNG).

Levels (`DIFFICULTIES`): LRA's baseline, contour_length_9 and
contour_length_14, plus our own easier stand-ins for short CPU experiments
(`EASIER_LEVELS`; never LRA's task): "no_distractors" is the baseline with no
distractor snakes, "no_distractors_2/3/4" the same with 2-, 3- or 4-paddle
target snakes (curriculum stages, docs/pathfinder.md).

Speed: the redraws (snakes that reach the edge; ~30 per 32x32 image) are
vectorised: many attempts grow in lockstep as rows of [attempts, pixels]
arrays, and the first completed one is kept (the distribution of the
original's redraw-until-success loop). CPU time per image at
contour_length_14: 11-14 ms at 32x32 (the original: 0.34 s, 24-31x slower),
~0.12 s at 128x128 (the original: 3.8 s); baseline: ~6 ms and ~45 ms.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from lra.pathfinder_stamps import Tables, flip, marker_stamp, paddle_stamp

DIFFICULTIES = {"baseline": 6, "contour_length_9": 9, "contour_length_14": 14,
                "no_distractors": 6, "no_distractors_2": 2, "no_distractors_3": 3,
                "no_distractors_4": 4}
# Levels of our own, easier than any of Linsley et al.'s or LRA's: stand-ins
# for short CPU experiments and curriculum stages only (docs/pathfinder.md),
# never LRA's task. "no_distractors": the baseline's two 6-paddle target
# snakes, no distractors; "no_distractors_<n>": the same with n-paddle snakes.
EASIER_LEVELS = {name: dict(num_distractor_snakes=0)
                 for name in ("no_distractors", "no_distractors_2", "no_distractors_3",
                              "no_distractors_4")}

_COMMON = dict(padding=1, paddle_length=5, antialias_scale=2,
               paddle_contrasts=(1.0,), max_paddle_retrial=2,
               max_distractor_retrial=4)
# LRA's overrides (lra_benchmarks/data/pathfinder.py docstrings). The wrapper
# computes num_distractor_snakes once, as base // distractor_length of the
# baseline level (cl 6 -> dl 2), and keeps it for the other levels.
RESOLUTIONS = {
    32: dict(_COMMON, paddle_length=2, paddle_margins=(1,), seed_distance=7,
             marker_radius=1.5, paddle_thickness=0.5, continuity=1.0,
             num_distractor_snakes=20 // 2, snake_contrasts=(2.0,),
             paddle_contrasts=(0.75,)),
    64: dict(_COMMON, paddle_margins=(1,), seed_distance=12, marker_radius=2.5,
             paddle_thickness=1.0, continuity=1.8,
             num_distractor_snakes=22 // 2, snake_contrasts=(0.8,)),
    128: dict(_COMMON, paddle_margins=(2, 3), seed_distance=20,
              marker_radius=3.0, paddle_thickness=1.5, continuity=1.8,
              num_distractor_snakes=35 // 2, snake_contrasts=(0.9,)),
    256: dict(_COMMON, padding=22, paddle_margins=(3,), seed_distance=27,
              marker_radius=5.0, paddle_thickness=2.0, continuity=1.8,
              num_distractor_snakes=30 // 2, snake_contrasts=(1.0,)),
}


def settings(resolution: int, difficulty: str) -> dict:
  """All generator settings for one resolution and difficulty level."""
  if resolution not in RESOLUTIONS:
    raise ValueError(f"unknown Pathfinder resolution {resolution}; valid: "
                     f"{sorted(RESOLUTIONS)}")
  if difficulty not in DIFFICULTIES:
    raise ValueError(f"unknown Pathfinder difficulty {difficulty!r}; valid: "
                     f"{sorted(DIFFICULTIES)}")
  contour_length = DIFFICULTIES[difficulty]
  return dict(RESOLUTIONS[resolution], resolution=resolution,
              contour_length=contour_length,
              distractor_length=contour_length // 3,
              **EASIER_LEVELS.get(difficulty, {}))


@functools.lru_cache(maxsize=16)
def tables(resolution: int, difficulty: str, margin: int) -> Tables:
  return Tables(settings(resolution, difficulty), margin)


# ---------------------------------------------------------- snake growth
# Batched over rows of flat occupancy views [A, side*side]; `rows` selects the
# rows still being drawn. A snake sees its own view: everything drawn so far
# except its own newest paddle (which touches the next one by design).


def _gather(view, rows, index):
  return view[rows.reshape((-1,) + (1,) * (index.ndim - 1)), index]


def _stamp(view, rows, pos, values):
  index = pos[:, None] + values[1]
  view[rows[:, None], index] = np.maximum(view[rows[:, None], index], values[0])


def _fits(t: Tables, view, rows, pos, stamp):
  """The original's overlap test: max(occupancy + paddle mask) < 1.8."""
  window = _gather(view, rows, pos[:, None] + t.window)
  return (window + t.masks[stamp]).max(1) < 1.8


def _ceil_step(yx, angle, dist):
  return np.stack([np.ceil(yx[:, 0] + dist * np.sin(angle)),
                   np.ceil(yx[:, 1] + dist * np.cos(angle))], 1).astype(np.int64)


def _inside(n, *points):
  return np.all([(p >= 0) & (p < n) for pt in points for p in pt.T], 0)


def _extend(s, t: Tables, rng, view, rows, pivot, angle):
  """One more paddle per row: (ok, head, new pivot, new angle, stamp id)."""
  n = t.n
  pivot = _ceil_step(pivot, angle, s["paddle_length"] + 2 * t.margin)
  hy = pivot[:, :1] + t.heads[:, 0]
  hx = pivot[:, 1:] + t.heads[:, 1]
  inside = (hy >= 0) & (hy < n) & (hx >= 0) & (hx < n)
  flat = t.flat(np.where(inside, hy, 0), np.where(inside, hx, 0))
  turn = np.abs(t.head_angles - angle[:, None])
  turn = np.minimum(turn, 2 * math.pi - turn)
  weight = np.maximum(np.cos(np.minimum(turn * s["continuity"], math.pi / 2)),
                      0) ** 2
  near = _gather(view, rows, flat[:, :, None] + t.disc).max(-1)
  weight *= (1 - near) * inside
  total = weight.sum(1)
  ok = total >= 1e-4
  cmf = np.cumsum(weight, 1) / np.maximum(total, 1e-30)[:, None]
  tries = s["max_paddle_retrial"] + 1
  u = rng.random((len(rows), tries)) * (1 - 1e-9)
  pick = np.minimum((cmf[:, None, :] <= u[:, :, None]).sum(-1), len(t.heads) - 1)
  b = np.arange(len(rows))
  fits = np.stack([_fits(t, view, rows, flat[b, pick[:, i]], 360 + pick[:, i])
                   for i in range(tries)], 1)
  ok &= fits.any(1)
  k = pick[b, fits.argmax(1)]
  head = np.stack([hy[b, k], hx[b, k]], 1)
  return ok, head, pivot, t.head_angles[k], 360 + k


def _paddle(t: Tables, stamp):
  return t.masks[stamp], t.window


def _two_snakes(s, t: Tables, rng, attempts: int):
  """Grows `attempts` independent pairs of target snakes in lockstep.

  Returns the first pair that was completed, as (paddles, origins,
  terminals), paddles = [(owner, y, x, stamp id, contrast)], or None. Taking
  the first success of independent attempts has the distribution of the
  original's redraw-until-success loop.
  """
  n, length, sd = t.n, s["paddle_length"], s["seed_distance"]
  a = np.arange(attempts)
  base = t.blank(s)
  views = [np.tile(base, (attempts, 1)) for _ in range(2)]
  mus = np.array([rng.permutation(list(s["snake_contrasts"]) * 2)[:2]
                  for _ in a])
  pc = np.asarray(s["paddle_contrasts"])
  # Seed 1: a tail where the paddle fits, clear of the band at the edges.
  deg1 = rng.integers(-180, 180, attempts)
  tails = [t.band_tails(s, int(d)) for d in deg1]
  alive = np.array([len(x) > 0 for x in tails])
  pos1 = np.array([x[int(u * len(x))] if len(x) else t.flat(0, 0)
                   for x, u in zip(tails, rng.random(attempts))])
  tail1 = np.stack(np.divmod(pos1, t.side), 1) - t.pad
  angle1 = deg1 * math.pi / 180
  head1 = _ceil_step(tail1, angle1, length)
  pivot1 = _ceil_step(head1, flip(angle1), length + t.margin)
  alive &= _inside(n, head1, pivot1)
  _stamp(views[1], a, pos1, _paddle(t, deg1 + 180))
  # Seed 2: seed_distance from tail 1, not overlapping seed 1.
  tries = s["max_paddle_retrial"] + 1
  around = rng.integers(0, 360, (attempts, tries)) * math.pi / 180
  deg2 = rng.integers(-180, 180, (attempts, tries))
  ok2 = np.zeros((attempts, tries), bool)
  cand = []
  for i in range(tries):
    tail2 = np.round(tail1 + sd * np.stack([np.sin(around[:, i]),
                                            np.cos(around[:, i])], 1))
    tail2 = tail2.astype(np.int64)
    angle2 = deg2[:, i] * math.pi / 180
    head2 = _ceil_step(tail2, angle2, length)
    pivot2 = _ceil_step(head2, flip(angle2), length + t.margin)
    inside = _inside(n, tail2, head2, pivot2)
    pos2 = t.flat(*np.where(inside[:, None], tail2, 0).T)
    ok2[:, i] = inside & _fits(t, views[1], a, pos2, deg2[:, i] + 180)
    cand.append((tail2, pivot2, angle2, pos2, deg2[:, i] + 180))
  alive &= ok2.any(1)
  first = ok2.argmax(1)
  pick = lambda j: np.stack([c[j] for c in cand], 1)[a, first]
  tail2, pivot2, angle2, pos2, stamp2 = (pick(j) for j in range(5))
  _stamp(views[0], a, pos2, _paddle(t, stamp2))
  pivots, angles = [pivot1, pivot2], [angle1, angle2]
  seed_c = pc[rng.integers(len(pc), size=(attempts, 2))] * mus
  record = [(1, tail1, deg1 + 180, seed_c[:, 0]),
            (2, tail2, stamp2.copy(), seed_c[:, 1])]
  terminals = [tail1.copy(), tail2.copy()]
  last = [(pos1.copy(), deg1 + 180), (pos2.copy(), stamp2.copy())]
  for _ in range(s["contour_length"] - 1):
    value = pc[rng.integers(len(pc), size=attempts)]
    for k in (0, 1):
      rows = np.flatnonzero(alive)
      if not len(rows):
        return None
      ok, head, pivot, angle, stamp = _extend(s, t, rng, views[k], rows,
                                              pivots[k][rows], angles[k][rows])
      alive[rows[~ok]] = False
      rows, head, pivot, angle, stamp = (x[ok] for x in (rows, head, pivot,
                                                         angle, stamp))
      pos = t.flat(head[:, 0], head[:, 1])
      _stamp(views[k], rows, last[k][0][rows], _paddle(t, last[k][1][rows]))
      _stamp(views[1 - k], rows, pos, _paddle(t, stamp))
      for arr, new in ((pivots[k], pivot), (angles[k], angle),
                       (terminals[k], head), (last[k][0], pos),
                       (last[k][1], stamp)):
        arr[rows] = new
      hs, ss = np.zeros((attempts, 2), np.int64), np.zeros(attempts, np.int64)
      hs[rows], ss[rows] = head, stamp
      record.append((k + 1, hs, ss, value * mus[:, k]))
  rows = np.flatnonzero(alive)
  if not len(rows):
    return None
  w = rows[0]
  paddles = [(o, int(yx[w, 0]), int(yx[w, 1]), int(st[w]), float(c[w]))
             for o, yx, st, c in record]
  return paddles, (tuple(tail1[w]), tuple(tail2[w])), (
      tuple(terminals[0][w]), tuple(terminals[1][w]))


def _distractor(s, t: Tables, rng, occupied, num_paddles: int, attempts: int):
  """One distractor snake [(y, x, stamp id)] (first of `attempts`), or None."""
  n, length, tries = t.n, s["paddle_length"], s["max_paddle_retrial"] + 1
  a = np.arange(attempts)
  # Seeds: per attempt `tries` orientations (a new one when the paddle would
  # leave the image); tails uniform among free pixels, by rejection sampling
  # (64 draws) and, when that finds none, from the full map.
  degree = rng.integers(-180, 180, (attempts, tries))
  foot = t.footprint_table[degree + 180]
  yx = rng.integers(0, n, (attempts, tries, 64, 2))
  free = ~(occupied[t.flat(yx[..., 0], yx[..., 1])[..., None] +
                    foot[:, :, None, :]] > 0.3).any(-1)
  for i, j in zip(*np.nonzero(~free.any(-1))):
    pixels = np.arange(n * n)
    ok = ~(occupied[t.flat(pixels // n, pixels % n)[:, None] + foot[i, j]]
           > 0.3).any(1)
    if ok.any():
      pixel = rng.choice(np.flatnonzero(ok))
      yx[i, j, 0], free[i, j, 0] = (pixel // n, pixel % n), True
  tail = yx[a[:, None], np.arange(tries), free.argmax(-1)].reshape(-1, 2)
  angle = (degree * math.pi / 180).ravel()
  head = _ceil_step(tail, angle, length)
  pivot = _ceil_step(head, flip(angle), length + t.margin)
  valid = (free.any(-1).ravel() & _inside(n, head, pivot)).reshape(attempts,
                                                                   tries)
  alive = valid.any(1)
  pick = a * tries + valid.argmax(1)
  tail, pivot, angle = tail[pick], pivot[pick], angle[pick]
  stamp = degree.ravel()[pick] + 180
  views = np.tile(occupied, (attempts, 1))
  record = [(tail, stamp)]
  for _ in range(num_paddles - 1):
    rows = np.flatnonzero(alive)
    if not len(rows):
      return None
    ok, head, new_pivot, new_angle, new_stamp = _extend(
        s, t, rng, views, rows, pivot[rows], angle[rows])
    alive[rows[~ok]] = False
    rows = rows[ok]
    last_yx, last_stamp = record[-1]
    _stamp(views, rows, t.flat(last_yx[rows, 0], last_yx[rows, 1]),
           _paddle(t, last_stamp[rows]))
    heads, stamps = np.zeros_like(tail), np.zeros_like(stamp)
    heads[rows], stamps[rows] = head[ok], new_stamp[ok]
    pivot[rows], angle[rows] = new_pivot[ok], new_angle[ok]
    record.append((heads, stamps))
  rows = np.flatnonzero(alive)
  if not len(rows):
    return None
  w = rows[0]
  return [(int(yx[w, 0]), int(yx[w, 1]), int(st[w])) for yx, st in record]


class Drawing(NamedTuple):
  """One image and what the tests check: pixels, label, snake ids, markers."""
  image: np.ndarray  # uint8 [n, n]
  label: int
  owner: np.ndarray  # int16 [n, n]: 1, 2 target snakes, 3.. distractors.
  markers: tuple  # ((y, x), (y, x)): the two marked ends.


def draw(resolution: int, difficulty: str, rng: np.random.Generator,
         label: int, attempts: int = 32) -> Drawing:
  """Draws one image with the given label (1: both markers on one snake)."""
  s = settings(resolution, difficulty)
  margin = int(rng.choice(s["paddle_margins"]))
  t = tables(resolution, difficulty, margin)
  total = 0
  for _ in range(100):  # Batches of attempts, doubled up to 1024 at a time.
    found = _two_snakes(s, t, rng, attempts)
    total += attempts
    if found is not None:
      break
    attempts = min(2 * attempts, 1024)
  else:
    raise RuntimeError(f"no pair of target snakes in {total} tries: {s}")
  paddles, origins, terminals = found
  image = np.zeros(t.side * t.side, np.float32)
  owner = np.zeros(t.side * t.side, np.int16)
  occupied = t.blank(s)

  def put(o, y, x, stamp, contrast):
    window = t.flat(y, x) + t.window
    line = t.lines[stamp] * contrast
    owner[window[(line > image[window]) & (t.lines[stamp] > 0.1)]] = o
    image[window] = np.maximum(image[window], line)
    occupied[window] = np.maximum(occupied[window], t.masks[stamp])

  for paddle in paddles:
    put(*paddle)
  contrasts = np.asarray(s["snake_contrasts"])
  for i in range(s["num_distractor_snakes"]):
    if np.mean(t.crop(occupied) <= 0.3) < 0.01:
      break  # Less than 1% of the image is free: stop, as the original.
    snake = _distractor(s, t, rng, occupied, s["distractor_length"],
                        s["max_distractor_retrial"] + 1)
    for y, x, stamp in snake or ():
      put(3 + i, y, x, stamp, contrasts[rng.integers(len(contrasts))])
  first = int(rng.integers(2))
  markers = (origins[first], terminals[first if label else 1 - first])
  for y, x in markers:
    window = t.flat(y, x) + t.marker_window
    image[window] = np.maximum(image[window], t.marker.ravel())
  image = t.crop(image)
  pixels = np.floor(image / image.max() * 255 + 0.5).astype(np.uint8)
  return Drawing(pixels, label, t.crop(owner).copy(), markers)


def generate(num_images: int, *, resolution: int = 32,
             difficulty: str = "contour_length_14", seed: int = 0,
             start: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, n, n], labels int32 [N]) of images start..start+N-1.

  Image i depends only on (seed, i, resolution, difficulty): batches can be
  made separately, in any order or in parallel, and still agree.
  """
  images = np.zeros((num_images, resolution, resolution), np.uint8)
  labels = np.zeros(num_images, np.int32)
  for i in range(num_images):
    rng = np.random.default_rng([seed, start + i])
    labels[i] = rng.integers(2)
    images[i] = draw(resolution, difficulty, rng, int(labels[i])).image
  return images, labels
