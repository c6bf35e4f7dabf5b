"""From what the user gave (sources, a CAVE datastack, a Neuroglancer link) to a dataset.

One function serves the viewer's command line, ``imagery-gui export`` and File > Open, so
they all accept the same things and fail the same way. Precedence: explicit arguments,
then the Neuroglancer link, then the datastack.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .dataset import Dataset
from .errors import IdWarning, ImageryGuiError, RootIdError
from .segments import ParsedIds, parse_ids


@dataclass
class OpenRequest:
    """What to open, as asked for (command line, File > Open); ``resolve()`` turns it into
    Inputs. ``demo`` fills in whatever is not given from the built-in demo volume."""

    image_source: str | None
    segmentation_source: str | None
    center: list[float] | None
    resolution: list[float] | None
    demo: bool = False
    datastack: str | None = None
    server_address: str | None = None
    auth_token_file: str | None = None
    ngl_url: str | None = None
    timestamp: str | None = None
    materialization_version: int | None = None

    @classmethod
    def from_args(cls, args: Any, demo: bool) -> OpenRequest:
        """From parsed command-line options (the viewer's and ``export``'s share names)."""
        return cls(
            image_source=args.image_source,
            segmentation_source=args.segmentation_source,
            center=list(args.center) if args.center else None,
            resolution=list(args.resolution) if args.resolution else None,
            demo=demo,
            datastack=args.datastack,
            server_address=args.server_address,
            auth_token_file=args.auth_token_file,
            ngl_url=args.ngl_url,
            timestamp=args.timestamp,
            materialization_version=args.materialization_version,
        )

    def describe(self) -> str:
        return (
            self.datastack
            or self.image_source
            or self.segmentation_source
            or ("a Neuroglancer link" if self.ngl_url else "the demo volume")
        )

    def is_local(self) -> bool:
        """Whether opening this touches no network: no datastack or link, and every
        source given is a folder on this machine (the demo's are)."""
        from .source import parse_source

        if self.datastack or self.ngl_url:
            return False
        given = [s for s in (self.image_source, self.segmentation_source) if s]
        if not given and not self.demo:
            return False
        try:
            return all(parse_source(s).local_path is not None for s in given)
        except Exception:  # noqa: BLE001 - a bad path: the open reports it
            return False

    def resolve(self, root_ids: Any = None, log=None) -> Inputs:
        """The Inputs for this request (generates the demo volume on first use)."""
        image_source, seg_source, center = self.image_source, self.segmentation_source, self.center
        if self.demo:
            from .demo import ensure_demo

            demo = ensure_demo(log=log)
            image_source = image_source or demo.image_source
            seg_source = seg_source or demo.segmentation_source
            center = center or list(demo.center)
        return resolve(
            image_source=image_source,
            segmentation_source=seg_source,
            center=center,
            resolution=self.resolution,
            root_ids=root_ids,
            datastack=self.datastack,
            server_address=self.server_address,
            auth_token_file=self.auth_token_file,
            ngl_url=self.ngl_url,
            timestamp=self.timestamp,
            materialization_version=self.materialization_version,
        )


@dataclass
class Inputs:
    """Everything needed to open a view."""

    image_source: str | None = None
    segmentation_source: str | None = None
    center: list[float] | None = None
    resolution: list[float] | None = None  # of the centre (and the view's coordinates)
    root_ids: list[int] = field(default_factory=list)
    hidden_ids: list[int] = field(default_factory=list)
    segment_colors: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    color_seed: int | None = None
    selected_alpha: float | None = None
    not_selected_alpha: float | None = None
    contrast: tuple[float, float] | None = None
    timestamp: Any = None
    token: str | None = None
    datastack: str | None = None
    server_address: str | None = None
    viewer_site: str | None = None
    client: Any = None  # a CAVEclient when a datastack was given
    nm_per_px: float | None = None
    link_state: dict | None = None  # the Neuroglancer state a link held (its annotation layers)
    materialization_version: int | None = None
    # Tokens given as ids (root_ids, the link's segments) that were left out, with why.
    rejected_ids: list[tuple[str, str]] = field(default_factory=list)

    def dataset(self, **kw: Any) -> Dataset:
        return Dataset(
            self.image_source,
            self.segmentation_source,
            resolution=self.resolution,
            secrets=self.token,
            timestamp=self.timestamp,
            **kw,
        )


def parse_timestamp(value: Any) -> Any:
    """ISO 8601 text or unix seconds to a timezone-aware datetime (None stays None)."""
    if value is None or isinstance(value, _dt.datetime):
        return value
    if isinstance(value, (int, float)):
        return _dt.datetime.fromtimestamp(float(value), _dt.UTC)
    text = str(value).strip()
    try:
        return _dt.datetime.fromtimestamp(float(text), _dt.UTC)
    except ValueError:
        pass
    try:
        ts = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ImageryGuiError(
            f"timestamp {text!r} is neither ISO 8601 (2024-06-01T12:00) nor unix seconds"
        ) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=_dt.UTC)


