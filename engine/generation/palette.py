"""Colour palettes for the image backends: from a prompt's words, or from a user's hex list.

A palette is a tuple of RGB triples (0..255 ints), ordered roughly from dark to light.
Prompts that name a mood or a place (``"ocean"``, ``"neon"``, ``"sunset"``...) get a
hand-picked palette for it; any other prompt gets a harmonious palette derived from a
SHA-256 digest of its text, so the same prompt gives the same colours in every process
(Python's built-in ``hash()`` is salted per process and is never used here).

Examples
--------
>>> palette_from_prompt("ocean waves at dawn", n=3)
((8, 27, 56), (23, 127, 150), (255, 243, 223))
>>> parse_palette("#ff8800, #123")
((255, 136, 0), (17, 34, 51))
"""

from __future__ import annotations

import colorsys
import hashlib
import re
from collections.abc import Sequence

from engine.errors import ParameterError

__all__ = ["RGB", "THEMES", "keywords", "palette_from_prompt", "parse_palette", "prompt_words"]

RGB = tuple[int, int, int]

_MAX_COLOURS = 32


def keywords(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text`` as a set (for keyword tables)."""
    return frozenset(text.split())


def _hex(*codes: str) -> tuple[RGB, ...]:
    return tuple((int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)) for c in codes)


# Each theme: (keywords, five colours from darkest to lightest).  The keywords are whole
# words after lower-casing; plural and adjective forms are listed rather than guessed,
# so that "season" never reads as "sea".
THEMES: dict[str, tuple[frozenset[str], tuple[RGB, ...]]] = {
    "ocean": (
        keywords(
            "ocean oceans sea seas water waters wave waves beach shore coast coastal "
            "lake river tide surf underwater marine blue aqua harbor harbour"
        ),
        _hex("#081b38", "#0d4a74", "#177f96", "#6fcfd3", "#e0f6f2"),
    ),
    "sunset": (
        keywords(
            "sunset sunsets dusk fire fires flame flames burning desert deserts dune dunes "
            "sand sahara canyon heat lava ember embers orange"
        ),
        _hex("#2a0e3c", "#7b1e5e", "#d8424b", "#f58a36", "#ffd47a"),
    ),
    "dawn": (
        keywords("dawn sunrise morning daybreak pastel peach soft"),
        _hex("#1c2344", "#5a5e98", "#d98fa6", "#ffbf9e", "#fff3df"),
    ),
    "neon": (
        keywords(
            "neon city cities night nights nighttime urban street streets skyline "
            "downtown cyberpunk metropolis tokyo club electric rave"
        ),
        _hex("#060a1e", "#1b1450", "#00cfff", "#ff2fb4", "#fff07a"),
    ),
    "synthwave": (
        keywords("synthwave vaporwave retro retrowave outrun eighties 80s arcade"),
        _hex("#12062e", "#3d0f5c", "#ff2a6d", "#05d9e8", "#ffb86b"),
    ),
    "forest": (
        keywords(
            "forest forests tree trees wood woods woodland pine pines jungle grove moss "
            "fern leaf leaves green nature meadow valley"
        ),
        _hex("#0a1d13", "#1e4a2b", "#4d7c3a", "#a1c46b", "#e7e4b4"),
    ),
    "autumn": (
        keywords("autumn fall harvest rust maple october"),
        _hex("#24120a", "#6b2a12", "#b5521b", "#e39a3b", "#f6dca0"),
    ),
    "space": (
        keywords(
            "space nebula nebulae galaxy galaxies star stars starry cosmos cosmic universe "
            "planet planets orbit astronaut interstellar galactic purple void"
        ),
        _hex("#05030f", "#1f0f40", "#4c2a8c", "#b24fd0", "#92d3ff"),
    ),
    "gold": (
        keywords(
            "gold golden warm glow glowing amber honey sunlight sunny candle luxury light lights"
        ),
        _hex("#1a0e04", "#5c3610", "#b9761b", "#f3b645", "#fff2c4"),
    ),
    "ice": (
        keywords("ice icy snow snowy frozen frost winter arctic glacier cold crystal"),
        _hex("#0c1a2b", "#2d4a6c", "#7ea8ca", "#cfe6f6", "#f5fbff"),
    ),
    "noir": (
        keywords(
            "monochrome noir black white grey gray greyscale grayscale shadow shadows "
            "silhouette smoke"
        ),
        _hex("#0a0a0b", "#2a2a2d", "#66666b", "#b3b3b6", "#f0f0ee"),
    ),
    "storm": (
        keywords("storm stormy rain rainy thunder lightning cloud clouds fog foggy mist misty"),
        _hex("#0d1117", "#26303d", "#4f6275", "#93a6b5", "#dfe7ec"),
    ),
    "love": (
        keywords("love heart romance romantic rose roses pink kiss valentine"),
        _hex("#2a0614", "#6e1232", "#c2305e", "#f27aa0", "#ffd6e2"),
    ),
    "dark": (
        keywords("dark darkness horror blood evil hell demon red crimson"),
        _hex("#070304", "#2c0609", "#6e0d14", "#b3202a", "#f0a08a"),
    ),
    "dream": (
        keywords("dream dreamy dreams ethereal heaven heavenly angel fantasy magic"),
        _hex("#1e1a3a", "#5b4f8f", "#a48fd0", "#f2b8d8", "#fdf3ff"),
    ),
}

_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def prompt_words(prompt: str) -> list[str]:
    """Split a prompt into lower-case words, in order.

    Parameters
    ----------
    prompt : str
        Any text.

    Returns
    -------
    list of str
        The words; hyphenated words are kept whole *and* split into their parts.

    Examples
    --------
    >>> prompt_words("Neon-lit City, at NIGHT")
    ['neon-lit', 'neon', 'lit', 'city', 'at', 'night']
    """
    words: list[str] = []
    for match in _WORD.findall(prompt.lower()):
        words.append(match)
        if "-" in match:
            words.extend(match.split("-"))
    return words


def _themes_in(prompt: str) -> list[str]:
    """Theme names the prompt mentions, most mentioned first, then earliest first."""
    words = prompt_words(prompt)
    hits: dict[str, tuple[int, int]] = {}
    for position, word in enumerate(words):
        for theme, (keywords, _colours) in THEMES.items():
            if word in keywords:
                count, first = hits.get(theme, (0, position))
                hits[theme] = (count + 1, first)
    return sorted(hits, key=lambda t: (-hits[t][0], hits[t][1]))


def _digest(prompt: str) -> bytes:
    return hashlib.sha256(" ".join(prompt_words(prompt)).encode("utf-8")).digest()


def _hls(h: float, lightness: float, s: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(h % 1.0, min(max(lightness, 0.0), 1.0), min(max(s, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def _hashed_palette(prompt: str) -> tuple[RGB, ...]:
    """Five colours in a classic harmony (analogous, complementary, triadic, split)."""
    d = _digest(prompt)
    hue = int.from_bytes(d[0:2], "big") / 65536.0
    scheme = d[2] % 4
    sat = 0.45 + 0.35 * d[3] / 255.0
    offsets = {
        0: (0.0, 0.04, 0.08, -0.05, 0.12),  # analogous
        1: (0.0, 0.0, 0.5, 0.02, 0.5),  # complementary
        2: (0.0, 0.33, 0.0, 0.67, 0.33),  # triadic
        3: (0.0, 0.42, 0.0, 0.58, 0.08),  # split complementary
    }[scheme]
    lightness = (0.09, 0.24, 0.45, 0.66, 0.86)
    sats = (sat * 0.8, sat, sat * 1.1, sat, sat * 0.7)
    return tuple(_hls(hue + o, li, s) for o, li, s in zip(offsets, lightness, sats, strict=True))


def _resample(colours: Sequence[RGB], n: int) -> tuple[RGB, ...]:
    """Pick or interpolate ``n`` colours spread evenly along ``colours``."""
    if n == len(colours):
        return tuple(colours)
    if n == 1:
        return (colours[len(colours) // 2],)
    out: list[RGB] = []
    last = len(colours) - 1
    for i in range(n):
        pos = i * last / (n - 1)
        lo = min(int(pos), last - 1)
        t = pos - lo
        a, b = colours[lo], colours[lo + 1]
        out.append(
            (
                round(a[0] + (b[0] - a[0]) * t),
                round(a[1] + (b[1] - a[1]) * t),
                round(a[2] + (b[2] - a[2]) * t),
            )
        )
    return tuple(out)


def palette_from_prompt(prompt: str, *, n: int = 5) -> tuple[RGB, ...]:
    """Pick a harmonious palette for a prompt.

    The theme most often named in the prompt (ties: the one named first) gives the
    palette; when a second theme is named, its lightest colour replaces the last one as
    an accent ("sunset over the ocean" gets ocean blues with a warm highlight).  A
    prompt that names no theme gets a palette derived from a SHA-256 digest of its
    words, stable across processes and platforms.

    Parameters
    ----------
    prompt : str
        The shot's text prompt (case and punctuation are ignored).
    n : int, optional
        Number of colours, 1..32 (default 5).

    Returns
    -------
    tuple of (int, int, int)
        ``n`` RGB triples ordered roughly from darkest to lightest.

    Raises
    ------
    ParameterError
        If ``n`` is outside 1..32.

    Examples
    --------
    >>> palette_from_prompt("neon city at night")[2]
    (0, 207, 255)
    """
    if not isinstance(n, int) or isinstance(n, bool) or not (1 <= n <= _MAX_COLOURS):
        raise ParameterError("n", n, f"an integer in 1..{_MAX_COLOURS}")
    themes = _themes_in(prompt)
    if themes:
        colours = list(THEMES[themes[0]][1])
        if len(themes) > 1:
            colours[-1] = THEMES[themes[1]][1][-1]
    else:
        colours = list(_hashed_palette(prompt))
    return _resample(colours, n)


_HEX_TOKEN = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
_ALLOWED = "comma-separated hex colours such as '#ff8800,#112233' (or '#f80')"


def parse_palette(spec: str) -> tuple[RGB, ...]:
    """Parse a user's palette such as ``"#ff8800,#112233"``.

    Colours are separated by commas, semicolons or whitespace; each is six (or three)
    hex digits with an optional leading ``#``.

    Parameters
    ----------
    spec : str
        The palette text.

    Returns
    -------
    tuple of (int, int, int)
        The colours, in the order given.

    Raises
    ------
    ParameterError
        If ``spec`` is not a string, holds no colour, holds more than 32, or any item is
        not a hex colour; the message names the offending item.

    Examples
    --------
    >>> parse_palette("ff8800 112233")
    ((255, 136, 0), (17, 34, 51))
    """
    if not isinstance(spec, str):
        raise ParameterError("palette", spec, _ALLOWED)
    tokens = [t for t in re.split(r"[\s,;]+", spec.strip()) if t]
    if not tokens:
        raise ParameterError("palette", spec, _ALLOWED + ", at least one colour")
    if len(tokens) > _MAX_COLOURS:
        raise ParameterError("palette", spec, f"at most {_MAX_COLOURS} colours")
    colours: list[RGB] = []
    for token in tokens:
        match = _HEX_TOKEN.fullmatch(token)
        if match is None:
            raise ParameterError("palette colour", token, _ALLOWED)
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        colours.append((int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)))
    return tuple(colours)
