"""Media for announcements: the caller hears why a call was refused.

Sans-IO like ``switch.sip``: RTP packets (``rtp``), the paced prompt stream
(``stream``, time passed in), G.711 tables (``g711``), the SDP answer
(``answer``), the RTP port pool (``ports``), the prompt catalogue and audio
(``catalogue``, ``library``, ``install``). The one module with I/O is
``udp`` (sockets on the asyncio loop). ``docs/announcements.md`` describes
how the B2BUA uses it and how star codes play their results.
"""
