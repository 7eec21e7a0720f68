"""Call policy: forwarding, outgoing barring, suspension and the fraud guard, decided in one place.

``engine`` is the pure decision function (its docstring has the fixed order),
``validate`` the rules every setter shares, ``service`` the in-memory state
and its persistence, ``diversion`` the RFC 5806 / RFC 7044 headers.
"""
