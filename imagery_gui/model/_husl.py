"""HUSL (HSLuv 2.1) to RGB, exactly as ``seaborn.external.husl`` computes it.

ImageryClient colours segments with seaborn's ``husl_palette`` and converts each channel
with ``int(255 * c)``, which truncates: a colour one ulp off can land on the other side of
an integer and change a pixel. So this is seaborn's code path, operation for operation
(same constants, same order of floating-point operations), not a re-derivation; a test
compares it with seaborn over many palettes. Importing seaborn instead costs about 1.5 s and
190 MiB (it brings pandas and matplotlib).

Adapted from seaborn/external/husl.py (husl-colors 2.1.0, MIT licence, Alexei Boronine).
"""

from __future__ import annotations

import math
import operator

_M = [
    [3.2406, -1.5372, -0.4986],
    [-0.9689, 1.8758, 0.0415],
    [0.0557, -0.2040, 1.0570],
]
_REF_U = 0.19784
_REF_V = 0.46834
_REF_Y = 1.00000
_LAB_E = 0.008856
_LAB_K = 903.3


def husl_to_rgb(h: float, s: float, l: float) -> list[float]:  # noqa: E741
    """HUSL ``(hue 0-360, saturation 0-100, lightness 0-100)`` to linear-clipped sRGB 0-1
    (not clipped: seaborn clips afterwards)."""
    return _lch_to_rgb(*_husl_to_lch([h, s, l]))


def _lch_to_rgb(l: float, c: float, h: float) -> list[float]:  # noqa: E741
    return _xyz_to_rgb(_luv_to_xyz(_lch_to_luv([l, c, h])))


def _max_chroma(L: float, H: float) -> float:
    hrad = math.radians(H)
    sinH = math.sin(hrad)
    cosH = math.cos(hrad)
    sub1 = math.pow(L + 16, 3.0) / 1560896.0
    sub2 = sub1 if sub1 > 0.008856 else (L / 903.3)
    result = float("inf")
    for row in _M:
        m1, m2, m3 = row[0], row[1], row[2]
        top = (0.99915 * m1 + 1.05122 * m2 + 1.14460 * m3) * sub2
        rbottom = 0.86330 * m3 - 0.17266 * m2
        lbottom = 0.12949 * m3 - 0.38848 * m1
        bottom = (rbottom * sinH + lbottom * cosH) * sub2
        for t in (0.0, 1.0):
            C = L * (top - 1.05122 * t) / (bottom + 0.17266 * sinH * t)
            if C > 0.0 and result > C:
                result = C
    return result


def _dot_product(a: list[float], b: list[float]) -> float:
    return sum(map(operator.mul, a, b))


def _f_inv(t: float) -> float:
    if math.pow(t, 3.0) > _LAB_E:
        return math.pow(t, 3.0)
    return (116.0 * t - 16.0) / _LAB_K


def _from_linear(c: float) -> float:
    if c <= 0.0031308:
        return 12.92 * c
    return 1.055 * math.pow(c, 1.0 / 2.4) - 0.055


def _xyz_to_rgb(triple: list[float]) -> list[float]:
    xyz = (_dot_product(row, triple) for row in _M)
    return [_from_linear(v) for v in xyz]


def _luv_to_xyz(triple: list[float]) -> list[float]:
    L, U, V = triple
    if L == 0:
        return [0.0, 0.0, 0.0]
    varY = _f_inv((L + 16.0) / 116.0)
    varU = U / (13.0 * L) + _REF_U
    varV = V / (13.0 * L) + _REF_V
    Y = varY * _REF_Y
    X = 0.0 - (9.0 * Y * varU) / ((varU - 4.0) * varV - varU * varV)
    Z = (9.0 * Y - (15.0 * varV * Y) - (varV * X)) / (3.0 * varV)
    return [X, Y, Z]


def _lch_to_luv(triple: list[float]) -> list[float]:
    L, C, H = triple
    Hrad = math.radians(H)
    return [L, math.cos(Hrad) * C, math.sin(Hrad) * C]


def _husl_to_lch(triple: list[float]) -> list[float]:
    H, S, L = triple
    if L > 99.9999999:
        return [100, 0.0, H]
    if L < 0.00000001:
        return [0.0, 0.0, H]
    mx = _max_chroma(L, H)
    return [L, mx / 100.0 * S, H]
