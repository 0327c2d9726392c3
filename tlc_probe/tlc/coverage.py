"""Whether TLC did anything: the local sites whose window covered every map they saw.

A local site whose window spans its whole feature map computes the global statistic:
at that input size TLC changes nothing there. When that holds for every site (test
images no larger than ``base_size``, e.g. a 256-trained model on 256 x 320 images with
the default 384-px base), the ``tlc`` regime equals ``whole`` and a figure would show red
hiding blue; :func:`watch_coverage` lets a job notice and say so.

Example::

    with watch_coverage(tlc_model) as cov:
        tlc_model(x)
    if cov.noop:
        warnings.warn(cov.message())
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from ..sites import list_sites, recording_sizes


class Coverage:
    """The map sizes each local site of a converted model was called on, and what they
    mean: :attr:`local_sites` (a window smaller than some map: TLC acted there),
    :attr:`covered_sites` (called, window always covering the map: global there),
    :attr:`noop` (sites were called and none acted)."""

    def __init__(self, windows: dict[str, tuple[int, int]]) -> None:
        self.windows = windows  # site -> (k_h, k_w)
        self.seen: dict[str, set[tuple[int, int]]] = {name: set() for name in windows}

    def _covers(self, name: str, size: tuple[int, int]) -> bool:
        kh, kw = self.windows[name]
        return kh >= size[0] and kw >= size[1]

    @property
    def local_sites(self) -> list[str]:
        """Sites whose window was smaller than at least one map they saw."""
        return [n for n, seen in self.seen.items() if any(not self._covers(n, s) for s in seen)]

    @property
    def covered_sites(self) -> list[str]:
        """Sites that were called and whose window covered every map they saw."""
        return [n for n, seen in self.seen.items() if seen and n not in self.local_sites]

    @property
    def noop(self) -> bool:
        """True when some site was called and TLC acted at none: the converted model
        computed what the global one does."""
        return bool(self.covered_sites) and not self.local_sites

    def message(self, where: str = "") -> str:
        """A sentence for a warning or a report: which sites stayed global and why."""
        cov = self.covered_sites
        name = cov[0]
        maps = sorted(self.seen[name], key=lambda s: s[0] * s[1])
        head = "TLC changed nothing" if self.noop else f"TLC left {len(cov)} site(s) global"
        return (
            f"{head}{' ' + where if where else ''}: the window of "
            f"{'every' if self.noop else 'each of'} {len(cov)} site(s) covers its whole "
            f"feature map (e.g. {name}: window {self.windows[name][0]}x"
            f"{self.windows[name][1]}, map {maps[-1][0]}x{maps[-1][1]}); the images are no "
            "larger than base_size, so local and global statistics coincide. Use larger "
            "test images or a smaller base_size to see TLC act."
        )


@contextmanager
def watch_coverage(tlc_model: nn.Module) -> Iterator[Coverage]:
    """While the ``with`` block runs, record the maps every local site of ``tlc_model``
    (a :func:`~tlc_probe.convert` result) is called on; yields the :class:`Coverage`,
    complete once the block ends. A model without local sites yields an empty one
    (``noop`` False)."""
    sites = [s for s in list_sites(tlc_model) if s.local and hasattr(s.module, "kernel_size")]
    cov = Coverage({s.name: tuple(s.module.kernel_size) for s in sites})
    with recording_sizes(sites) as seen:
        cov.seen = seen
        yield cov
