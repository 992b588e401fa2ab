"""Standard Webhooks signatures (checked with the reference `standardwebhooks` library and a vector
computed by hand) and the SSRF rules for webhook targets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import socket
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from labeler.webhooks.delivery import backoff_s, new_secret, sign
from labeler.webhooks.targets import (
    TargetRefused,
    address_problem,
    check_url,
    parse_networks,
    resolve,
)


def test_signature_verifies_with_the_reference_library():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = json.dumps({"type": "label.submitted", "data": {"project_id": 3}}).encode()
    ts = int(time.time())
    headers = {
        "webhook-id": "msg_abc",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, "msg_abc", ts, body),
    }
    assert Webhook(secret).verify(body, headers) == {
        "type": "label.submitted",
        "data": {"project_id": 3},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)  # a changed body
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)  # another endpoint's secret
    stale = {**headers, "webhook-timestamp": str(ts - 3600)}
    stale["webhook-signature"] = sign(secret, "msg_abc", ts - 3600, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, stale)  # replayed an hour later


def test_signature_matches_a_hand_computed_vector():
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"a":1}'
    expected = base64.b64encode(
        hmac.new(key, b'msg_1.1700000000.{"a":1}', hashlib.sha256).digest()
    ).decode()
    assert sign(secret, "msg_1", 1700000000, body) == "v1," + expected
    # the same value computed apart from Python: printf '%s' 'msg_1.1700000000.{"a":1}' |
    #   openssl dgst -sha256 -mac HMAC -macopt hexkey:000102...1f -binary | base64
    assert expected == "AMaOha7DUT/0J0JMycRuYOBSvbx3WtwLd2khXXbaVj4="


def test_backoff_doubles_and_is_capped():
    assert [backoff_s(n, 30) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff_s(40, 30) == 6 * 3600


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.org/x", "https://"),
        ("javascript:alert(1)", "https://"),
        ("https://user:pw@example.org/", "password"),
        ("https:///nohost", "no host"),
        ("https://example.org:99999/", "port"),
        ("https://exa mple.org/", "spaces"),
        ("https://example.org/\x00", "control"),
        ("https://example.org/" + "x" * 2000, "longer"),
        ("", "required"),
        (None, "required"),
    ],
)
def test_bad_urls_are_refused_in_words(url, words):
    with pytest.raises(TargetRefused) as err:
        check_url(url)
    assert words in err.value.message and err.value.status == 422


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "100.64.0.1",  # carrier-grade NAT
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
    ],
)
def test_non_public_addresses_are_refused_by_default(address):
    assert address_problem(ipaddress.ip_address(address), ()) is not None


def test_unspecified_and_multicast_are_refused_even_when_allowed():
    everything = parse_networks(["0.0.0.0/0", "::/0"])
    for address in ("0.0.0.0", "::", "224.0.0.1", "ff02::1"):
        assert address_problem(ipaddress.ip_address(address), everything) is not None
    assert address_problem(ipaddress.ip_address("10.1.2.3"), everything) is None


def test_public_addresses_pass_and_allowed_networks_open_only_themselves():
    assert address_problem(ipaddress.ip_address("93.184.216.34"), ()) is None
    allowed = parse_networks(["127.0.0.0/8"])
    assert address_problem(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), allowed) is not None
    assert address_problem(ipaddress.ip_address("::1"), allowed) is not None
    with pytest.raises(ValueError, match="not a network"):
        parse_networks(["10.0.0.0/33"])


def test_resolve_checks_every_address_of_the_host(monkeypatch):
    def fake_getaddrinfo(host, port, type=0):
        table = {
            "public.test": ["93.184.216.34"],
            "mixed.test": ["93.184.216.34", "10.0.0.5"],  # one private address is enough to refuse
            "localhost": ["127.0.0.1"],
        }
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    target = resolve("https://public.test/hooks?x=1", ())
    assert (target.host, target.port, target.path, target.addresses) == (
        "public.test",
        443,
        "/hooks?x=1",
        ("93.184.216.34",),
    )
    with pytest.raises(TargetRefused, match="10.0.0.5 is a private"):
        resolve("https://mixed.test/", ())
    with pytest.raises(TargetRefused, match="loopback"):
        resolve("http://localhost:8000/", ())
    assert resolve("http://localhost:8000/", parse_networks(["127.0.0.0/8"])).port == 8000
    with pytest.raises(TargetRefused, match="could not be resolved"):
        resolve("https://nowhere.test/", ())


def test_the_readmes_receiver_example_verifies_a_delivery():
    """The README's verify() (Webhooks section) accepts our signature and refuses a tampered body."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 (our own README's example)
    secret, body, ts = new_secret(), b'{"type":"label.submitted"}', int(time.time())
    headers = {
        "webhook-id": "msg_x",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, "msg_x", ts, body),
    }
    assert namespace["verify"](secret, headers, body)
    assert not namespace["verify"](secret, headers, body + b"x")
    assert not namespace["verify"](new_secret(), headers, body)
    old = {**headers, "webhook-timestamp": str(ts - 3600)}
    old["webhook-signature"] = sign(secret, "msg_x", ts - 3600, body)
    assert not namespace["verify"](secret, old, body)


def test_bad_webhook_settings_refuse_to_start(tmp_path):
    from helpers import make_config

    from labeler import create_app
    from labeler.config import ConfigError

    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigError, match="not a network"):
        create_app(make_config(tmp_path, url, WEBHOOK_ALLOWED_NETWORKS=("10.0.0.0/40",)))
    with pytest.raises(ConfigError, match="'auto' or 'off'"):
        create_app(make_config(tmp_path, url, WEBHOOK_DELIVERY="sometimes"))
