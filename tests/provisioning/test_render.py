"""Rendering tests for the ATA templates (provisioning/render.py + ata_templates/).

Two kinds of check, both needed: golden files catch *any* change in the bytes an adapter
receives (regenerate with ``UPDATE_GOLDEN=1`` after a deliberate change and review the diff),
and the explicit assertions below parse the XML and pin the values that matter for service --
credentials with special characters, expiry units, line enable flags, codecs -- so a wrong
golden file cannot silently bless a broken profile.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from provisioning.render import (
    AdapterProfile,
    LineProfile,
    ProfileError,
    UnsupportedProfileError,
    bootstrap_files,
    config_filename,
    render_bootstrap,
    render_config,
)
from switch.store.adapter_models import MODELS, parse_user_agent

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"

SPECIAL_PASSWORD = "p<&>\"'ss"
SPECIAL_NAME = "Kari <Nordmann> & \"Co\""
PROV_PASSWORD = "Pr0v$ecret"
MACS = {
    "spa112": "e05fb9aabb01",
    "spa122": "e05fb9aabb02",
    "pap2t": "000e08aabb03",
    "spa2102": "000e08aabb04",
    "ht802": "c074adaabb05",
    "ht812": "c074adaabb06",
    "obi202": "9cadefaabb07",
}
SPA_MODELS = ("spa112", "spa122", "pap2t", "spa2102")
CASES = ("two_line", "one_line", "alarm_line")


def _line1(*, alarm: bool = False) -> LineProfile:
    return LineProfile(port=1, enabled=True, number="4722000001", auth_user="auth-0001",
                       password=SPECIAL_PASSWORD, display_name=SPECIAL_NAME, alarm=alarm)


def _line2() -> LineProfile:
    return LineProfile(port=2, enabled=True, number="4722000002", auth_user="auth-0002",
                       password="second-secret", display_name="Ola")


def _lines(case: str) -> tuple[LineProfile, ...]:
    if case == "two_line":
        return (_line1(), _line2())
    if case == "one_line":
        return (_line1(),)
    if case == "alarm_line":
        return (_line1(alarm=True), _line2())
    raise AssertionError(case)


def _profile(model: str, case: str = "two_line", **overrides: object) -> AdapterProfile:
    mac = MACS[model]
    name = MODELS[model].config_filename_pattern.format(mac=mac)
    creds = {} if model == "obi202" else {"provisioning_user": mac,
                                          "provisioning_password": PROV_PASSWORD}
    profile = AdapterProfile(
        mac=mac, model=model, lines=_lines(case), sip_domain="voip.example.no",
        sip_proxy_host="sbc.example.no", sip_proxy_port=5060,
        profile_url=f"https://prov.example.no/ata/t0k3n/{name}", **creds,  # type: ignore[arg-type]
    )
    return replace(profile, **overrides)  # type: ignore[arg-type]


def _golden_cases() -> list[tuple[str, str]]:
    return [(m, c) for m in MODELS for c in CASES if not (m == "obi202" and c == "alarm_line")]


def _check_golden(name: str, rendered: bytes) -> None:
    path = GOLDEN_DIR / name
    if UPDATE_GOLDEN:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_bytes(rendered)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert rendered == path.read_bytes(), f"{name} differs from its golden file"


def _flat(xml: bytes) -> dict[str, str]:
    """Cisco flat profile / Grandstream <config> -> {element name: text}."""
    root = ET.fromstring(xml)
    parent = root.find("config") if root.tag == "gs_provision" else root
    assert parent is not None
    values: dict[str, str] = {}
    for element in parent:
        assert element.tag not in values, f"{element.tag} written twice"
        values[element.tag] = element.text or ""
    return values


def _obi(xml: bytes) -> dict[tuple[str, str], str]:
    """OBi ParameterList -> {(object path, parameter): value}."""
    root = ET.fromstring(xml)
    values: dict[tuple[str, str], str] = {}
    for obj in root.iter("Object"):
        path = obj.findtext("Name") or ""
        for struct in obj.iter("ParameterValueStruct"):
            values[(path, struct.findtext("Name") or "")] = struct.findtext("Value") or ""
    return values


# ------------------------------------------------------------------------------------------
# Golden files and well-formedness
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "case"), _golden_cases())
def test_config_matches_golden_file(model: str, case: str) -> None:
    rendered = render_config(_profile(model, case))
    ET.fromstring(rendered)  # well-formed XML
    assert rendered.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    _check_golden(f"{model}_{case}.xml", rendered)


@pytest.mark.parametrize(("model", "mac"), [
    ("spa112", None), ("spa122", None), ("pap2t", None), ("spa2102", None),
    ("spa112", MACS["spa112"]), ("ht802", None), ("ht812", MACS["ht812"]),
])
def test_bootstrap_matches_golden_file(model: str, mac: str | None) -> None:
    rendered = render_bootstrap(model, mac, "https://prov.example.no/ata/")
    ET.fromstring(rendered)
    suffix = "generic" if mac is None else "mac"
    ext = "cfg" if MODELS[model].family == "spa" else "xml"
    _check_golden(f"bootstrap_{model}_{suffix}.{ext}", rendered)


def test_every_golden_file_is_still_produced() -> None:
    expected = {f"{m}_{c}.xml" for m, c in _golden_cases()}
    expected |= {f"bootstrap_{m}_generic.cfg" for m in SPA_MODELS}
    expected |= {"bootstrap_spa112_mac.cfg", "bootstrap_ht802_generic.xml",
                 "bootstrap_ht812_mac.xml"}
    assert {p.name for p in GOLDEN_DIR.iterdir()} == expected


# ------------------------------------------------------------------------------------------
# Cisco / Linksys
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", SPA_MODELS)
def test_spa_two_lines_exact_values(model: str) -> None:
    v = _flat(render_config(_profile(model, "two_line")))
    mac = MACS[model]
    assert v["Line_Enable_1_"] == "Yes" and v["Line_Enable_2_"] == "Yes"
    assert v["User_ID_1_"] == "4722000001"
    assert v["Use_Auth_ID_1_"] == "Yes" and v["Auth_ID_1_"] == "auth-0001"
    assert v["Password_1_"] == SPECIAL_PASSWORD
    assert v["Display_Name_1_"] == SPECIAL_NAME
    assert v["Password_2_"] == "second-secret"
    assert v["Proxy_1_"] == "voip.example.no"
    assert v["Outbound_Proxy_1_"] == "sbc.example.no:5060"
    assert v["Use_Outbound_Proxy_1_"] == "Yes"
    assert v["SIP_Transport_1_"] == "UDP"
    assert v["Register_Expires_1_"] == "3600"  # seconds on Cisco/Linksys
    assert v["Register_Expires_2_"] == "3600"
    assert (v["Preferred_Codec_1_"], v["Second_Preferred_Codec_1_"],
            v["Third_Preferred_Codec_1_"]) == ("G711a", "G711u", "G729a")
    assert v["G729a_Enable_1_"] == "Yes"
    assert v["Silence_Supp_Enable_1_"] == "No"
    assert v["Resync_Periodic"] == "3600"
    assert v["Resync_From_SIP"] == "Yes"
    assert v["Profile_Rule"] == (
        f"[--uid {mac} --pwd Pr0v$$ecret]https://prov.example.no/ata/t0k3n/spa{mac}.xml"
    )
    assert v["Profile_Rule_B"] == ""
    assert v["Block_CID_Act_Code"] == ""  # SPA *67 would swallow Norwegian *67*
    assert v["Dial_Tone"] == "425@-16;10(*/0/1)"
    assert v["Busy_Tone"] == "425@-16;10(.5/.5/1)"
    assert v["Ring_Back_Tone"] == "425@-16;*(1/4/1)"
    assert v["Reorder_Tone"] == "425@-16;10(.2/.2/1)"
    assert v["Ring1_Cadence"] == "60(1/4)"
    assert v["Time_Zone"] == "GMT+01:00"
    assert v["Daylight_Saving_Time_Rule"] == "start=3/-1/7/2;end=10/-1/7/3;save=1"


@pytest.mark.parametrize("model", SPA_MODELS)
def test_spa_missing_port_is_switched_off_and_blanked(model: str) -> None:
    v = _flat(render_config(_profile(model, "one_line")))
    assert v["Line_Enable_1_"] == "Yes"
    assert v["Line_Enable_2_"] == "No"
    assert v["Register_2_"] == "No"
    assert v["User_ID_2_"] == "" and v["Password_2_"] == "" and v["Auth_ID_2_"] == ""
    assert v["Proxy_2_"] == ""


@pytest.mark.parametrize("model", SPA_MODELS)
def test_spa_alarm_line_is_conservative(model: str) -> None:
    v = _flat(render_config(_profile(model, "alarm_line")))
    assert v["Register_Expires_1_"] == "300"
    assert v["Register_Expires_2_"] == "3600"
    assert v["Preferred_Codec_1_"] == "G711a"
    assert v["Second_Preferred_Codec_1_"] == "G711u"
    assert v["Third_Preferred_Codec_1_"] == "Unspecified"
    for codec in ("G729a", "G723", "G726-16", "G726-24", "G726-32", "G726-40", "G722"):
        assert v[f"{codec}_Enable_1_"] == "No", codec
    assert v["Silence_Supp_Enable_1_"] == "No"
    assert v["DTMF_Tx_Method_1_"] == "InBand"
    assert v["G729a_Enable_2_"] == "Yes"  # the other port keeps normal settings
    assert v["DTMF_Tx_Method_2_"] == "Auto"


def test_spa_without_provisioning_credentials_has_bare_rule() -> None:
    profile = _profile("spa112", provisioning_user="", provisioning_password="")
    assert _flat(render_config(profile))["Profile_Rule"] == (
        "https://prov.example.no/ata/t0k3n/spae05fb9aabb01.xml"
    )


def test_spa_admin_password_parameter_depends_on_model() -> None:
    spa112 = _flat(render_config(_profile("spa112", admin_password="adm<in")))
    pap2t = _flat(render_config(_profile("pap2t", admin_password="adm<in")))
    assert spa112["Web_Login_Admin_Password"] == "adm<in" and "Admin_Passwd" not in spa112
    assert pap2t["Admin_Passwd"] == "adm<in" and "Web_Login_Admin_Password" not in pap2t
    assert "Admin_Passwd" not in _flat(render_config(_profile("pap2t")))


def test_spa_secrets_are_hidden_from_user_web_access() -> None:
    root = ET.fromstring(render_config(_profile("spa122")))
    for tag in ("Password_1_", "Password_2_", "Profile_Rule"):
        element = root.find(tag)
        assert element is not None and element.get("ua") == "na", tag


# ------------------------------------------------------------------------------------------
# Grandstream
# ------------------------------------------------------------------------------------------


def test_ht802_two_lines_exact_values() -> None:
    raw = render_config(_profile("ht802", "two_line"))
    assert ET.fromstring(raw).findtext("mac") == MACS["ht802"]
    v = _flat(raw)
    assert (v["P271"], v["P401"]) == ("1", "1")
    assert (v["P35"], v["P36"], v["P34"], v["P3"]) == (
        "4722000001", "auth-0001", SPECIAL_PASSWORD, SPECIAL_NAME)
    assert (v["P735"], v["P736"], v["P734"], v["P703"]) == (
        "4722000002", "auth-0002", "second-secret", "Ola")
    assert (v["P47"], v["P48"]) == ("voip.example.no", "sbc.example.no:5060")
    assert (v["P747"], v["P748"]) == ("voip.example.no", "sbc.example.no:5060")
    assert (v["P32"], v["P732"]) == ("60", "60")  # MINUTES on Grandstream
    assert (v["P130"], v["P830"]) == ("0", "0")
    assert (v["P50"], v["P750"]) == ("0", "0")
    assert [v[f"P{n}"] for n in (57, 58, 59, 60, 61, 62, 46)] == ["8", "0", "18", "8", "8", "8", "8"]
    assert (v["P191"], v["P751"], v["P72"], v["P772"]) == ("0", "0", "0", "0")
    assert v["P212"] == "2"
    assert v["P237"] == "prov.example.no/ata/t0k3n"
    assert (v["P1360"], v["P1361"]) == (MACS["ht802"], PROV_PASSWORD)
    assert (v["P194"], v["P193"], v["P145"], v["P238"]) == ("3", "60", "0", "2")
    assert v["P4428"] == "0"
    assert v["P64"] == "CET-1CEST-2,M3.5.0/02:00:00,M10.5.0/03:00:00"
    assert (v["P4000"], v["P4001"], v["P4002"], v["P4003"], v["P4040"]) == (
        "f1=425@-15,c=0/0;", "f1=425@-15,c=1000/4000;", "f1=425@-15,c=500/500;",
        "f1=425@-15,c=200/200;", "c=1000/4000;")


def test_ht802_missing_port_2_is_switched_off_and_blanked() -> None:
    v = _flat(render_config(_profile("ht802", "one_line")))
    assert v["P271"] == "1"
    assert v["P401"] == "0"
    assert v["P731"] == "0"
    assert (v["P735"], v["P736"], v["P734"], v["P747"]) == ("", "", "", "")


def test_ht802_alarm_line_is_conservative() -> None:
    v = _flat(render_config(_profile("ht802", "alarm_line")))
    assert v["P32"] == "5"  # 300 s -> 5 minutes
    assert v["P732"] == "60"
    assert [v[f"P{n}"] for n in (57, 58, 59, 60, 61, 62, 46)] == ["8", "0", "8", "8", "8", "8", "8"]
    assert v["P50"] == "0"
    assert (v["P850"], v["P851"], v["P852"]) == ("100", "101", "102")
    assert v["P759"] == "18"  # port 2 still normal


def test_ht812_uses_profile_2_for_alarm_port() -> None:
    v = _flat(render_config(_profile("ht812", "alarm_line")))
    assert (v["P4595"], v["P4596"]) == ("1", "1")
    assert (v["P4150"], v["P4151"]) == ("1", "0")  # port 1 -> Profile 2, port 2 -> Profile 1
    assert (v["P271"], v["P401"]) == ("1", "1")
    assert (v["P32"], v["P732"]) == ("60", "5")  # minutes; alarm profile short
    assert [v[f"P{n}"] for n in (757, 758, 759, 760, 761, 762, 814)] == ["8", "0", "8", "8", "8", "8", "8"]
    assert v["P59"] == "18"
    assert (v["P4060"], v["P4090"], v["P4120"]) == ("4722000001", "auth-0001", SPECIAL_PASSWORD)
    assert v["P4180"] == SPECIAL_NAME


def test_ht812_one_line_disables_port_2_and_unused_profile_2() -> None:
    v = _flat(render_config(_profile("ht812", "one_line")))
    assert (v["P4595"], v["P4596"]) == ("1", "0")
    assert (v["P271"], v["P401"]) == ("1", "0")
    assert (v["P4061"], v["P4091"], v["P4121"]) == ("", "", "")
    assert "P35" not in v  # HT81x credentials live on the FXS port page, not the profile


def test_grandstream_expiry_rounds_up_to_whole_minutes() -> None:
    v = _flat(render_config(_profile("ht802", "alarm_line", alarm_register_expires=90,
                                     register_expires=61)))
    assert (v["P32"], v["P732"]) == ("2", "2")


def test_grandstream_check_interval_is_at_least_60_minutes() -> None:
    v = _flat(render_config(_profile("ht802", resync_interval=600)))
    assert v["P193"] == "60"
    v = _flat(render_config(_profile("ht802", resync_interval=7200)))
    assert v["P193"] == "120"


def test_grandstream_notify_authentication_toggle() -> None:
    v = _flat(render_config(_profile("ht812", notify_requires_auth=False)))
    assert v["P4428"] == "1"


def test_grandstream_http_url_selects_http_protocol() -> None:
    url = f"http://prov.example.no:8080/ata/cfg{MACS['ht802']}.xml"
    v = _flat(render_config(_profile("ht802", profile_url=url)))
    assert (v["P212"], v["P237"]) == ("1", "prov.example.no:8080/ata")


# ------------------------------------------------------------------------------------------
# Obihai
# ------------------------------------------------------------------------------------------


def test_obi202_two_lines_exact_values() -> None:
    v = _obi(render_config(_profile("obi202", "two_line")))
    line1, sip1 = "VoiceService.1.VoiceProfile.1.Line.1.", "VoiceService.1.VoiceProfile.1.Line.1.SIP."
    assert v[(line1, "Enable")] == "true"
    assert v[(line1, "X_ServProfile")] == "A"
    assert v[(line1, "X_AcceptResync")] == "yes with authentication"
    assert v[(sip1, "AuthUserName")] == "auth-0001"
    assert v[(sip1, "AuthPassword")] == SPECIAL_PASSWORD
    assert v[(sip1, "URI")] == "4722000001"
    assert v[("VoiceService.1.VoiceProfile.1.SIP.", "RegisterExpires")] == "3600"
    assert v[("VoiceService.1.VoiceProfile.2.SIP.", "ProxyServer")] == "voip.example.no"
    assert v[("X_DeviceManagement.ITSPProvisioning.", "ConfigURL")] == (
        f"https://prov.example.no/ata/t0k3n/obi{MACS['obi202']}.xml")
    assert v[("X_DeviceManagement.ITSPProvisioning.", "Interval")] == "3600"


def test_obi202_missing_port_2_is_disabled() -> None:
    v = _obi(render_config(_profile("obi202", "one_line")))
    assert v[("VoiceService.1.VoiceProfile.1.Line.2.", "Enable")] == "false"
    assert v[("VoiceService.1.VoiceProfile.1.Line.2.SIP.", "AuthUserName")] == ""
    assert v[("VoiceService.1.VoiceProfile.2.SIP.", "ProxyServer")] == ""


def test_obi202_refuses_alarm_lines() -> None:
    with pytest.raises(UnsupportedProfileError, match="alarm line"):
        render_config(_profile("obi202", "alarm_line"))


def test_obi202_refuses_http_credentials() -> None:
    with pytest.raises(UnsupportedProfileError):
        render_config(_profile("obi202", provisioning_user="u", provisioning_password="p"))


# ------------------------------------------------------------------------------------------
# Cross-model properties
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
def test_special_characters_are_escaped_in_the_bytes(model: str) -> None:
    raw = render_config(_profile(model))
    assert b"p&lt;&amp;&gt;&#34;&#39;ss" in raw
    assert SPECIAL_PASSWORD.encode() not in raw


@pytest.mark.parametrize("model", list(MODELS))
def test_disabled_line_renders_like_missing_line(model: str) -> None:
    disabled = replace(_line2(), enabled=False)
    assert render_config(_profile(model, lines=(_line1(), disabled))) == render_config(
        _profile(model, "one_line"))


@pytest.mark.parametrize("model", list(MODELS))
def test_config_filename_uses_lower_case_mac(model: str) -> None:
    name = config_filename(_profile(model))
    assert MACS[model] in name and name == name.lower() and name.endswith(".xml")


def test_config_filename_per_vendor() -> None:
    assert config_filename(_profile("spa112")) == "spae05fb9aabb01.xml"
    assert config_filename(_profile("ht812")) == "cfgc074adaabb06.xml"
    assert config_filename(_profile("obi202")) == "obi9cadefaabb07.xml"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"mac": "E05FB9AABB01"}, "lower-case"),
    ({"mac": "e0:5f:b9:aa:bb:01"}, "lower-case"),
    ({"mac": "e05fb9aabb01\n"}, "lower-case"),
    ({"sip_transport": "sctp"}, "transports"),
    ({"timezone": "America/New_York"}, "time zone"),
    ({"register_expires": 0}, "positive"),
    ({"provisioning_password": "with space"}, "printable ASCII"),
    ({"provisioning_password": "br]acket"}, "printable ASCII"),
    ({"provisioning_user": ""}, "without provisioning_user"),
    ({"profile_url": "ftp://prov.example.no/x.xml"}, "http"),
    ({"profile_url": "https://user:pw@prov.example.no/x.xml"}, "credentials"),
    ({"sip_domain": "voip.example.no/evil"}, "host"),
    ({"sip_proxy_port": 70000}, "out of range"),
])
def test_invalid_profiles_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        render_config(_profile("spa112", **overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(("line", "message"), [
    (LineProfile(1, True, "+4722000001", "a", "p"), "E.164"),
    (LineProfile(1, True, "4722000001\n", "a", "p"), "E.164"),
    (LineProfile(1, True, "4722000001", "a", ""), "password"),
    (LineProfile(1, True, "4722000001", "a", "pass\x00word"), "control character"),
    (LineProfile(1, True, "4722000001", "a", "p", display_name="line\nbreak"), "control"),
    (LineProfile(3, True, "4722000001", "a", "p"), "ports 1..2"),
])
def test_invalid_lines_are_refused(line: LineProfile, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        render_config(_profile("ht802", lines=(line,)))


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ProfileError, match="unknown model"):
        render_config(replace(_profile("spa112"), model="spa3102"))
    with pytest.raises(ProfileError, match="unknown model"):
        render_bootstrap("spa3102", None, "https://prov.example.no/ata")


def test_duplicate_port_is_refused() -> None:
    with pytest.raises(ProfileError, match="twice"):
        render_config(_profile("spa122", lines=(_line1(), replace(_line2(), port=1))))


@pytest.mark.parametrize("model", ["pap2t", "spa2102"])
def test_old_linksys_firmware_refuses_tls(model: str) -> None:
    with pytest.raises(ProfileError, match="transports"):
        render_config(_profile(model, sip_transport="tls", sip_proxy_port=5061))


def test_spa122_renders_tls_transport() -> None:
    v = _flat(render_config(_profile("spa122", sip_transport="tls", sip_proxy_port=5061)))
    assert (v["SIP_Transport_1_"], v["Outbound_Proxy_1_"]) == ("TLS", "sbc.example.no:5061")


@pytest.mark.parametrize("url", [
    "https://prov.example.no/ata/t0k3n/cfgother.xml",
    f"https://prov.example.no/ata/cfg{MACS['ht802']}.xml?token=abc",
])
def test_grandstream_url_must_end_in_the_file_the_device_asks_for(url: str) -> None:
    with pytest.raises(ProfileError, match="must end in"):
        render_config(_profile("ht802", profile_url=url))


def test_grandstream_expiry_beyond_45_days_is_refused() -> None:
    with pytest.raises(ProfileError, match="45-day"):
        render_config(_profile("ht802", register_expires=64801 * 60))


# ------------------------------------------------------------------------------------------
# Bootstrap
# ------------------------------------------------------------------------------------------


def test_bootstrap_files_cover_the_vendors_generic_names() -> None:
    names = {name for name, _ in bootstrap_files()}
    assert names == {"spa112.cfg", "spa122.cfg", "spa2102.cfg", "init.cfg", "cfg.xml",
                     "cfg{mac}.xml"}


def test_spa_bootstrap_points_at_per_adapter_profile_without_secrets() -> None:
    v = _flat(render_bootstrap("spa112", None, "https://prov.example.no/ata"))
    assert v["Profile_Rule"] == "https://prov.example.no/ata/spa$MA.xml"
    assert v["Profile_Rule_B"] == v["Profile_Rule"]
    assert not any("Password" in tag or "Passwd" in tag for tag in v)
    assert "--pwd" not in v["Profile_Rule"]


def test_spa_bootstrap_with_known_mac_and_dollar_in_path() -> None:
    v = _flat(render_bootstrap("pap2t", MACS["pap2t"], "http://prov.example.no/a$b/"))
    assert v["Profile_Rule"] == f"http://prov.example.no/a$$b/spa{MACS['pap2t']}.xml"


def test_grandstream_bootstrap_sets_config_server_only() -> None:
    raw = render_bootstrap("ht802", MACS["ht802"], "http://prov.example.no/ata/t0k3n/")
    assert ET.fromstring(raw).findtext("mac") == MACS["ht802"]
    v = _flat(raw)
    assert (v["P212"], v["P237"], v["P145"]) == ("1", "prov.example.no/ata/t0k3n", "0")
    assert not {"P34", "P734", "P1360", "P1361", "P4120", "P4121"} & set(v)
    assert ET.fromstring(render_bootstrap("ht812", None, "https://p.example.no/")).find(
        "mac") is None


def test_bootstrap_refuses_models_without_verified_first_contact_file() -> None:
    with pytest.raises(UnsupportedProfileError):
        render_bootstrap("obi202", None, "https://prov.example.no/ata")


def test_bootstrap_refuses_bad_base_url() -> None:
    with pytest.raises(ProfileError):
        render_bootstrap("ht802", None, "https://prov.example.no/ata?x=1")
    with pytest.raises(ProfileError):
        render_bootstrap("spa112", "E05FB9AABB01", "https://prov.example.no/ata")


# ------------------------------------------------------------------------------------------
# Model table and User-Agent parsing
# ------------------------------------------------------------------------------------------


def test_model_table_templates_exist() -> None:
    templates = Path(__file__).resolve().parents[2] / "ata_templates"
    for info in MODELS.values():
        assert (templates / info.template).is_file(), info.template
        if info.bootstrap_template:
            assert (templates / info.bootstrap_template).is_file()
    assert (templates / "README.md").is_file()


@pytest.mark.parametrize(("ua", "vendor", "model", "firmware", "mac", "serial"), [
    ("Cisco/SPA112-1.4.1(SR5) (88755A000001)(CCQ1234ABCD)", "cisco", "spa112", "1.4.1(SR5)",
     "88755a000001", "CCQ1234ABCD"),
    ("Cisco/SPA122-1.4.1(SR5) (CCQ1234ABCD)", "cisco", "spa122", "1.4.1(SR5)", None,
     "CCQ1234ABCD"),
    ("Cisco/SPA122-1.3.5(004p_XU001)", "cisco", "spa122", "1.3.5(004p_XU001)", None, None),
    ("Linksys/PAP2T-5.1.6(LS) (4MM00F903042)", "linksys", "pap2t", "5.1.6(LS)", None,
     "4MM00F903042"),
    ("Linksys/SPA-2102-5.2.10", "linksys", "spa2102", "5.2.10", None, None),
    ("Grandstream Model HW HT802 V2.1A SW 1.0.17.5 DevId c074ad273a10", "grandstream", "ht802",
     "1.0.17.5", "c074ad273a10", None),
    ("Grandstream Model HW HT812 SW 1.0.43.11 DevId C0:74:AD:11:22:33", "grandstream", "ht812",
     "1.0.43.11", "c074ad112233", None),
    ("Grandstream HT802 1.0.17.5", "grandstream", "ht802", "1.0.17.5", None, None),
    ("OBIHAI/OBi202-3.2.2.5921", "obihai", "obi202", "3.2.2.5921", None, None),
])
def test_parse_user_agent(ua: str, vendor: str, model: str, firmware: str, mac: str | None,
                          serial: str | None) -> None:
    info = parse_user_agent(ua)
    assert info is not None
    assert (info.vendor, info.model, info.firmware, info.mac, info.serial) == (
        vendor, model, firmware, mac, serial)
    assert info.model_key == model
    if ua != "Grandstream HT802 1.0.17.5":  # SIP User-Agent form: no per-model HTTP regex
        match = MODELS[model].user_agent_re.match(ua)
        assert match is not None and match.group("firmware") == firmware


def test_parse_user_agent_unknown_model_and_vendor() -> None:
    info = parse_user_agent("Grandstream Model HW HT802V2 V1.0A SW 1.0.5.4 DevId ec74d763e419")
    assert info is not None and info.model == "ht802v2" and info.model_key is None
    assert parse_user_agent("Mozilla/5.0 (X11; Linux x86_64)") is None
    assert parse_user_agent("") is None
