"""Dialog state (RFC 3261 §12) and its use on top of two transaction layers."""

from __future__ import annotations

import pytest

from switch.sip.dialog import Dialog, uac_dialog_id, uas_dialog_id
from switch.sip.errors import ParseError, TransactionError
from switch.sip.headers import Headers, NameAddr
from switch.sip.message import Request, Response, response_for
from switch.sip.transaction import Peer, RequestReceived, ResponseReceived, TransactionTimeout
from switch.sip.uri import SipUri, parse_uri

from .txn_helpers import Network, make_request

RR = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")


def invite(*, record_route: tuple[str, ...] = RR, ruri: str = "sip:bob@example.com", cseq: int = 1) -> Request:
    req = Request(
        "INVITE",
        ruri,
        Headers.of(
            [
                ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1"),
                ("From", '"Alice" <sip:alice@example.com>;tag=a1'),
                ("To", "<sip:bob@example.com>"),
                ("Call-ID", "dlg-1@10.0.0.1"),
                ("CSeq", f"{cseq} INVITE"),
                ("Contact", "<sip:alice@10.0.0.1:5060>"),
                ("Max-Forwards", "70"),
                *[("Record-Route", r) for r in record_route],
            ]
        ),
    )
    return req


def answer(req: Request, status: int = 200, *, to_tag: str | None = "b1", contact: str | None = "<sip:bob@10.0.0.2:5062>") -> Response:
    resp = response_for(req, status, to_tag=to_tag, copy_record_route=True)
    if contact:
        resp.headers.add("Contact", contact)
    return resp


# ---------------------------------------------------------------------------- creation


def test_uas_dialog_from_request_and_response() -> None:
    """§12.1.1."""
    req = invite()
    d = Dialog.from_uas(req, answer(req))
    assert d.id == ("dlg-1@10.0.0.1", "b1", "a1")
    assert str(d.local_uri) == "<sip:bob@example.com>"
    assert str(d.remote_uri) == '"Alice" <sip:alice@example.com>'
    assert (d.local_cseq, d.remote_cseq) == (None, 1)
    assert d.route_set == list(RR)  # request order
    assert d.remote_target == parse_uri("sip:alice@10.0.0.1:5060")
    assert d.local_contact == "<sip:bob@10.0.0.2:5062>"
    assert (d.secure, d.early) == (False, False)
    assert uas_dialog_id(req) == ("dlg-1@10.0.0.1", "", "a1")


def test_uac_dialog_from_request_and_response() -> None:
    """§12.1.2: route set in reverse order, remote target from the response's Contact."""
    req = invite(record_route=())
    resp = answer(req)
    for r in RR:
        resp.headers.add("Record-Route", r)
    d = Dialog.from_uac(req, resp)
    assert d.id == ("dlg-1@10.0.0.1", "a1", "b1")
    assert d.route_set == list(reversed(RR))
    assert d.remote_target == parse_uri("sip:bob@10.0.0.2:5062")
    assert (d.local_cseq, d.remote_cseq, d.invite_cseq) == (1, None, 1)
    assert d.local_contact == "<sip:alice@10.0.0.1:5060>"
    assert uac_dialog_id(resp) == d.id


def test_early_dialog_from_provisional_is_confirmed_by_2xx() -> None:
    req = invite(record_route=())
    ringing = answer(req, 180, contact=None)
    d = Dialog.from_uac(req, ringing)
    assert d.early and d.remote_target == req.ruri  # no Contact yet: the Request-URI
    ok = answer(req, 200)
    ok.headers.add("Record-Route", "<sip:p9.example.com;lr>")
    d.update_from_response(req, ok)
    assert not d.early
    assert d.remote_target == parse_uri("sip:bob@10.0.0.2:5062")
    assert d.route_set == ["<sip:p9.example.com;lr>"]  # recomputed from the 2xx (§13.2.2.4)


@pytest.mark.parametrize("ruri,secure_transport,secure", [("sips:bob@example.com", True, True),
                                                          ("sips:bob@example.com", False, False),
                                                          ("sip:bob@example.com", True, False)])
def test_secure_flag(ruri: str, secure_transport: bool, secure: bool) -> None:
    req = invite(ruri=ruri)
    assert Dialog.from_uas(req, answer(req), secure_transport=secure_transport).secure is secure


def test_dialog_creation_needs_tags_and_contact() -> None:
    req = invite()
    with pytest.raises(TransactionError):
        Dialog.from_uas(req, answer(req, to_tag=None))
    with pytest.raises(TransactionError):
        Dialog.from_uac(req, answer(req, to_tag=None))
    req.headers.remove("Contact")
    with pytest.raises(ParseError):
        Dialog.from_uas(req, answer(req))


