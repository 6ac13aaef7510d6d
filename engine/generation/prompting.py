"""Generation requests and prompt composition within the text encoder's token budget.

A :class:`GenerationRequest` says what one still should show (the user's prompt) and
how it should look (genre, director style, camera, lighting, composition, character).
:func:`compose_prompts` turns it, with the project's style bible, into the positive and
negative prompts a Stable Diffusion text encoder reads.

The budget
----------
CLIP's text encoder (SD 1.5 and both SDXL encoders) reads 77 tokens, including the
start and end tokens, so 75 tokens carry the prompt.  Anything past that is silently
cut by diffusers, usually the style words at the end.  :func:`compose_prompts` counts
with the real CLIP BPE tokenizer shipped in ``resources/sd/<family>/tokenizer`` and
packs whole fragments until the budget is full; what did not fit is reported in
:attr:`ComposedPrompt.dropped`.

Priority order (highest first)
------------------------------
1. The user's prompt, always kept.  When it alone is over the budget it is truncated
   at a word boundary with a WARNING naming how many tokens were dropped; with
   ``strict=True`` (or ``GenerationRequest.strict_prompt``) a :class:`ParameterError`
   is raised instead.
2. The character's description, fragment by fragment (comma-separated).
3. Style fragments taken round-robin across the sources, in the order director →
   genre → camera → lighting → composition → style bible: the first fragment of each
   source, then the second of each, and so on, so that no single source crowds out
   the others.  A fragment that does not fit is skipped (and reported) and packing goes
   on with the next, shorter ones.

In the final text, accepted fragments appear in that same source order, because
CLIP gives earlier tokens more weight.  Repeated fragments (case-insensitive) are
kept once.  The negative prompt is packed the same way: the user's negative prompt
first, then the style bible's negatives, the director's, then the genre's.

Presets
-------
Director and genre presets are TOML files we wrote, in ``resources/styles/directors/``
and ``resources/styles/genres/`` (see ``docs/style-and-characters.md``).  Add a file
there to add a preset; :func:`load_presets` validates every file.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.errors import ParameterError
from engine.resources import resources_dir

__all__ = [
    "CLIP_MAX_TOKENS",
    "STYLES_DIR",
    "UPSCALE_PRESETS",
    "ComposedPrompt",
    "GenerationRequest",
    "StylePreset",
    "TokenCounter",
    "approximate_token_counter",
    "clip_token_counter",
    "compose_prompts",
    "get_preset",
    "load_presets",
    "normalise_style_name",
    "preset_ids",
]

log = logging.getLogger(__name__)

#: The CLIP text encoder's context, start and end tokens included.
CLIP_MAX_TOKENS = 77
#: Shipped presets: ``directors/*.toml`` and ``genres/*.toml``.
STYLES_DIR = resources_dir("styles")
#: Names of the upscale presets a request may ask for (see ``engine.generation.upscale``).
UPSCALE_PRESETS = ("web", "high_quality", "broadcast")

#: Counts the tokens of a text *without* the start and end tokens.
TokenCounter = Callable[[str], int]

RGB = tuple[int, int, int]
_KINDS = ("directors", "genres")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True, kw_only=True)
class StylePreset:
    """One director or genre preset from ``resources/styles``.

    Attributes
    ----------
    id : str
        File name without ``.toml`` (``"wes_anderson"``).
    kind : str
        ``"directors"`` or ``"genres"``.
    name, summary : str
        For people (GUI, docs).
    positive, negative : tuple of str
        Prompt fragments, most important first.
    palette : tuple of RGB
        Colours of the look, dark to light (may be empty).
    look : Mapping[str, str]
        Lens, light, palette, composition and grade described in words.
    """

    id: str
    kind: str
    name: str
    summary: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    palette: tuple[RGB, ...] = ()
    look: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def _string_list(where: str, key: str, value: Any, *, required: bool) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if (
        not isinstance(value, list)
        or (required and not value)
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise ParameterError(f"{where}: {key}", value, "a non-empty list of non-empty strings")
    return tuple(v.strip() for v in value)


def _parse_preset(path: Path, kind: str) -> StylePreset:
    where = f"{kind}/{path.name}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ParameterError(where, str(err), "a readable UTF-8 TOML file") from err
    for key in ("name", "summary"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ParameterError(f"{where}: {key}", data.get(key), "a non-empty string")
    palette_raw = data.get("palette", [])
    if not isinstance(palette_raw, list) or not all(
        isinstance(c, str) and _HEX.match(c) for c in palette_raw
    ):
        raise ParameterError(f"{where}: palette", palette_raw, "a list of '#rrggbb' colours")
    look = data.get("look", {})
    if not isinstance(look, dict) or not all(isinstance(v, str) for v in look.values()):
        raise ParameterError(f"{where}: look", look, "a table of strings")
    unknown = set(data) - {"name", "summary", "positive", "negative", "palette", "look"}
    if unknown:
        raise ParameterError(
            f"{where}", sorted(unknown), "only name, summary, positive, negative, palette, look"
        )
    return StylePreset(
        id=path.stem,
        kind=kind,
        name=data["name"].strip(),
        summary=data["summary"].strip(),
        positive=_string_list(where, "positive", data.get("positive"), required=True),
        negative=_string_list(where, "negative", data.get("negative"), required=False),
        palette=tuple((int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)) for c in palette_raw),
        look=MappingProxyType(dict(look)),
    )


@functools.lru_cache(maxsize=32)
def _presets_in(
    folder: Path, kind: str, stamp: tuple[tuple[str, int, int], ...]
) -> Mapping[str, StylePreset]:
    del stamp  # part of the cache key only: an edited or added file is read again
    return MappingProxyType(
        {p.stem: _parse_preset(p, kind) for p in sorted((folder / kind).glob("*.toml"))}
    )


def load_presets(kind: str, *, styles_dir: Path | None = None) -> Mapping[str, StylePreset]:
    """Every preset of one kind, by id (parsed again only when a file changes).

    Parameters
    ----------
    kind : str
        ``"directors"`` or ``"genres"``.
    styles_dir : Path, optional
        Folder holding ``directors/`` and ``genres/``; default the shipped one.

    Raises
    ------
    ParameterError
        Unknown kind, or a preset file that does not parse (naming the file and field).
    """
    if kind not in _KINDS:
        raise ParameterError("kind", kind, f"one of {', '.join(_KINDS)}")
    folder = Path(styles_dir or STYLES_DIR).resolve()
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted((folder / kind).glob("*.toml")))
    return _presets_in(folder, kind, stamp)


def normalise_style_name(name: str) -> str:
    """``"Wes Anderson"`` / ``"wes-anderson"`` → ``"wes_anderson"``."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def get_preset(kind: str, name: str, *, styles_dir: Path | None = None) -> StylePreset:
    """The preset called ``name`` (any case, spaces or hyphens for underscores).

    Raises
    ------
    ParameterError
        No such preset; the message lists the ones there are.
    """
    presets = load_presets(kind, styles_dir=styles_dir)
    key = normalise_style_name(name)
    if key not in presets:
        field_name = "director_style" if kind == "directors" else "genre"
        raise ParameterError(field_name, name, f"one of {', '.join(presets)}")
    return presets[key]


