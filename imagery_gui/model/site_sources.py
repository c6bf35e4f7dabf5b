"""Where a site table comes from: a file, a CAVE synapse query, or a link's annotations.

One function for the viewer, ``imagery-gui export`` and batch, so ``--sites``,
``--synapses-of`` and a link's annotation layers mean the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .inputs import Inputs
from .sites import SiteTable, SiteTableError, read_sites


def load_sites(
    inputs: Inputs,
    default_resolution: Sequence[float],
    *,
    path: str | None = None,
    resolution: Sequence[float] | None = None,
    synapses_of: int | str | None = None,
    synapse_table: str | None = None,
) -> SiteTable | None:
    """The site table asked for, or None when none was (and a link holds no annotations).

    ``synapses_of`` runs ``synapse_query`` through the datastack's caveclient, pinned to the
    materialization version of the view when one was given, else to its timestamp, else to
    the latest version (recorded in the table's source)."""
    if path and synapses_of is not None:
        raise SiteTableError("give --sites FILE or --synapses-of ROOT_ID, not both")
    if path:
        return read_sites(path, resolution=resolution, default_resolution=default_resolution)
    if synapses_of is not None:
        if inputs.client is None:
            raise SiteTableError(
                "--synapses-of needs --datastack NAME: the synapse tables live in a CAVE datastack"
            )
        from .sites_cave import synapses_of as query

        version = inputs.materialization_version
        return query(
            inputs.client,
            synapses_of,
            synapse_table,
            materialization_version=version,
            timestamp=inputs.timestamp if version is None else None,
        )
    from .sites_ngl import sites_from_link

    link: Any = inputs.link_state
    return sites_from_link(link)
