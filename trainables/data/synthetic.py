"""Procedurally drawn faces labelled with expression, head pose, gender and identity.

Why: the trainer, every task and the search need a dataset that is free, offline, instant and
labelled for every main task. Faces are smooth shapes evaluated on per-pixel coordinate grids,
a whole batch at a time in numpy, so 10,000 faces take seconds. Face i is a function of
(seed, start + i) only, so a set renders identically in one call or in chunks.

Conventions: image x points right and y down; positive yaw turns the face towards image right,
positive pitch tilts it up, positive roll rotates it clockwise on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace

import numpy as np

EXPRESSIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")

# Expression geometry in face units (face half-height is about 0.85), one row per class in
# canonical order. Columns: mouth curve (+ corners up), upper and lower opening, half-width,
# one-corner raise, upper-lip lift, brow height above the eyes, brow tilt (+ inner ends up),
# brows drawn together, eye openness, nose wrinkle.
_GEOMETRY = np.array(
    [
        [0.00, 0.00, 0.00, 0.24, 0.00, 0.00, 0.20, 0.00, 0.00, 1.00, 0.0],  # neutral
        [0.13, 0.01, 0.06, 0.31, 0.00, 0.00, 0.21, 0.00, 0.00, 0.60, 0.0],  # happy
        [-0.10, 0.00, 0.00, 0.22, 0.00, 0.00, 0.21, 0.12, 0.02, 0.80, 0.0],  # sad
        [0.00, 0.09, 0.18, 0.15, 0.00, 0.00, 0.32, 0.02, 0.00, 1.60, 0.0],  # surprise
        [-0.04, 0.03, 0.09, 0.30, 0.00, 0.00, 0.28, 0.10, 0.05, 1.45, 0.0],  # fear
        [-0.05, 0.05, 0.01, 0.23, 0.00, 0.04, 0.14, -0.04, 0.03, 0.70, 1.0],  # disgust
        [-0.04, 0.00, 0.00, 0.20, 0.00, 0.00, 0.12, -0.12, 0.04, 0.65, 0.2],  # anger
        [0.00, 0.00, 0.00, 0.24, 0.10, 0.00, 0.20, 0.00, 0.00, 0.90, 0.0],  # contempt
    ],
    dtype=np.float32,
)
# Per-face jitter (standard deviation) of each column, so neighbouring classes overlap a little.
_JITTER = np.array(
    [0.045, 0.02, 0.03, 0.045, 0.03, 0.018, 0.035, 0.045, 0.018, 0.18, 0.22], dtype=np.float32
)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_LABEL_DTYPES = {
    "expression": np.int64,
    "yaw": np.float32,
    "pitch": np.float32,
    "roll": np.float32,
    "gender": np.int64,
    "identity": np.int64,
}
_N_UNIFORM, _N_NORMAL, _N_IDENTITY = 32, 20, 16


@dataclass(frozen=True)
class SyntheticFaces:
    """A rendered set: images plus every label a main task can use, row-aligned."""

    images: np.ndarray  # uint8 (n, size, size, channels)
    expression: np.ndarray  # int64 (n,), index into EXPRESSIONS
    yaw: np.ndarray  # float32 (n,), degrees
    pitch: np.ndarray  # float32 (n,), degrees
    roll: np.ndarray  # float32 (n,), degrees
    gender: np.ndarray  # int64 (n,), 0 female / 1 male
    identity: np.ndarray  # int64 (n,), 0..num_identities-1


def render_faces(
    n: int,
    size: int = 64,
    channels: int = 1,
    seed: int = 0,
    num_identities: int = 200,
    start: int = 0,
) -> SyntheticFaces:
    """Faces start..start+n-1 of the set named by `seed`, rendered at size x size pixels.

    Labels and geometry of a face depend only on (seed, index, num_identities), not on size or
    channels; the pixel noise depends on the image shape as well.
    """
    if not 48 <= size <= 224 or channels not in (1, 3) or n < 0 or num_identities < 1:
        raise ValueError(f"render_faces: bad arguments n={n} size={size} channels={channels}")
    batch = max(1, 2**20 // (size * size))  # about 4 MB per float32 plane keeps memory flat
    chunks = [
        _face_params(seed, range(b, min(b + batch, start + n)), size, channels, num_identities)
        for b in range(start, start + n, batch)
    ]
    chunks = chunks or [_face_params(seed, range(0), size, channels, num_identities)]
    images = np.concatenate([_render_batch(p, size) for p in chunks])
    labels = {
        name: np.concatenate([getattr(p, name) for p in chunks]).astype(dtype)
        for name, dtype in _LABEL_DTYPES.items()
    }
    return SyntheticFaces(images, **labels)


def _identity_draws(seed: int, ids: np.ndarray) -> np.ndarray:
    """Uniform draws fixing each identity's look; a function of (seed, identity) only."""
    rows = [np.random.default_rng([seed, 1, int(i)]).random(_N_IDENTITY) for i in ids]
    return np.array(rows, np.float32).reshape(len(ids), _N_IDENTITY)