def preset_ids(kind: str) -> tuple[str, ...]:
    """Ids of the shipped presets of one kind (``"directors"`` or ``"genres"``)."""
    return tuple(load_presets(kind))


# --------------------------------------------------------------------------- request


def _frozen_settings(name: str, value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ParameterError(name, value, "a mapping of setting name to value, or None")
    for key, item in value.items():
        if not isinstance(key, str) or not key.strip():
            raise ParameterError(name, key, "non-empty string keys")
        if not isinstance(item, str | int | float | bool) or (
            isinstance(item, float) and not math.isfinite(item)
        ):
            raise ParameterError(f"{name}.{key}", item, "a string, number or true/false")
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class GenerationRequest:
    """What one still should show and how it should look.

    ``prompt`` may be given by position; every other field is keyword-only.  Values
    are validated on construction (:class:`ParameterError` naming the field).

    Attributes
    ----------
    prompt : str
        What the image shows.
    scene_id : str
        Identifies the shot (used in file names and to derive a seed).
    genre : str
        A genre preset id (``"cinematic"``, ``"noir"``, ...; see :func:`load_presets`).
    director_style : str
        A director preset id (``"wes_anderson"``, ...) or ``""`` for none.
    camera_settings, lighting_setup, composition : Mapping[str, Any]
        Free settings rendered into prompt words, e.g. ``{"lens": 35, "aperture": 1.8,
        "shot": "close-up"}``, ``{"key": "soft window light"}``, ``{"rule": "rule of
        thirds"}``.  Values are strings, numbers or booleans.
    character_name : str
        A character profile id or name (see ``CharacterConsistencyManager``).
    style_constraints : bool
        Check the result against the style bible (drift report in the result).
    maintain_character : bool
        Condition generation on the character's reference and check consistency.
    upscale : bool
        Upscale the result with ``upscale_preset``.
    upscale_preset : str
        ``"web"``, ``"high_quality"`` or ``"broadcast"``.
    negative_prompt : str
        What the image must not show (before presets and style bible are added).
    seed : int or None
        0..2**32-1; ``None`` derives one from the style bible's seed family and the
        scene.
    width, height : int
        Multiples of 8 in 64..4096.
    steps : int
        Denoising steps, 1..200.
    guidance_scale : float
        Classifier-free guidance, 0..30.
    variants : int
        How many seeds ``generate_with_variants`` tries, 1..16.
    backend : str
        A backend name, or ``""`` for the configured order.
    strict_prompt : bool
        Raise instead of truncating a prompt over the token budget.
    energy : float
        0..1, the music's intensity under this shot (drives the procedural backend).
    section : str
        The song section under this shot (``"chorus"``...).
    shot_index : int
        Position of the shot in the video (the ``stills`` backend picks the user's
        image by it; :meth:`CinematicImageGenerator.generate_image_sequence` uses the
        position in the list when this is 0).
    """

    prompt: str
    _: KW_ONLY
    scene_id: str = ""
    genre: str = "cinematic"
    director_style: str = ""
    camera_settings: Mapping[str, Any] | None = None
    lighting_setup: Mapping[str, Any] | None = None
    composition: Mapping[str, Any] | None = None
    character_name: str = ""
    style_constraints: bool = False
    maintain_character: bool = False
    upscale: bool = False
    upscale_preset: str = "high_quality"
    negative_prompt: str = ""
    seed: int | None = None
    width: int = 768
    height: int = 432
    steps: int = 25
    guidance_scale: float = 7.0
    variants: int = 1
    backend: str = ""
    strict_prompt: bool = False
    energy: float = 0.5
    section: str = ""
    shot_index: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ParameterError("prompt", self.prompt, "a non-empty description of the image")
        object.__setattr__(self, "prompt", " ".join(self.prompt.split()))
        object.__setattr__(self, "negative_prompt", " ".join(str(self.negative_prompt).split()))
        object.__setattr__(self, "genre", get_preset("genres", self.genre).id)
        if self.director_style:
            object.__setattr__(
                self, "director_style", get_preset("directors", self.director_style).id
            )
        for name in ("camera_settings", "lighting_setup", "composition"):
            object.__setattr__(self, name, _frozen_settings(name, getattr(self, name)))
        if self.upscale_preset not in UPSCALE_PRESETS:
            raise ParameterError(
                "upscale_preset", self.upscale_preset, " or ".join(UPSCALE_PRESETS)
            )
        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < 2**32
        ):
            raise ParameterError("seed", self.seed, "an integer in 0..4294967295, or None")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 64 <= value <= 4096 or value % 8:
                raise ParameterError(name, value, "a multiple of 8 in 64..4096 pixels")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= 200:
            raise ParameterError("steps", self.steps, "an integer in 1..200")
        if not isinstance(self.guidance_scale, int | float) or not (
            0.0 <= self.guidance_scale <= 30.0
        ):
            raise ParameterError("guidance_scale", self.guidance_scale, "0.0..30.0")
        if not isinstance(self.variants, int) or not 1 <= self.variants <= 16:
            raise ParameterError("variants", self.variants, "an integer in 1..16")
        if not isinstance(self.energy, int | float) or not 0.0 <= self.energy <= 1.0:
            raise ParameterError("energy", self.energy, "0.0..1.0")
        if (
            isinstance(self.shot_index, bool)
            or not isinstance(self.shot_index, int)
            or (self.shot_index < 0)
        ):
            raise ParameterError("shot_index", self.shot_index, "an integer >= 0")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of every field."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            if name == "_":
                continue
            value = getattr(self, name)
            out[name] = dict(value) if isinstance(value, Mapping) else value
        return out