def test_an_rfc2543_request_without_contact_is_answered_at_its_from_uri() -> None:
    """RFC 4475 §3.4.1: an RFC 2543 client (no magic cookie) need not send Contact."""
    req = invite()
    req.headers.remove("Contact")
    via = req.headers.values("Via")[0]
    req.headers.set("Via", via.split(";branch=")[0])
    assert str(Dialog.from_uas(req, answer(req)).remote_target) == str(req.from_.uri)


# ---------------------------------------------------------------------------- requests within the dialog


def uac_dialog(route_set: tuple[str, ...] = RR) -> Dialog:
    req = invite(record_route=())
    resp = answer(req)
    for r in reversed(route_set):
        resp.headers.add("Record-Route", r)
    return Dialog.from_uac(req, resp)


def test_bye_uses_loose_routing_and_the_next_cseq() -> None:
    """§12.2.1.1: Request-URI = remote target, Route = route set, CSeq + 1, tags in From/To."""
    d = uac_dialog()
    bye = d.create_request("BYE")
    assert bye.uri == "sip:bob@10.0.0.2:5062"
    assert bye.headers.get_lines("Route") == list(RR)
    assert str(bye.cseq) == "2 BYE" and d.local_cseq == 2
    assert bye.from_.tag == "a1" and bye.to.tag == "b1"
    assert str(bye.from_.uri) == "sip:alice@example.com" and bye.from_.display == "Alice"
    assert bye.call_id == "dlg-1@10.0.0.1" and bye.max_forwards == 70
    assert bye.headers.get("Contact") is None  # only target refresh requests carry Contact


def test_ack_reuses_the_invite_cseq() -> None:
    """§13.2.2.4: the ACK for a 2xx has the INVITE's CSeq number; it does not advance the counter."""
    d = uac_dialog()
    assert str(d.create_request("ACK").cseq) == "1 ACK"
    reinvite = d.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert str(reinvite.cseq) == "2 INVITE" and reinvite.headers.get("Contact") == "<sip:alice@10.0.0.1:5060>"
    assert reinvite.body == b"v=0\r\n" and reinvite.content_type == "application/sdp"
    assert str(d.create_request("ACK").cseq) == "2 ACK"
    assert str(d.create_request("BYE").cseq) == "3 BYE"


def test_uas_side_starts_its_own_cseq() -> None:
    req = invite()
    d = Dialog.from_uas(req, answer(req))
    bye = d.create_request("BYE", headers=[("Reason", "Q.850;cause=16")])
    assert str(bye.cseq) == "1 BYE" and bye.headers.get("Reason") == "Q.850;cause=16"
    assert bye.to.tag == "a1" and bye.from_.tag == "b1"
    assert bye.uri == "sip:alice@10.0.0.1:5060"
    assert bye.headers.get_lines("Route") == list(RR)
    with pytest.raises(TransactionError):
        d.create_request("ACK")  # this side sent no INVITE


def test_strict_router_in_the_route_set() -> None:
    """§12.2.1.1: a first route without lr becomes the Request-URI; the remote target goes last."""
    d = uac_dialog(("<sip:strict.example.com;method=INVITE;transport=udp>", "<sip:p2.example.com;lr>"))
    bye = d.create_request("BYE")
    assert bye.uri == "sip:strict.example.com;transport=udp"
    assert bye.headers.get_lines("Route") == ["<sip:p2.example.com;lr>", "<sip:bob@10.0.0.2:5062>"]


def test_no_route_set() -> None:
    d = uac_dialog(())
    bye = d.create_request("BYE")
    assert bye.uri == "sip:bob@10.0.0.2:5062" and bye.headers.get_lines("Route") == []


def test_cancel_is_not_a_dialog_request() -> None:
    with pytest.raises(TransactionError):
        uac_dialog().create_request("CANCEL")


# ---------------------------------------------------------------------------- incoming requests


def in_dialog(method: str, cseq: int, contact: str | None = None) -> Request:
    pairs = [("From", "<sip:bob@example.com>;tag=b1"), ("To", "<sip:alice@example.com>;tag=a1"),
             ("Call-ID", "dlg-1@10.0.0.1"), ("CSeq", f"{cseq} {method}")]
    if contact:
        pairs.append(("Contact", contact))
    return Request(method, "sip:alice@10.0.0.1:5060", Headers.of(pairs))