def _warn_rejected(parsed: ParsedIds, what: str) -> None:
    """One warning line naming each token of ``what`` that is not an id (the CLI prints it)."""
    if parsed.rejected:
        warnings.warn(IdWarning(parsed.message(what)), stacklevel=3)


def _needs_token(source: str | None) -> str | None:
    """The server whose CAVE token a source needs (graphene and middleauth sources)."""
    if not source:
        return None
    if source.startswith("graphene://") or "middleauth+" in source:
        inner = source.split("://", 1)[1].replace("middleauth+", "")
        parts = urlsplit(inner)
        return f"{parts.scheme}://{parts.netloc}"
    return None


def link_text(value: str) -> str:
    """A Neuroglancer link or state JSON as given, or read from the file ``value`` names
    (a state saved from Neuroglancer, a text file holding a link)."""
    text = value.strip()
    if not text or text.startswith(("{", "%7B")) or "://" in text or "#" in text:
        return value
    path = Path(text).expanduser()
    if not path.is_file():
        if text.lower().endswith((".json", ".txt")) or "/" in text or "\\" in text:
            raise ImageryGuiError(
                f"no file {path}: give a Neuroglancer link, its state JSON, or the file of a "
                "saved state"
            )
        return value
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageryGuiError(f"cannot read the Neuroglancer state file {path}: {exc}") from None


def resolve(
    *,
    image_source: str | None = None,
    segmentation_source: str | None = None,
    center: Any = None,
    resolution: Any = None,
    root_ids: Any = None,
    datastack: str | None = None,
    server_address: str | None = None,
    auth_token_file: str | None = None,
    ngl_url: str | None = None,
    timestamp: Any = None,
    materialization_version: int | None = None,
) -> Inputs:
    """Combine the ways in; contacts CAVE servers when a datastack or state link is given."""
    from . import cave

    out = Inputs()
    token_file = auth_token_file
    if datastack:
        client, info = cave.connect(datastack, server_address, auth_token_file=token_file)
        out.client = client
        out.datastack = datastack
        out.server_address = info.server_address
        out.image_source = info.image_source
        out.segmentation_source = info.segmentation_source
        out.resolution = list(info.resolution)
        out.viewer_site = info.viewer_site
        out.token = client.auth.token
        if materialization_version is not None:
            out.materialization_version = int(materialization_version)
            out.timestamp = cave.timestamp_for_version(client, materialization_version)
    elif materialization_version is not None:
        raise ImageryGuiError(
            "--materialization-version needs --datastack (the version belongs to one)"
        )
    if ngl_url:
        from .ngl import parse_link

        view = parse_link(
            link_text(ngl_url),
            fetch_state=lambda url: cave.fetch_state_json(url, out.token, token_file),
        )
        out.image_source = view.image_source or out.image_source
        out.segmentation_source = view.segmentation_source or out.segmentation_source
        if view.center is not None:
            out.center = list(view.center)
        if view.resolution is not None:
            out.resolution = list(view.resolution)
        out.root_ids = list(view.segments)
        if view.rejected_segments:
            _warn_rejected(
                ParsedIds((), view.rejected_segments), "the Neuroglancer link's segments"
            )
            out.rejected_ids += view.rejected_segments
        out.hidden_ids = list(view.hidden_segments)
        out.segment_colors = dict(view.segment_colors)
        out.color_seed = view.color_seed
        out.selected_alpha = view.selected_alpha
        out.not_selected_alpha = view.not_selected_alpha
        out.link_state = view.state
        out.contrast = view.contrast
        if view.cross_section_scale and view.resolution:
            out.nm_per_px = view.cross_section_scale * view.resolution[0]
    if image_source:
        out.image_source = image_source
    if segmentation_source:
        out.segmentation_source = segmentation_source
    if center is not None:
        out.center = [float(v) for v in center]
    if resolution is not None:
        out.resolution = [float(v) for v in resolution]
    if root_ids:
        parsed = parse_ids(root_ids)
        if parsed.rejected and not parsed.ids:
            raise RootIdError(f"no segment ids in the root ids given: {parsed.describe()}")
        _warn_rejected(parsed, "the root ids")
        out.root_ids = list(parsed.ids)
        out.rejected_ids += parsed.rejected
    if timestamp is not None:
        out.timestamp = parse_timestamp(timestamp)
    server = _needs_token(out.segmentation_source) or _needs_token(out.image_source)
    if server and out.token is None:
        out.token = cave._find_token(server, None, token_file)
        if not out.token:
            raise cave.AuthenticationError(
                f"the source {out.segmentation_source or out.image_source} needs a CAVE token for "
                f"{server}, and none was found. " + cave.token_help(server)
            )
    return out


def open_dataset(
    inputs: Inputs,
    *,
    timeout_s: float | None = None,
    while_waiting: Any = None,
    **dataset_kw: Any,
) -> Dataset:
    """The dataset of ``inputs`` with its metadata read (``Dataset.open``), waiting at most
    ``timeout_s``; ``while_waiting()`` runs while the first requests are on the wire."""
    from .dataset import start_thread

    ds = inputs.dataset(**dataset_kw)
    opened = start_thread(ds.open)
    if while_waiting is not None:
        while_waiting()
    return opened(timeout=timeout_s)
