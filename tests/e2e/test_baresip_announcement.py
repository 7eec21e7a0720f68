"""A real phone hears the announcement: baresip dials a number that is not in use.

The switch answers with 183 and its SDP, plays the prompt as early media, then
sends 404 with its Reason. baresip (an independent SIP/RTP stack) records what
it decoded; the recording must be speech for about as long as the prompt, and
its loudness envelope must follow the prompt the switch shipped. Runs in a
private network namespace like tests/e2e/test_baresip.py (baresip needs a
non-loopback interface); SQLite only, since the database plays no part here.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from harness.audio import envelope_correlation, make_tone_wav, sox_stat
from harness.baresip import Baresip, tool_missing
from harness.netns import NetNamespace, NetnsSwitch, can_make_namespaces
from harness.softswitch import import_file
from switch.media.catalogue import load_catalogue
from switch.media.library import PromptLibrary
from tests.conftest import AdapterData, SwitchHome, attach_log

pytestmark = pytest.mark.e2e

NOT_IN_USE = "22000099"
"""A line we own but have switched off: ``number_not_in_use`` (404, Q.850 1)."""


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_baresip_hears_the_number_not_in_use_prompt(
    request: pytest.FixtureRequest, db_backend: str, switch_home: SwitchHome, imported_adapter: AdapterData,
    tmp_path: Path,
) -> None:
    why = tool_missing()
    if why is not None:
        pytest.fail(why, pytrace=False)
    if not can_make_namespaces():
        pytest.skip("network namespaces need root (CAP_SYS_ADMIN)")
    import_file(switch_home.db_url, {"customers": [{"id": "C2002", "name": "Ola Nordmann", "adapters": [
        {"mac": "00:0E:08:AB:CD:99", "model": "spa112",
         "lines": [{"port": 1, "number": NOT_IN_USE, "password": "Off-secret-99", "enabled": False}]}]}]},
        key_file=switch_home.key_file, cwd=switch_home.dir)
    selection = load_catalogue().select("number_not_in_use", "nb")
    assert selection is not None
    prompt = tmp_path / "prompt.wav"
    raw = tmp_path / "prompt.ulaw"
    raw.write_bytes(PromptLibrary().audio(selection, "PCMU"))
    subprocess.run(["sox", "-t", "raw", "-r", "8000", "-e", "mu-law", "-c", "1", str(raw), "-e", "signed-integer",
                    "-b", "16", str(prompt)], check=True, capture_output=True)
    prompt_len = sox_stat(prompt).length_s
    line = imported_adapter.lines[0]
    with NetNamespace() as netns:
        sw = NetnsSwitch(db_url=switch_home.db_url, workdir=switch_home.dir, key_file=switch_home.key_file,
                         sip_port=5060, http_port=8080, netns=netns,
                         extra_args=("--announcements", "on", "--rtp-ports", "30000-30099"))
        attach_log(request, lambda: (f"softswitch log ({sw.log_path})", sw.log_text()))
        request.addfinalizer(sw.stop)
        sw.launch()
        silence = make_tone_wav(tmp_path / "quiet.wav", seconds=30, freq=300, volume=0.0)
        phone = Baresip(name="a", home=tmp_path / "a", netns=netns, user=line.number, password=line.password,
                        registrar="127.0.0.1:5060", sip_port=5062, ctrl_port=4444, rtp_ports=(20000, 20099),
                        audio_source=silence)
        attach_log(request, lambda: (f"baresip log ({phone.log_path})", phone.log_text()))
        request.addfinalizer(phone.stop)
        sw.wait_ready()
        phone.start()
        phone.connect()
        phone.wait_registered()
        t0 = time.monotonic()
        dialled = phone.command("dial", f"sip:{NOT_IN_USE}@127.0.0.1")
        assert dialled["ok"] is True, dialled
        closed = phone.wait_event("CALL_CLOSED", timeout=prompt_len + 10)
        took = time.monotonic() - t0
        assert "404" in closed["param"], closed  # the final response after the prompt
        assert took >= prompt_len - 0.5, f"the call ended after {took:.1f}s, before the {prompt_len:.1f}s prompt"
        phone.stop()
        heard = phone.recording("dec")
        stat = sox_stat(heard)
        print(f"\nprompt {prompt_len:.2f}s; baresip heard {stat}; call took {took:.2f}s")
        assert stat.length_s >= prompt_len - 1.0, stat
        assert stat.rms > 0.02, f"the phone heard silence: {stat}"
        corr = envelope_correlation(prompt, heard)
        print(f"envelope correlation prompt / heard: {corr:.3f}")
        assert corr > 0.8, f"what the phone heard does not follow the prompt (correlation {corr:.2f})"
        log = sw.log_text()
        assert "Traceback" not in log, log[-6000:]
