"""RFC 3261 §25 / RFC 3966 grammar fragments as character sets and regexes.

Each fragment quotes the ABNF rule it implements. The parser modules use these
instead of hand-rolled character lists so that "what is a token" is decided in
exactly one place (the h11 ``_abnf`` idea). Deliberate leniencies are marked.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "TOKEN_CHARS",
    "WORD_CHARS",
    "TOKEN_RE",
    "CALL_ID_RE",
    "USER_RE",
    "PASSWORD_RE",
    "PARAMCHAR_RE",
    "HNAME_RE",
    "HVALUE_RE",
    "HOSTNAME_RE",
    "IPV4_RE",
    "PORT_RE",
    "SCHEME_RE",
    "GEN_VALUE_RE",
    "QUOTED_STRING_RE",
    "SIP_VERSION_RE",
    "SIP_DATE_RE",
    "TEL_GLOBAL_RE",
    "TEL_LOCAL_RE",
    "TEL_PNAME_RE",
    "RESERVED",
]

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN_CHARS: Final = frozenset(_ALNUM + "-.!%*_+`'~")
TOKEN_RE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")

# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#        "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}" )
WORD_CHARS: Final = frozenset(_ALNUM + "-.!%*_+`'~()<>:\\\"/[]?{}")
# callid = word [ "@" word ]
CALL_ID_RE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?")

# escaped = "%" HEXDIG HEXDIG
# unreserved = alphanum / mark ; mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
# user = 1*( unreserved / escaped / user-unreserved )
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
# Plus a bare "#": RFC 3261 wants it escaped (%23), but adapters dialling GSM service codes
# (``*21*22000002#``, ``#21#``) send it as typed, and Kamailio and Asterisk accept it too. It
# cannot be mistaken for anything else inside a user part.
USER_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/#]|%[0-9A-Fa-f]{2})+")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
# pname = 1*paramchar ; pvalue = 1*paramchar
# paramchar = param-unreserved / unreserved / escaped
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAMCHAR_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+")
# hname = 1*( hnv-unreserved / unreserved / escaped )
# hvalue = *( hnv-unreserved / unreserved / escaped )
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
HNAME_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})+")
HVALUE_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")

# hostname = *( domainlabel "." ) toplabel [ "." ]
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
# toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum
# Leniency: a toplabel starting with a digit is accepted when the name is not a
# dotted quad (RFC 1123 §2.1 relaxed the letter rule; real networks use such names).
HOSTNAME_RE: Final = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?"
)
# IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
IPV4_RE: Final = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
# port = 1*DIGIT (bounded here: five digits are enough for 65535)
PORT_RE: Final = re.compile(r"[0-9]{1,5}")
# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED_STRING_RE: Final = re.compile(r'"(?:[^"\\\r\n]|\\[^\r\n])*"')
# generic-param = token [ EQUAL gen-value ] ; gen-value = token / host / quoted-string
# (host adds "[", "]" and ":" for IPv6 references)
GEN_VALUE_RE: Final = re.compile(r'[A-Za-z0-9\-.!%*_+`\'~\[\]:]+|"(?:[^"\\\r\n]|\\[^\r\n])*"')

# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT  ("SIP" is case-insensitive, RFC 5234 §2.3)
SIP_VERSION_RE: Final = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")

# SIP-date = rfc1123-date ; rfc1123-date = wkday "," SP date1 SP time SP "GMT"
# date1 = 2DIGIT SP month SP 4DIGIT ; time = 2DIGIT ":" 2DIGIT ":" 2DIGIT
SIP_DATE_RE: Final = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)

# RFC 3966 §3:
# global-number-digits = "+" *phonedigit DIGIT *phonedigit
# phonedigit = DIGIT / [ visual-separator ] ; visual-separator = "-" / "." / "(" / ")"
TEL_GLOBAL_RE: Final = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
# local-number-digits = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex
# ("#" may arrive escaped as %23 inside a SIP message)
TEL_LOCAL_RE: Final = re.compile(r"(?:[0-9A-Fa-f*#\-.()]|%23)*(?:[0-9A-Fa-f*#]|%23)(?:[0-9A-Fa-f*#\-.()]|%23)*")
# pname = 1*( alphanum / "-" )
TEL_PNAME_RE: Final = re.compile(r"[A-Za-z0-9\-]+")

# reserved = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / ","
# RFC 3261 §19.1.4: characters outside this set are equivalent to their escape.
RESERVED: Final = frozenset(";/?:@&=+$,")
