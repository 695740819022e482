"""Feed integrity: sequence gaps, duplicates, bad values and silent venues, per batch of MD_EVENT.

``FeedIntegrity`` sits between the feed handlers and the books. Each batch goes through
``check`` (a keep mask) or ``filter`` (the records to apply, gaps turned into STATUS_GAP
records the books understand); ``take_gaps`` says which streams need a new snapshot;
``silence`` marks venues that went quiet; ``health`` is one ``FEED_HEALTH`` row per venue,
flat and fixed-size, for shared memory::

    integ = FeedIntegrity(n_venues=3, n_instruments=500, silence_ns=2_000_000_000)
    batch = integ.filter(buf.view(), now_ns)      # or: keep = integ.check(buf.view(), now_ns)
    books.apply_batch(batch)
    for venue, channel, instrument in integ.take_gaps():
        ask_for_snapshot(venue, instrument)
    for venue in integ.silence(now_ns):           # every so often (each loop turn is fine)
        ...

Theory of operation
-------------------
A *stream* is one venue, channel and instrument: sequence numbers (MD_EVENT ``seq``, FIX
RptSeq) count per stream, as ``engine.venue.exchange`` numbers them per subscription and
symbol, and as ``engine.feeds.simvenues`` does. Each stream is UNSYNCED (nothing trusted yet),
LIVE (``last`` is the last sequence number applied) or STALE (records were lost: only a
snapshot can make the book right again).

- A snapshot starts with a QUOTE CLEAR flagged F_SNAPSHOT: whatever the stream's state, it
  becomes LIVE with ``last`` = the snapshot's ``seq`` (the last update it covers; 0 for a
  fresh subscription: the venue numbers from 1 again, so even a lower number resets). The
  snapshot's other records (same ``seq``, F_SNAPSHOT) pass while the stream is LIVE at that
  number; one without its CLEAR before it is dropped (``out_of_order``).
- Any other record with ``seq`` > 0 on a LIVE stream: ``last + 1`` is applied; a higher number
  is a *gap*: counted, the stream goes STALE, it is reported (``take_gaps``, and ``filter``
  puts a STATUS_GAP record in the gap record's place, ``aux`` = the number expected), and the
  record is dropped; ``seq == last`` is a ``duplicate`` (a resend), ``seq < last`` is
  ``out_of_order`` (late, or a resend of older ones): both dropped, the stream stays LIVE.
- Records of a STALE stream, and of an UNSYNCED one when ``require_snapshot`` (the default: a
  book built from updates alone misses what came before), are dropped until the snapshot
  (``stale_dropped``). With ``require_snapshot=False`` the first sequenced record adopts the
  stream's numbering. Records with ``seq`` 0 are unsequenced: no check, dropped only while
  the stream is STALE (or UNSYNCED and a snapshot is required).
- STATUS records pass (no sequence): they carry the venue's own news.
- Values first, before any sequence logic, the first failing check counted: venue id out of
  range (``unknown_venue``: no row to count it in), instrument id (``rej_instrument``),
  channel (``rej_channel``), kind/side/action out of MD_EVENT's ranges (``rej_field``), then
  price and size: a QUOTE NEW/CHANGE and a TRADE need price > 0 and size > 0 (the integer
  ticks have no NaN: a NaN that became ticks is a negative or zero), a DELETE needs them
  >= 0 (0 is fine), a CLEAR is not looked at (``rej_price``/``rej_size``). A rejected record
  takes no sequence number: if it carried one, the next good record shows the gap.
- ``silence(now_ns)``: a venue with no record (of any kind, kept or not) for ``silence_ns``
  gets ``stale`` = 1 and ``silences`` + 1; its next record clears ``stale``. A silence is not
  a gap: nothing is known to be lost, so its streams stay LIVE (the caller may still want
  snapshots: ``silence`` returns the venues that just went silent). Every venue starts stale
  (nothing heard yet).
- ``rate_hz``: records kept per second over the last complete window of at least one second
  (windows roll at ``check``/``silence`` calls).

Cost: one compiled pass (``_check_kernel``, numba) over the batch does the value checks, the
sequence logic and the per-venue counters. Whole-array numpy expressions were the first idea,
but a live batch is a few records, where each numpy call's fixed cost (~1 µs, two dozen calls)
is most of the time; the kernel is about one call's cost plus a few ns a record, in replay as
in live. ``_check_kernel.py_func`` is the plain-Python reference the tests hold it to.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.core.records import FEED_HEALTH
from engine.core.events import (
    ASK,
    CLEAR,
    DELETE,
    F_SNAPSHOT,
    MD_EVENT,
    QUOTE,
    SELL,
    STATUS,
    STATUS_GAP,
    TRADE,
)

__all__ = ["FEED_HEALTH", "LIVE", "STALE", "UNSYNCED", "FeedIntegrity"]


#: Stream states (``FeedIntegrity.state``).
UNSYNCED, LIVE, STALE = 0, 1, 2

_WINDOW_NS = 1_000_000_000


def _check_kernel(rec, now_ns, n_channels, n_instruments, last, state, health, keep, gap,
                  require_snapshot, misc):
    """One pass over ``rec`` (MD_EVENT): ``keep[i]``, ``gap[i]`` (the seq expected where a
    gap was found at record i, else -1), counters into ``health`` and ``misc[0]`` (records
    of no venue). Returns the gaps found. Records and rows are read as ``r["field"]``, which
    both numba and numpy (the plain-Python reference) take."""
    n_venues = health.shape[0]
    gaps = 0
    one = np.uint64(1)
    zero = np.uint64(0)
    for i in range(rec.shape[0]):
        r = rec[i]
        keep[i] = False
        gap[i] = -1
        v = np.int64(r["venue"])
        if v >= n_venues:
            misc[0] += 1  # no row to count it in
            continue
        h = health[v]
        if r["recv_ns"] > h["last_recv_ns"]:
            h["last_recv_ns"] = r["recv_ns"]
        h["stale"] = 0  # heard from
        # -- values: the first failing check is counted
        ins = np.int64(r["instrument"])
        if ins >= n_instruments:
            h["rej_instrument"] += 1
            continue
        ch = np.int64(r["channel"])
        if ch >= n_channels:
            h["rej_channel"] += 1
            continue
        kind = r["kind"]
        action = r["action"]
        side = r["side"]
        if kind == QUOTE:
            if side > ASK or action > CLEAR:
                h["rej_field"] += 1
                continue
            if action != CLEAR:
                if action == DELETE:
                    if r["price"] < 0:
                        h["rej_price"] += 1
                        continue
                    if r["size"] < 0:
                        h["rej_size"] += 1
                        continue
                else:
                    if r["price"] <= 0:
                        h["rej_price"] += 1
                        continue
                    if r["size"] <= 0:
                        h["rej_size"] += 1
                        continue
        elif kind == TRADE:
            if side > SELL:
                h["rej_field"] += 1
                continue
            if r["price"] <= 0:
                h["rej_price"] += 1
                continue
            if r["size"] <= 0:
                h["rej_size"] += 1
                continue
        elif kind == STATUS:
            if action > STATUS_GAP:
                h["rej_field"] += 1
                continue
            keep[i] = True  # the venue's own news: no sequence
            h["events"] += 1
            h["window_events"] += 1
            continue
        else:
            h["rej_field"] += 1
            continue
        # -- sequence, per venue/channel/instrument stream
        k = (v * n_channels + ch) * n_instruments + ins
        st = state[k]
        seq = r["seq"]
        if r["flags"] & F_SNAPSHOT:
            if kind == QUOTE and action == CLEAR:
                if st == STALE:
                    h["stale_streams"] -= 1
                state[k] = LIVE
                last[k] = seq
                if side == 0:
                    h["snapshots"] += 1
            elif st != LIVE:
                h["stale_dropped"] += 1
                continue
            elif seq != last[k]:
                h["out_of_order"] += 1
                continue
        elif st == STALE or (st == UNSYNCED and require_snapshot):
            h["stale_dropped"] += 1
            continue
        elif seq != zero:
            if st == UNSYNCED:
                state[k] = LIVE
                last[k] = seq
            else:
                nxt = last[k] + one
                if seq == nxt:
                    last[k] = seq
                elif seq > nxt:
                    state[k] = STALE
                    h["stale_streams"] += 1
                    h["gaps"] += 1
                    gap[i] = np.int64(nxt)
                    gaps += 1
                    continue
                elif seq == last[k]:
                    h["duplicates"] += 1
                    continue
                else:
                    h["out_of_order"] += 1
                    continue
        keep[i] = True
        h["events"] += 1
        h["window_events"] += 1
        if r["exch_ns"] > h["last_exch_ns"]:
            h["last_exch_ns"] = r["exch_ns"]
    _roll(health, now_ns)
    return gaps


def _roll(health, now_ns):
    """Close every venue's rate window that is at least a second old."""
    for v in range(health.shape[0]):
        h = health[v]
        if h["window_start_ns"] < 0:
            h["window_start_ns"] = now_ns
        elif now_ns - h["window_start_ns"] >= _WINDOW_NS:
            h["rate_hz"] = h["window_events"] * 1e9 / (now_ns - h["window_start_ns"])
            h["window_events"] = 0
            h["window_start_ns"] = now_ns


