"""Finished transactions' last 32 seconds, as records in flat buffers instead of objects.

After its final response a non-INVITE server transaction only answers
retransmissions of its request with the same bytes until Timer J (64*T1 on
UDP); after the ACK of a 2xx an INVITE client transaction only ACKs the 2xx's
retransmissions until Timer M. Kept as transaction objects, each call left
~3.5 KB in Python's small-object arenas for those 32 s. A call burst's arenas
then stayed with the process after the records were gone, because anything
long-lived allocated meanwhile (a cache entry, a reloaded row) pins the 1 MiB
arena it lands in (bench/README.md, call-ladder memory).

A record here is the key (the transaction id), the bytes to send when that key
comes back, the peer they go to and an optional note for the TU, appended to
one ``bytearray``; a fingerprint table (two ``array``s, open addressing) finds
it. Records expire in the order they were made (one linger time per
transport), so expiry only moves a head index, and the buffers are cut from
the front once half of them is dead. Nothing per record is a Python object
except the peer (shared with the socket layer's own) -- and the key is checked
byte for byte on every hit, so a fingerprint collision cannot answer a stranger.
"""

from __future__ import annotations

from array import array

from .events import Peer

__all__ = ["Lingering", "Record"]

_MIN_SLOTS = 1024
_MASK64 = (1 << 64) - 1
#: expired records are released in batches: the timer asks for the head's deadline plus this
GRACE = 1.0


class Record:
    """What a hit returns: the bytes to send, where, and the TU's note."""

    __slots__ = ("payload", "peer", "note")

    def __init__(self, payload: bytes, peer: Peer, note: bytes) -> None:
        self.payload = payload
        self.peer = peer
        self.note = note


def _fingerprint(key: str) -> int:
    h = hash(key) & _MASK64
    return h if h else 1  # 0 marks an empty slot


class Lingering:
    """Records by key until their deadline; see the module docstring."""

    def __init__(self) -> None:
        # per record, by index (record number minus self._base)
        self._fp = array("Q")
        self._until = array("d")
        self._start = array("q")  # absolute offset of the record's bytes
        self._klen = array("l")
        self._plen = array("l")
        self._nlen = array("l")
        self._peers: list[Peer | None] = []
        self._data = bytearray()
        self._data_base = 0  # absolute offset of self._data[0]
        self._head = 0  # index of the first record that may still be live
        self._base = 0  # record number of index 0
        self._slot_fp = array("Q", bytes(8 * _MIN_SLOTS))
        self._slot_rec = array("q", bytes(8 * _MIN_SLOTS))
        self._filled = 0  # slots used since the table was built

    def __len__(self) -> int:
        """Records not yet released (some may be past their deadline until the next ``expire``)."""
        return len(self._fp) - self._head

    @property
    def buffered_bytes(self) -> int:
        return len(self._data)

    def add(self, key: str, payload: bytes, peer: Peer, until: float, note: bytes = b"") -> None:
        """Answer ``key`` with ``payload`` to ``peer`` until ``until``; a newer record for a key replaces the older."""
        fp = _fingerprint(key)
        kb = key.encode("utf-8", "surrogateescape")
        self._fp.append(fp)
        self._until.append(until)
        self._start.append(self._data_base + len(self._data))
        self._klen.append(len(kb))
        self._plen.append(len(payload))
        self._nlen.append(len(note))
        self._peers.append(peer)
        self._data += kb
        self._data += payload
        self._data += note
        self._place(fp, self._base + len(self._fp) - 1)

    def find(self, key: str, now: float) -> Record | None:
        """The live record for ``key``, or None."""
        fp = _fingerprint(key)
        slot_fp, slot_rec = self._slot_fp, self._slot_rec
        mask = len(slot_fp) - 1
        i = fp & mask
        while True:
            f = slot_fp[i]
            if f == 0:
                return None
            if f == fp:
                break
            i = (i + 1) & mask
        idx = slot_rec[i] - self._base
        if idx < self._head or self._until[idx] <= now:
            return None
        at = self._start[idx] - self._data_base
        klen, plen, nlen = self._klen[idx], self._plen[idx], self._nlen[idx]
        data = self._data
        if data[at : at + klen] != key.encode("utf-8", "surrogateescape"):
            return None  # another key with the same fingerprint
        peer = self._peers[idx]
        assert peer is not None
        at += klen
        return Record(bytes(data[at : at + plen]), peer, bytes(data[at + plen : at + plen + nlen]))

    def next_deadline(self) -> float | None:
        """When ``expire`` has something to release (the oldest record's deadline plus GRACE)."""
        if self._head < len(self._fp):
            return self._until[self._head] + GRACE
        return None

    def expire(self, now: float) -> int:
        """Release the records whose deadline has passed, oldest first; returns how many."""
        until, peers = self._until, self._peers
        n = len(until)
        head = start = self._head
        while head < n and until[head] <= now:
            peers[head] = None
            head += 1
        self._head = head
        if head > 256 and 2 * head >= n:
            self._cut()
        return head - start

    # -- internals ------------------------------------------------------------------

    def _place(self, fp: int, rec: int) -> None:
        self._put(fp, rec)
        if 2 * self._filled > len(self._slot_fp):
            self._rebuild()

    def _put(self, fp: int, rec: int) -> None:
        """Point ``fp``'s slot at record ``rec`` (a newer record for a key, or a twin fingerprint, wins)."""
        slot_fp, slot_rec = self._slot_fp, self._slot_rec
        mask = len(slot_fp) - 1
        i = fp & mask
        while True:
            f = slot_fp[i]
            if f == 0:
                self._filled += 1
                break
            if f == fp:
                break
            i = (i + 1) & mask
        slot_fp[i] = fp
        slot_rec[i] = rec

    def _cut(self) -> None:
        """Drop the released records from the front of every buffer.

        Into new buffers of the live part's size, not ``del buf[:n]``: a bytearray keeps its
        allocation after deleting from the front (and an array up to 16 times its length), so a
        burst's 15 MB of records would stay resident after they were all released.
        """
        head = self._head
        cut_to = self._start[head] - self._data_base if head < len(self._start) else len(self._data)
        self._data = bytearray(self._data[cut_to:])
        self._data_base += cut_to
        self._fp = self._fp[head:]
        self._until = self._until[head:]
        self._start = self._start[head:]
        self._klen = self._klen[head:]
        self._plen = self._plen[head:]
        self._nlen = self._nlen[head:]
        self._peers = self._peers[head:]
        self._base += head
        self._head = 0
        if len(self._slot_fp) > _MIN_SLOTS and 8 * len(self._fp) < len(self._slot_fp):
            self._rebuild()  # the table of a past burst: shrink it

    def _rebuild(self) -> None:
        """A table sized for the live records only (released ones leave their slots behind)."""
        live = len(self._fp) - self._head
        size = _MIN_SLOTS
        while size < 4 * live:
            size *= 2
        self._slot_fp = array("Q", bytes(8 * size))
        self._slot_rec = array("q", bytes(8 * size))
        self._filled = 0
        fps = self._fp
        for idx in range(self._head, len(fps)):
            self._put(fps[idx], self._base + idx)