def _face_params(
    seed: int, indices: range, size: int, channels: int, num_identities: int
) -> SimpleNamespace:
    """Every per-face quantity of a batch as (B,) arrays, drawn from one generator per face."""
    gens = [np.random.default_rng([seed, 0, i]) for i in indices]
    u = iter(np.array([g.random(_N_UNIFORM) for g in gens], np.float32).reshape(-1, _N_UNIFORM).T)
    z = np.array([g.standard_normal(_N_NORMAL) for g in gens], np.float32).reshape(-1, _N_NORMAL)
    noise = np.array(
        [g.standard_normal((channels, size, size), np.float32) for g in gens], np.float32
    ).reshape(-1, channels, size, size)
    p = SimpleNamespace(noise=noise)
    p.expression = np.minimum(next(u) * 8, 7).astype(np.int64)
    p.identity = np.minimum(next(u) * num_identities, num_identities - 1).astype(np.int64)
    ids, inverse = np.unique(p.identity, return_inverse=True)
    ident = iter(_identity_draws(seed, ids)[inverse].reshape(-1, _N_IDENTITY).T)

    # Identity: shape, colouring and gender are fixed per person.
    p.gender = (next(ident) < 0.5).astype(np.int64)
    male = p.gender.astype(np.float32)
    p.face_a, p.face_b = 0.56 + 0.08 * next(ident) + 0.06 * male, 0.80 + 0.10 * next(ident)
    p.jaw = 2.0 + 0.9 * male + 0.3 * next(ident)  # superellipse power: squarer jaw for men
    tone, warm = 0.35 + 0.55 * next(ident), next(ident)
    p.skin = tone[:, None] * np.stack(
        [np.ones_like(tone), 0.72 + 0.12 * warm, 0.55 + 0.2 * warm], 1
    )
    p.eye_sep, p.eye_v = 0.22 + 0.08 * next(ident), -0.17 + 0.06 * next(ident)
    p.eye_w, p.mouth_v = 0.11 + 0.03 * next(ident), 0.40 + 0.08 * next(ident)
    hair_tone, blond = 0.05 + 0.45 * next(ident) ** 2, next(ident)
    p.hair = hair_tone[:, None] * np.stack([1 + blond, 0.8 + 0.7 * blond, 0.6 + 0.2 * blond], 1)
    p.hair_len = np.where(male > 0, -0.35, 0.2 + 0.6 * next(ident))  # long hair: women
    p.brow_half = 0.025 + 0.015 * male  # brow half-thickness

    # Expression: class geometry scaled by a random intensity, plus jitter.
    intensity = 0.35 + 0.75 * next(u)
    target = _GEOMETRY[p.expression] - _GEOMETRY[0]
    geo = iter((_GEOMETRY[0] + intensity[:, None] * target + z[:, :11] * _JITTER).T)
    (
        p.curve,
        p.open_up,
        p.open_dn,
        p.mouth_w,
        p.asym,
        p.lift,
        p.brow_h,
        p.brow_tilt,
        p.brow_in,
        p.eye_open,
        p.wrinkle,
    ) = geo
    p.asym_side = np.where(next(u) < 0.5, -1.0, 1.0).astype(np.float32)

    # Pose and placement.
    p.yaw, p.pitch, p.roll = 80 * next(u) - 40, 50 * next(u) - 25, 50 * next(u) - 25
    p.scale, p.tx, p.ty = 0.74 + 0.16 * next(u), 0.16 * next(u) - 0.08, 0.16 * next(u) - 0.08

    # Nuisances: background, lighting, noise, occlusion.
    p.bg = np.stack([next(u), next(u), next(u)], 1)
    angle, mag = 2 * np.pi * next(u), 0.5 * next(u)
    p.bg_gx, p.bg_gy = mag * np.cos(angle), mag * np.sin(angle)
    p.tex_f = z[:, 11:17].reshape(-1, 3, 2) * 1.5  # cycles per image side
    p.tex_phase = 2 * np.pi * np.stack([next(u) for _ in range(3)], 1)
    p.tex_amp = 0.1 * next(u)
    angle, mag = 2 * np.pi * next(u), 0.45 * next(u)
    p.light_x, p.light_y = mag * np.cos(angle), mag * np.sin(angle)
    p.noise_sd = 0.01 + 0.06 * next(u)
    occluded = next(u) < 0.2
    p.occ_x, p.occ_y = 1.2 * next(u) - 0.6, 1.2 * next(u) - 0.6
    p.occ_w = np.where(occluded, 0.15 + 0.25 * next(u), 0.0)  # half-extents; zero: no occluder
    p.occ_h = 0.15 + 0.25 * next(u)
    p.occ_rgb = np.stack([next(u), next(u), next(u)], 1)
    return p