# --------------------------------------------------------------------------- tokens


@functools.cache
def _clip_tokenizer(folder: str) -> Any:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    # We count long candidate texts on purpose; silence the "longer than 77" warning.
    tokenizer.model_max_length = 1_000_000
    return tokenizer


def _tokenizer_dir(family: str) -> Path:
    from engine.generation.model_manager.configs import tokenizer_dir

    return Path(tokenizer_dir(family))


def clip_token_counter(family: str = "sd15") -> TokenCounter:
    """Count tokens with the real CLIP BPE tokenizer shipped for ``family``.

    The count excludes the start and end tokens.  The tokenizer is loaded once
    (``transformers.CLIPTokenizer``, offline, from
    ``engine.generation.model_manager.configs.tokenizer_dir(family)``).

    Raises
    ------
    ImportError
        ``transformers`` is not installed (the ``sd`` extra).
    """
    tokenizer = _clip_tokenizer(str(_tokenizer_dir(family)))

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


_PIECE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+", re.IGNORECASE)


def approximate_token_counter(text: str) -> int:
    """A labelled estimate of CLIP's token count, used only without ``transformers``.

    It splits text the way CLIP's pre-tokenizer does (words, single digits,
    punctuation runs) and counts a word of more than 8 letters as one token per 6
    letters, since rare long words break into several BPE pieces.  The prompt then
    only reaches the procedural backend, which has no token limit.
    """
    total = 0
    for piece in _PIECE.findall(text):
        total += math.ceil(len(piece) / 6) if len(piece) > 8 and piece.isalpha() else 1
    return total