def test_remote_cseq_ordering() -> None:
    """§12.2.2: a lower CSeq is out of order (answer 500); an empty remote CSeq takes the first."""
    d = uac_dialog()
    assert d.remote_cseq is None
    assert d.receive_request(in_dialog("INFO", 10))
    assert d.remote_cseq == 10
    assert not d.receive_request(in_dialog("INFO", 9))
    assert d.remote_cseq == 10
    assert d.receive_request(in_dialog("INFO", 10))
    assert d.receive_request(in_dialog("BYE", 11)) and d.remote_cseq == 11
    assert d.receive_request(in_dialog("ACK", 1))  # ACK carries its INVITE's number


def test_target_refresh_on_reinvite_and_update_only() -> None:
    d = uac_dialog()
    d.receive_request(in_dialog("INFO", 5, contact="<sip:bob@192.0.2.9>"))
    assert d.remote_target == parse_uri("sip:bob@10.0.0.2:5062")
    d.receive_request(in_dialog("INVITE", 6, contact="<sip:bob@192.0.2.10>"))
    assert d.remote_target == parse_uri("sip:bob@192.0.2.10")
    d.receive_request(in_dialog("UPDATE", 7, contact="<sip:bob@192.0.2.11:5080>"))
    assert d.remote_target == SipUri(host="192.0.2.11", user="bob", port=5080)


def test_target_refresh_from_our_reinvite_response() -> None:
    """§12.2.1.2: a 2xx to our target refresh request replaces the remote target; errors do not."""
    d = uac_dialog()
    reinvite = d.create_request("INVITE")
    reinvite.headers.add("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-2", first=True)
    d.update_from_response(reinvite, answer(reinvite, 491, contact="<sip:bob@192.0.2.50>"))
    assert d.remote_target == parse_uri("sip:bob@10.0.0.2:5062")
    d.update_from_response(reinvite, answer(reinvite, 200, contact="<sip:bob@192.0.2.51>"))
    assert d.remote_target == parse_uri("sip:bob@192.0.2.51")


def test_name_addr_without_tag_is_kept_as_is() -> None:
    req = invite()
    d = Dialog.from_uas(req, answer(req))
    assert isinstance(d.local_uri, NameAddr) and "tag" not in d.local_uri.params


# ---------------------------------------------------------------------------- with the transaction layer


def test_call_set_up_and_torn_down_through_two_layers() -> None:
    """INVITE/200/ACK/BYE: dialogs on both sides; the 2xx ACK (new branch) stops the server's 2xx
    retransmission; the BYE from the UAS reaches the UAC's remote target."""
    net = Network()
    inv = make_request("INVITE")
    net.client.send_request(inv, net.server_peer, net.now)
    net.flush()
    [ev] = [e for e in net.server_events if isinstance(e, RequestReceived)]
    assert ev.tid is not None
    ok = net.server.create_response(ev.tid, 200)
    ok.headers.add("Contact", "<sip:bob@10.0.0.2:5060>")
    uas = Dialog.from_uas(ev.request, ok)
    net.server.send_response(ev.tid, ok, net.now)
    net.flush()
    got = [e for e in net.client_events if isinstance(e, ResponseReceived) and e.response.status == 200]
    uac = Dialog.from_uac(inv, got[0].response)
    assert uac.id == (uas.id[0], uas.id[2], uas.id[1])
    net.advance(0.6)  # one 2xx retransmission; the TU would ACK it too, once is enough here
    net.client.send_request(uac.create_request("ACK"), net.server_peer, net.now)
    net.flush()
    acks = [e for e in net.server_events if isinstance(e, RequestReceived) and e.request.method == "ACK"]
    assert len(acks) == 1 and acks[0].tid is None and uas_dialog_id(acks[0].request) == uas.id
    assert uas.receive_request(acks[0].request)
    net.advance(40.0)
    assert sum(1 for p in net.log if p.short == "200") == 2  # first + one retransmission, then the ACK
    assert not [e for e in net.server_events if isinstance(e, TransactionTimeout)]
    # The UAS hangs up.
    bye = uas.create_request("BYE")
    target = uas.remote_target
    assert isinstance(target, SipUri) and target.port is not None
    bye_tid = net.server.send_request(bye, Peer("udp", target.host, target.port), net.now)
    net.flush()
    [bye_ev] = [e for e in net.client_events if isinstance(e, RequestReceived) and e.request.method == "BYE"]
    assert uas_dialog_id(bye_ev.request) == uac.id and uac.receive_request(bye_ev.request)
    assert bye_ev.tid is not None
    net.client.send_response(bye_ev.tid, net.client.create_response(bye_ev.tid, 200), net.now)
    net.flush()
    assert [(e.tid, e.response.status) for e in net.server_events if isinstance(e, ResponseReceived)] == [(bye_tid, 200)]