def _c(a: np.ndarray) -> np.ndarray:
    """A per-face (B,) array shaped to broadcast against (B, H, W) pixel planes."""
    return np.asarray(a, np.float32)[:, None, None]


def _colour(rgb: np.ndarray, channels: int) -> np.ndarray:
    """Per-face RGB colours (B, 3) as drawn: RGB itself, or its luminance for greyscale."""
    rgb = np.asarray(rgb, np.float32)
    return rgb if channels == 3 else (rgb * _LUMA).sum(1, keepdims=True)


def _ramp(sd: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of the region sd < 0 (a one-pixel linear edge; k: px per unit)."""
    return np.clip(0.5 - sd * k, 0.0, 1.0)


def _band(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Coverage of lo < v < hi, box-filtered so a band of zero width vanishes smoothly."""
    return np.clip(0.5 + k * (hi - v), 0.0, 1.0) - np.clip(0.5 + k * (lo - v), 0.0, 1.0)


def _ellipse_sd(du: np.ndarray, dv: np.ndarray, ax, ay) -> np.ndarray:
    """Approximate signed distance to an ellipse, (r - 1) / |grad r|: good for thin ones too."""
    qx, qy = du / ax, dv / ay
    r = np.sqrt(qx * qx + qy * qy) + 1e-6
    grad = np.sqrt((qx / ax) ** 2 + (qy / ay) ** 2) / r + 1e-6
    return (r - 1.0) / grad


def _segment_sd(u, v, u0, v0, u1, v1, half) -> np.ndarray:
    """Signed distance to a line segment of half-thickness `half` (a capsule)."""
    eu, ev = u1 - u0, v1 - v0
    t = np.clip(((u - u0) * eu + (v - v0) * ev) / (eu * eu + ev * ev + 1e-9), 0.0, 1.0)
    du, dv = u - u0 - t * eu, v - v0 - t * ev
    return np.sqrt(du * du + dv * dv) - half


def _over(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-blend a flat per-face colour (B, C) over the canvas (B, C, H, W) in place."""
    canvas += alpha[:, None] * (colour[:, :, None, None] - canvas)


def _render_batch(p: SimpleNamespace, size: int) -> np.ndarray:
    """Draw a batch of faces from their parameters; returns uint8 images (B, H, W, C)."""
    channels = p.noise.shape[1]
    colour = partial(_colour, channels=channels)
    g = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    x, y = g[None, None, :], g[None, :, None]
    k = _c(p.scale * size / 2)  # pixels per face unit
    # Inverse pose: image -> head frame (undo shift, scale, roll) -> outline / feature frames.
    px, py = (x - _c(p.tx)) / _c(p.scale), (y - _c(p.ty)) / _c(p.scale)
    roll, yaw, pitch = (np.radians(_c(a)) for a in (p.roll, p.yaw, p.pitch))
    hu, hv = np.cos(roll) * px + np.sin(roll) * py, np.cos(roll) * py - np.sin(roll) * px
    ou, ov = hu / (0.85 + 0.15 * np.cos(yaw)), hv / (0.85 + 0.15 * np.cos(pitch))
    fu = (hu - 0.3 * _c(p.face_a) * np.sin(yaw)) / np.cos(yaw)  # features slide with yaw
    fv = (hv + 0.3 * np.sin(pitch)) / np.cos(pitch)

    canvas = np.empty((len(p.expression), channels, size, size), np.float32)
    canvas[:] = colour(p.bg)[:, :, None, None]
    field = _c(p.bg_gx) * x + _c(p.bg_gy) * y
    for j in range(3):
        fx, fy = (_c(p.tex_f[:, j, i]) for i in (0, 1))
        field = field + _c(p.tex_amp) * np.sin(np.pi * (fx * x + fy * y) + _c(p.tex_phase[:, j]))
    canvas += field[:, None]

    a, b = _c(p.face_a), _c(p.face_b)
    _draw_hair(canvas, ou, ov, a, b, k, p, colour, behind=True)
    power = np.where(ov > 0, _c(p.jaw), np.float32(2.0))
    r = (np.abs(ou / a) ** power + np.abs(ov / b) ** power) ** (1.0 / power)
    skin = _ramp((r - 1.0) * np.minimum(a, b), k)
    _over(canvas, skin, colour(p.skin))
    _draw_hair(canvas, ou, ov, a, b, k, p, colour, behind=False)
    _draw_features(canvas, fu, fv, k, p, colour)
    light = 1.0 + skin * (_c(p.light_x) * px + _c(p.light_y) * py)
    canvas *= light[:, None]

    occ = _band(x, _c(p.occ_x - p.occ_w), _c(p.occ_x + p.occ_w), np.float32(size / 2))
    occ = occ * _band(y, _c(p.occ_y - p.occ_h), _c(p.occ_y + p.occ_h), np.float32(size / 2))
    _over(canvas, occ, colour(p.occ_rgb))
    canvas += p.noise * p.noise_sd[:, None, None, None]
    images = np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8)
    return images.transpose(0, 2, 3, 1)


def _draw_hair(canvas, ou, ov, a, b, k, p, colour, behind: bool) -> None:
    """Hair: long hair behind the face (women), or the cap over the top of the head."""
    if behind:
        sd = np.maximum(_ellipse_sd(ou, ov + 0.04, a + 0.13, b + 0.08), ov - _c(p.hair_len))
    else:
        grow = 0.04 + 0.04 * (1 - _c(p.gender))  # women's cap sits fuller
        hairline = -0.5 * b + 0.15 * ou * ou
        sd = np.maximum(_ellipse_sd(ou, ov + 0.02, a + grow, b + grow), ov - hairline)
    _over(canvas, _ramp(sd, k), colour(p.hair))


def _draw_features(canvas, u, v, k, p, colour) -> None:
    """Eyes, brows, nose and mouth in the feature frame, shaped by the expression geometry."""
    eye_h = 0.055 * np.maximum(_c(p.eye_open), 0.15)
    brow = colour(p.hair * 0.6)
    for side in (-1.0, 1.0):
        cu, cv = side * _c(p.eye_sep), _c(p.eye_v)
        eye = _ramp(_ellipse_sd(u - cu, v - cv, _c(p.eye_w), eye_h), k)
        _over(canvas, eye, colour(np.full_like(p.skin, 0.92)))
        pupil = _ramp(np.sqrt((u - cu) ** 2 + (v - cv) ** 2) - 0.05, k) * eye
        _over(canvas, pupil, colour(np.full_like(p.skin, 0.08)))
        bu, bv, half, tilt = cu - side * _c(p.brow_in), cv - _c(p.brow_h), 0.13, _c(p.brow_tilt)
        sd = _segment_sd(
            u, v, bu + side * half, bv + tilt / 2, bu - side * half, bv - tilt / 2, _c(p.brow_half)
        )
        _over(canvas, _ramp(sd, k), brow)
    shade = colour(p.skin * 0.65)
    nose_top, nose_tip = _c(p.eye_v) + 0.08, _c(p.mouth_v) - 0.16
    _over(canvas, 0.5 * _ramp(_segment_sd(u, v, 0.0, nose_top, 0.0, nose_tip, 0.012), k), shade)
    _over(canvas, _ramp(_segment_sd(u, v, -0.06, nose_tip, 0.06, nose_tip, 0.018), k), shade)
    for dv in (0.05, 0.1):  # disgust: wrinkles across the bridge
        sd = _segment_sd(u, v, -0.06, nose_top + dv, 0.06, nose_top + dv, 0.012)
        _over(canvas, np.clip(_c(p.wrinkle), 0, 1) * _ramp(sd, k), shade)

    width = np.maximum(_c(p.mouth_w), 0.05)
    t = np.clip(u / width, -1.0, 1.0)
    corner = np.maximum(_c(p.asym_side) * t, 0.0)
    mid = _c(p.mouth_v) - _c(p.curve) * t * t - _c(p.asym) * corner * corner
    across = 1.0 - t * t
    top = mid - np.maximum(_c(p.open_up) + _c(p.lift), 0) * across  # lift: disgust
    bottom = mid + np.maximum(_c(p.open_dn), 0) * across
    lip = 0.025 + 0.015 * across
    inside = _ramp(np.abs(u) - width, k)
    _over(canvas, inside * _band(v, top - lip, bottom + lip, k), colour(p.skin * [0.6, 0.35, 0.35]))
    _over(canvas, inside * _band(v, top, bottom, k), colour(np.full_like(p.skin, 0.1)))
