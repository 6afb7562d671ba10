"""Process identities: parsing from YAML and matching against process facts."""

from __future__ import annotations

import pytest

from latchkey.control.loader import ConfigError, load_config_text
from latchkey.control.model import Evidence, ProcessFacts, ProcessIdentity, SourceCidr

DOC = """\
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: builders}}
spec:
  identities:
{identities}
"""

FACTS = ProcessFacts(
    pid=42,
    uid=1000,
    user="builder",
    exe="/usr/bin/python3.11",
    cmdline=("/usr/bin/python3.11", "/opt/app/run.py", "--fast"),
    exe_sha256="ab" * 32,
)


def load(identities: str) -> object:
    return load_config_text(DOC.format(identities=identities), "c.yaml")


def test_process_identity_loads() -> None:
    config = load(
        "    - sourceCidr: 127.0.0.0/8\n"
        "    - process: {exe: /usr/bin/python3*, uid: 1000, cmdline: '* /opt/app/*',"
        f" exeSha256: {'AB' * 32}}}\n"
    )
    (client,) = config.client_workloads  # type: ignore[attr-defined]
    cidr, process = client.identities
    assert isinstance(cidr, SourceCidr)
    assert process == ProcessIdentity(
        exe="/usr/bin/python3*", uid=1000, cmdline="* /opt/app/*", exe_sha256="ab" * 32
    )
    assert client.needs_process
    assert client.needs_exe_sha256
    assert client.matches(Evidence("127.0.0.1", FACTS))
    assert not client.matches(Evidence("127.0.0.1", None))
    assert not client.matches("127.0.0.1")


@pytest.mark.parametrize(
    ("identities", "where"),
    [
        ("    - {sourceCidr: 10.0.0.0/8, process: {uid: 1}}\n", "c.yaml:6:7: spec.identities[0]"),
        ("    - process: {}\n", "c.yaml:6:16: spec.identities[0].process"),
        ("    - process: {exe: /bin/x, pid: 3}\n", "spec.identities[0].process.pid"),
        ("    - process: {exeSha256: nothex}\n", "spec.identities[0].process.exeSha256"),
        ("    - process: {uid: -1}\n", "spec.identities[0].process.uid"),
    ],
)
def test_bad_process_identities_name_file_line_and_field(identities: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(identities)
    assert where in str(caught.value)


@pytest.mark.parametrize(
    ("identity", "why"),
    [
        (ProcessIdentity(exe="/usr/bin/python3*"), None),
        (ProcessIdentity(exe="/usr/bin/aws"), "executable /usr/bin/python3.11 does not match"),
        (ProcessIdentity(uid=1000, user="builder"), None),
        (ProcessIdentity(uid=0), "uid 1000 is not 0"),
        (ProcessIdentity(user="root"), "user builder is not root"),
        (ProcessIdentity(cmdline="*/opt/app/run.py --fast"), None),
        (ProcessIdentity(cmdline="*--slow*"), "command line does not match"),
        (ProcessIdentity(exe_sha256="ab" * 32), None),
        (ProcessIdentity(exe_sha256="cd" * 32), "executable sha256"),
    ],
)
def test_process_identity_check(identity: ProcessIdentity, why: str | None) -> None:
    result = identity.check(Evidence("127.0.0.1", FACTS))
    if why is None:
        assert result is None
    else:
        assert result is not None
        assert why in result


def test_no_process_facts_is_a_reason_not_a_crash() -> None:
    result = ProcessIdentity(uid=0).check(Evidence("10.1.2.3"))
    assert result is not None
    assert "could not be determined" in result


def test_hostname_identity() -> None:
    import socket

    from latchkey.control.model import HostnameIdentity

    config = load(f"    - hostname: '{socket.gethostname()[:3]}*'\n")
    (client,) = config.client_workloads  # type: ignore[attr-defined]
    assert client.needs_hostname
    assert client.matches(Evidence("127.0.0.1", hostname=socket.gethostname().upper()))
    identity = HostnameIdentity("build-*.example.com")
    assert identity.check(Evidence("10.0.0.1", hostname="build-7.example.com")) is None
    assert identity.check(Evidence("10.0.0.1", hostname="web-1.example.com")) == (
        "host name web-1.example.com does not match build-*.example.com"
    )
    assert "unknown" in str(identity.check(Evidence("10.0.0.1")))
