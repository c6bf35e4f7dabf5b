"""Graphene segmentation in the viewer: are the selected root ids still the latest?"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from .jobs import Jobs


class RootStatus(QObject):
    """Checks selected root ids against the chunkedgraph in the background.

    ``outdated`` carries {old id: [latest successors]} for the ids that were edited since
    the view's timestamp (now, unless one was given).
    """

    outdated = Signal(object)  # {id: [successors]}; not dict: PySide6 would need str keys
    failed = Signal(str)

    def __init__(self, jobs: Jobs, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs = jobs
        self._source: str | None = None
        self._token: str | None = None
        self._timestamp: Any = None
        self._client: Any = None
        self._chunkedgraph: Any = None
        self._generation = 0
        self.last_outdated: dict[int, list[int]] = {}

    def configure(
        self, graphene_source: str | None, token: str | None, timestamp: Any, client: Any = None
    ) -> None:
        self._source, self._token, self._timestamp = graphene_source, token, timestamp
        self._client, self._chunkedgraph = client, None
        self.last_outdated = {}

    @property
    def active(self) -> bool:
        return self._source is not None

    def _cg(self) -> Any:
        if self._chunkedgraph is None:
            from ..model.cave import chunkedgraph_for

            if self._client is not None:
                self._chunkedgraph = self._client.chunkedgraph
            else:
                self._chunkedgraph = chunkedgraph_for(self._source, self._token)
        return self._chunkedgraph

    def check(self, ids: list[int]) -> None:
        if not self.active or not ids:
            self.last_outdated = {}
            self.outdated.emit({})
            return
        self._generation += 1
        gen = self._generation

        ids = list(ids)

        def work(progress):
            from ..model.cave import outdated_roots

            return gen, outdated_roots(self._cg(), ids, self._timestamp)

        job = self._jobs.run(work, "check root ids")
        job.succeeded.connect(self._on_job_finished)
        job.failed.connect(self._on_job_failed)

    @Slot(object)
    def _on_job_finished(self, result) -> None:
        gen, outdated = result
        if gen == self._generation:
            self.last_outdated = outdated
            self.outdated.emit(outdated)

    @Slot(object)
    def _on_job_failed(self, exc: object) -> None:
        self.failed.emit(f"could not check root ids against the chunkedgraph: {exc}")