def _silence_kernel(health, now_ns, silence_ns, went):
    """Mark venues silent for ``silence_ns``; ``went[v]`` = 1 for those that just did."""
    n = 0
    for v in range(health.shape[0]):
        h = health[v]
        went[v] = 0
        if h["stale"] == 0 and now_ns - h["last_recv_ns"] >= silence_ns:
            h["stale"] = 1
            h["silences"] += 1
            went[v] = 1
            n += 1
    _roll(health, now_ns)
    return n


# both kernels call the compiled ``_roll`` (also from their plain-Python forms)
_roll = njit(cache=True, nogil=True)(_roll)
_check_nb = njit(cache=True, nogil=True)(_check_kernel)
_silence_nb = njit(cache=True, nogil=True)(_silence_kernel)


class FeedIntegrity:
    """Sequence and value checks per venue/channel/instrument stream (module docstring)."""

    def __init__(self, n_venues: int, n_instruments: int, silence_ns: int, *,
                 n_channels: int = 1, require_snapshot: bool = True,
                 venue_names: list[str] | None = None, compiled: bool = True) -> None:
        if not 1 <= n_venues <= 256:
            raise ValueError(f"n_venues must be 1..256 (MD_EVENT.venue is u1), was {n_venues}")
        if n_instruments < 1 or n_channels < 1:
            raise ValueError(f"n_instruments and n_channels must be >= 1, were "
                             f"{n_instruments} and {n_channels}")
        if silence_ns <= 0:
            raise ValueError(f"silence_ns must be > 0, was {silence_ns}")
        self.n_venues = n_venues
        self.n_instruments = n_instruments
        self.n_channels = n_channels
        self.silence_ns = int(silence_ns)
        self.require_snapshot = require_snapshot
        #: FEED_HEALTH, one row per venue: counters, staleness, rate (updated in place)
        self.health = np.zeros(n_venues, dtype=FEED_HEALTH)
        self.health["stale"] = 1
        self.health["window_start_ns"] = -1
        if venue_names is not None:
            if len(venue_names) != n_venues:
                raise ValueError(f"venue_names has {len(venue_names)} names for {n_venues} "
                                 f"venues")
            self.health["venue"] = [n.encode("ascii", "replace")[:16] for n in venue_names]
        n_streams = n_venues * n_channels * n_instruments
        #: per stream: UNSYNCED / LIVE / STALE, and the last sequence number applied
        self.state = np.zeros(n_streams, dtype=np.int8)
        self.last = np.zeros(n_streams, dtype=np.uint64)
        self._misc = np.zeros(1, dtype=np.int64)  # [records of no venue]
        self._batch_gaps = 0
        self._gaps: list[tuple[int, int, int]] = []
        self._keep = np.zeros(0, dtype=np.bool_)
        self._gap = np.zeros(0, dtype=np.int64)
        self._went = np.zeros(n_venues, dtype=np.uint8)
        self._check = _check_nb if compiled else _check_kernel
        self._silence = _silence_nb if compiled else _silence_kernel

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the check and silence kernels now, on a
        throwaway one-stream copy: this one's counters and clocks are untouched."""
        probe = FeedIntegrity(1, 1, self.silence_ns, compiled=self._check is _check_nb)
        probe.filter(np.zeros(0, dtype=MD_EVENT), 0)
        probe.silence(0)

    # -- BATCHES ---------------------------------------------------------------------------------
    def check(self, records: np.ndarray, now_ns: int) -> np.ndarray:
        """Check a batch (MD_EVENT, in arrival order); return the keep mask (a bool array of
        the batch's length, reused by the next call: copy it to keep it)."""
        rec = np.asarray(records)
        if rec.dtype != MD_EVENT or rec.ndim != 1:
            raise TypeError(f"records must be a 1-d MD_EVENT array, was {rec.dtype} "
                            f"{rec.shape}")
        n = rec.shape[0]
        if self._keep.shape[0] < n:
            size = max(n, 2 * self._keep.shape[0], 256)
            self._keep = np.zeros(size, dtype=np.bool_)
            self._gap = np.zeros(size, dtype=np.int64)
        keep, gap = self._keep[:n], self._gap[:n]
        gaps = self._check(rec, now_ns, self.n_channels, self.n_instruments, self.last,
                           self.state, self.health, keep, gap, self.require_snapshot,
                           self._misc)
        self._batch_gaps = gaps
        if gaps:
            at = np.flatnonzero(gap >= 0)
            self._gaps += zip(rec["venue"][at].tolist(), rec["channel"][at].tolist(),
                              rec["instrument"][at].tolist())
        return keep

    def filter(self, records: np.ndarray, now_ns: int) -> np.ndarray:
        """``check``, then a new array of the records to apply: the kept ones, and in each
        gap record's place a STATUS_GAP for its venue and instrument (``seq``: the number
        that came, ``aux``: the one expected), so the books exclude that venue's book until
        its snapshot."""
        keep = self.check(records, now_ns)
        if not self._batch_gaps:
            return np.asarray(records)[keep]
        gap = self._gap[:keep.shape[0]]
        take = keep | (gap >= 0)
        out = np.asarray(records)[take]
        g = gap[take]
        at = g >= 0
        out["kind"][at] = STATUS
        out["action"][at] = STATUS_GAP
        out["side"][at] = 0
        out["level"][at] = 0
        out["flags"][at] = 0
        out["price"][at] = 0
        out["size"][at] = 0
        out["aux"][at] = g[at]
        return out

    def take_gaps(self) -> list[tuple[int, int, int]]:
        """The streams that went STALE since the last call, as (venue, channel, instrument),
        in the order found: each needs a snapshot."""
        out, self._gaps = self._gaps, []
        return out

    # -- TIME ------------------------------------------------------------------------------------
    def silence(self, now_ns: int) -> list[int]:
        """Mark the venues with no record for ``silence_ns`` stale; return those that just went
        silent (each counted once per silence in ``silences``)."""
        n = self._silence(self.health, now_ns, self.silence_ns, self._went)
        return np.flatnonzero(self._went).tolist() if n else []

    # -- STATE -----------------------------------------------------------------------------------
    @property
    def unknown_venue(self) -> int:
        """Records whose venue id is out of range (no FEED_HEALTH row to count them in)."""
        return int(self._misc[0])

    def stream_state(self, venue: int, instrument: int, channel: int = 0) -> int:
        """UNSYNCED, LIVE or STALE."""
        return int(self.state[self._stream(venue, channel, instrument)])

    def is_stale(self, venue: int, instrument: int, channel: int = 0) -> bool:
        """True unless the stream is LIVE and its venue is not silent."""
        return self.stream_state(venue, instrument, channel) != LIVE \
            or bool(self.health["stale"][venue])

    def counters(self, venue: int) -> dict[str, int]:
        """One venue's FEED_HEALTH row as a dict (for logs and tests)."""
        row = self.health[venue]
        return {name: (row[name].decode("ascii", "replace") if name == "venue"
                       else row[name].item())
                for name in FEED_HEALTH.names if name != "pad"}

    def _stream(self, venue: int, channel: int, instrument: int) -> int:
        if not (0 <= venue < self.n_venues and 0 <= channel < self.n_channels
                and 0 <= instrument < self.n_instruments):
            raise IndexError(f"no stream venue {venue} channel {channel} instrument "
                             f"{instrument} (venues {self.n_venues}, channels "
                             f"{self.n_channels}, instruments {self.n_instruments})")
        return (venue * self.n_channels + channel) * self.n_instruments + instrument