def _default_counter() -> TokenCounter:
    try:
        return clip_token_counter("sd15")
    except ImportError:
        log.info("transformers is not installed: prompt tokens are estimated, not counted")
        return approximate_token_counter


# --------------------------------------------------------------------------- composing


@dataclass(frozen=True, kw_only=True)
class ComposedPrompt:
    """Prompts ready for the text encoder.

    Attributes
    ----------
    positive, negative : str
        The prompts.
    tokens_used : int
        Tokens of ``positive`` including start and end (at most ``max_tokens``).
    negative_tokens_used : int
        The same for ``negative``.
    dropped : tuple of str
        Fragments left out for lack of room, as ``"source: fragment"``.
    truncated_tokens : int
        Tokens cut from the user's own prompt (0 unless it alone was over budget).
    """

    positive: str
    negative: str
    tokens_used: int
    dropped: tuple[str, ...] = ()
    negative_tokens_used: int = 0
    truncated_tokens: int = 0


def _split_fragments(text: str) -> list[str]:
    return [part.strip() for part in text.replace("{prompt}", "").split(",") if part.strip()]


def _setting_words(source: str, settings: Mapping[str, Any]) -> list[str]:
    """Turn camera/lighting/composition settings into prompt fragments."""
    out: list[str] = []
    for key, value in settings.items():
        label = key.replace("_", " ").strip()
        if isinstance(value, bool):
            if value:
                out.append(label)
            continue
        text = str(value).strip()
        if not text:
            continue
        numeric = isinstance(value, int | float)
        if source == "camera":
            if key in ("lens", "focal_length"):
                text = f"{text}mm lens" if numeric else text
                text = text if "lens" in text.lower() else f"{text} lens"
            elif key in ("aperture", "f_stop"):
                text = f"f/{text}" if numeric or not text.lower().startswith("f") else text
            elif key == "iso":
                text = f"ISO {text}"
            elif key in ("shot", "shot_type", "framing"):
                text = text if "shot" in text.lower() else f"{text} shot"
            elif numeric:
                text = f"{label} {text}"
        elif numeric:
            text = f"{label} {text}"
        out.append(text)
    return out


