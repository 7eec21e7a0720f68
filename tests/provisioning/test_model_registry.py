"""The model registry (switch/store/adapter_models.py) is the one list every part uses.

Each registered model must render a complete configuration on every port it
declares and over every transport it declares, have its first-contact file if it
says it has one (and a route serving it), be accepted by the importer and the
store with its declared ports, and carry a resync NOTIFY event. A model added to
the registry without a template, or with a capability the templates cannot honour,
fails here rather than at an adapter.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from provisioning import ata
from provisioning.render import (
    DEFAULT_TEMPLATES_DIR,
    AdapterProfile,
    LineProfile,
    UnsupportedProfileError,
    render_bootstrap,
    render_config,
)
from switch.store.adapter_models import ADAPTER_MODELS, MODELS, ModelInfo, model_info
from switch.store.import_validation import ImportValidationError, parse_import_document

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 3261 §25.1 token (an Event value)


def _mac(i: int) -> str:
    return f"02005e00{i:04x}"


def _profile(info: ModelInfo, transport: str, mac: str) -> AdapterProfile:
    lines = tuple(
        LineProfile(port=p, enabled=True, number=f"4722{p:06d}", auth_user=f"2200000{p}",
                    password=f"secret-{p:02d}x", display_name=f"Port {p}")
        for p in range(1, info.ports + 1)
    )
    name = info.config_filename_pattern.format(mac=mac)
    creds = {"provisioning_user": mac, "provisioning_password": "Pr0v-secret"} if info.http_digest else {}
    return AdapterProfile(
        mac=mac, model=info.key, lines=lines, sip_domain="voip.example.no", sip_proxy_host="sbc.example.no",
        sip_proxy_port=5060, profile_url=f"https://prov.example.no/cfg/t0k3n/{name}", sip_transport=transport,
        **creds,  # type: ignore[arg-type]
    )


def test_the_registry_lists_the_documented_models() -> None:
    assert ADAPTER_MODELS == tuple(MODELS) == ("spa112", "spa122", "pap2t", "spa2102", "ht802", "ht812", "obi202")
    assert all(model_info(key) is MODELS[key] and MODELS[key].key == key for key in MODELS)
    assert model_info("spa9000") is None


@pytest.mark.parametrize("key", list(MODELS))
def test_every_model_renders_on_every_port_and_transport(key: str) -> None:
    info = MODELS[key]
    assert (DEFAULT_TEMPLATES_DIR / info.template).is_file()
    assert info.content_type.startswith("text/xml")
    assert info.ports >= 1 and info.transports and info.expires_unit in ("s", "min")
    for transport in sorted(info.transports):
        mac = _mac(list(MODELS).index(key))
        rendered = render_config(_profile(info, transport, mac))
        ET.fromstring(rendered)  # the declared config format is XML
        text = rendered.decode()
        for port in range(1, info.ports + 1):
            assert f"secret-{port:02d}x" in text, f"{key} over {transport}: port {port} missing"


@pytest.mark.parametrize("key", list(MODELS))
def test_bootstrap_capability_matches_what_renders_and_is_served(key: str) -> None:
    info = MODELS[key]
    paths = {route.path for route in ata.bootstrap_routes()}  # type: ignore[attr-defined]
    if info.bootstrap:
        assert info.bootstrap_template is not None and (DEFAULT_TEMPLATES_DIR / info.bootstrap_template).is_file()
        ET.fromstring(render_bootstrap(key, None, "https://prov.example.no/cfg/"))
        ET.fromstring(render_bootstrap(key, _mac(1), "https://prov.example.no/cfg/"))
        assert info.bootstrap_filename is not None and "/" + info.bootstrap_filename in paths
    else:
        with pytest.raises(UnsupportedProfileError):
            render_bootstrap(key, None, "https://prov.example.no/cfg/")


@pytest.mark.parametrize("key", list(MODELS))
def test_every_model_has_a_resync_event_and_a_vendor(key: str) -> None:
    info = MODELS[key]
    assert _TOKEN.fullmatch(info.resync_event)
    assert info.vendor_name.lower() == info.vendor  # what adapters.vendor stores


@pytest.mark.parametrize("key", list(MODELS))
def test_the_importer_takes_every_model_with_its_declared_ports(key: str) -> None:
    info = MODELS[key]

    def doc(ports: range) -> dict[str, object]:
        lines = [{"port": p, "number": f"2200{p:04d}"} for p in ports]
        return {"customers": [{"id": "C1", "name": "Kari", "adapters": [
            {"mac": "02:00:5e:00:00:01", "model": key.upper(), "lines": lines}]}]}

    parsed = parse_import_document(doc(range(1, info.ports + 1)))
    adapter = parsed.customers[0].adapters[0]
    assert adapter.model == key and [ln.port for ln in adapter.lines] == list(range(1, info.ports + 1))
    with pytest.raises(ImportValidationError) as refused:
        parse_import_document(doc(range(1, info.ports + 2)))
    assert f"lines[{info.ports}].port" in str(refused.value)


def test_an_unknown_model_is_refused_naming_the_registered_ones() -> None:
    with pytest.raises(ImportValidationError) as refused:
        parse_import_document({"customers": [{"id": "C1", "name": "Kari", "adapters": [
            {"mac": "02:00:5e:00:00:01", "model": "spa9000"}]}]})
    assert f"supported: {', '.join(ADAPTER_MODELS)}" in str(refused.value)