def _style_bible_parts(style_bible: Any) -> tuple[list[str], list[str]]:
    if style_bible is None:
        return [], []
    if isinstance(style_bible, Mapping):
        template = style_bible.get("prompt_template", "") or ""
        negatives = style_bible.get("negative_prompt", "") or ""
    else:
        template = getattr(style_bible, "prompt_template", "") or ""
        negatives = getattr(style_bible, "negative_prompt", "") or ""
    if isinstance(negatives, list | tuple):
        negatives = ", ".join(negatives)
    return _split_fragments(str(template)), _split_fragments(str(negatives))


def _fit_words(text: str, budget: int, count: TokenCounter) -> str:
    """The longest prefix of ``text``, cut at a word boundary, within ``budget`` tokens."""
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:  # largest k with count(words[:k]) <= budget
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    if lo > 0:
        return " ".join(words[:lo]).rstrip(",;:")
    first = words[0]  # one enormous "word": cut it by characters
    lo, hi = 0, len(first)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(first[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return first[:lo]


def _lead(
    field_name: str, text: str, budget: int, count: TokenCounter, strict: bool
) -> tuple[str, int]:
    """The user's own text, truncated (or refused in strict mode) when over budget."""
    used = count(text) if text else 0
    if used <= budget:
        return text, 0
    if strict:
        raise ParameterError(
            field_name,
            text if len(text) <= 80 else text[:77] + "...",
            f"at most {budget} CLIP tokens (this one has {used}); shorten it, or leave strict "
            "mode off to have it truncated at a word boundary",
        )
    kept = _fit_words(text, budget, count)
    kept_tokens = count(kept) if kept else 0
    log.warning(
        "%s is %d CLIP tokens, over the text encoder's budget of %d (%d with start/end "
        "tokens): truncated at a word boundary, dropping %d tokens: %r",
        field_name,
        used,
        budget,
        budget + 2,
        used - kept_tokens,
        text[len(kept) :].strip(),
    )
    return kept, used - kept_tokens


def _pack(
    lead: str,
    tiers: Iterable[tuple[str, list[str]]],
    round_robin: list[tuple[str, list[str]]],
    budget: int,
    count: TokenCounter,
) -> tuple[str, int, list[str]]:
    """Pack fragments after ``lead`` in priority order; return text, tokens, dropped."""
    order: list[str] = []  # source names in output order
    accepted: dict[str, list[str]] = {}
    seen = {f.lower() for f in _split_fragments(lead)}
    dropped: list[str] = []

    def text_with(extra: tuple[str, str] | None = None) -> str:
        parts = [lead] if lead else []
        for source in order:
            parts.extend(accepted[source])
            if extra is not None and extra[0] == source:
                parts.append(extra[1])
        if extra is not None and extra[0] not in order:
            parts.append(extra[1])
        return ", ".join(parts)

    def offer(source: str, fragment: str) -> None:
        key = fragment.lower()
        if key in seen:
            return
        if count(text_with((source, fragment))) <= budget:
            if source not in order:
                order.append(source)
                accepted[source] = []
            accepted[source].append(fragment)
            seen.add(key)
        else:
            dropped.append(f"{source}: {fragment}")

    for source, fragments in tiers:
        for fragment in fragments:
            offer(source, fragment)
    # Sources keep their place in the output order even if their first fragment comes late.
    for source, _ in round_robin:
        if source not in order:
            order.append(source)
            accepted[source] = []
    depth = max((len(f) for _, f in round_robin), default=0)
    for rank in range(depth):
        for source, fragments in round_robin:
            if rank < len(fragments):
                offer(source, fragments[rank])
    text = text_with()
    return text, (count(text) if text else 0), dropped


def compose_prompts(
    request: GenerationRequest,
    style_bible: Any = None,
    tokenizer: TokenCounter | None = None,
    *,
    character: str = "",
    max_tokens: int = CLIP_MAX_TOKENS,
    strict: bool | None = None,
    styles_dir: Path | None = None,
) -> ComposedPrompt:
    """Compose the positive and negative prompts for ``request`` within the token budget.

    Parameters
    ----------
    request : GenerationRequest
        The shot.
    style_bible : StyleBible or Mapping, optional
        Supplies ``prompt_template`` (comma-separated style fragments; a ``{prompt}``
        placeholder is ignored) and ``negative_prompt``.
    tokenizer : callable, optional
        Counts tokens without start/end tokens; default the shipped SD 1.5 CLIP
        tokenizer (:func:`clip_token_counter`), or :func:`approximate_token_counter`
        when ``transformers`` is missing.
    character : str
        The character's description (comma-separated fragments).
    max_tokens : int
        The encoder's context including start and end tokens (77 for CLIP).
    strict : bool, optional
        Raise when the user's prompt alone is over budget; default
        ``request.strict_prompt``.
    styles_dir : Path, optional
        Where the presets live; default the shipped ones.

    Returns
    -------
    ComposedPrompt

    Raises
    ------
    ParameterError
        ``max_tokens`` below 3, or (strict mode) a prompt over the budget.

    Examples
    --------
    >>> composed = compose_prompts(  # doctest: +SKIP
    ...     GenerationRequest("a lighthouse at night", director_style="wes_anderson")
    ... )
    >>> composed.positive  # doctest: +SKIP
    'a lighthouse at night, perfectly symmetrical centred composition, cinematic film still, ...'
    """
    if max_tokens < 3:
        raise ParameterError("max_tokens", max_tokens, "at least 3 (start, end and one token)")
    count = tokenizer or _default_counter()
    strict = request.strict_prompt if strict is None else strict
    budget = max_tokens - 2
    genre = get_preset("genres", request.genre, styles_dir=styles_dir)
    director = (
        get_preset("directors", request.director_style, styles_dir=styles_dir)
        if request.director_style
        else None
    )
    bible_positive, bible_negative = _style_bible_parts(style_bible)

    lead, truncated = _lead("prompt", request.prompt, budget, count, strict)
    sources: list[tuple[str, list[str]]] = [
        ("director", list(director.positive) if director else []),
        ("genre", list(genre.positive)),
        ("camera", _setting_words("camera", request.camera_settings or {})),
        ("lighting", _setting_words("lighting", request.lighting_setup or {})),
        ("composition", _setting_words("composition", request.composition or {})),
        ("style bible", bible_positive),
    ]
    positive, used, dropped = _pack(
        lead, [("character", _split_fragments(character))], sources, budget, count
    )

    negative_lead, _ = _lead("negative_prompt", request.negative_prompt, budget, count, strict)
    negative_sources = [
        ("style bible", bible_negative),
        ("director", list(director.negative) if director else []),
        ("genre", list(genre.negative)),
    ]
    negative, negative_used, negative_dropped = _pack(
        negative_lead, negative_sources, [], budget, count
    )
    all_dropped = tuple(dropped + [f"negative {d}" for d in negative_dropped])
    if all_dropped:
        log.debug("prompt budget full; left out %s", "; ".join(all_dropped))
    return ComposedPrompt(
        positive=positive,
        negative=negative,
        tokens_used=used + 2,
        negative_tokens_used=negative_used + 2 if negative else 0,
        dropped=all_dropped,
        truncated_tokens=truncated,
    )
