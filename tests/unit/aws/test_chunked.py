"""aws-chunked bodies: AWS's published streaming examples, framing errors, re-signing."""

from __future__ import annotations

import pytest

from latchkey.aws import sigv4
from latchkey.aws.chunked import (
    AwsChunkedDecoder,
    Chunk,
    ChunkFormatError,
    ChunkResigner,
    ChunkSigning,
    Trailer,
    sign_chunks,
)

# "Signature Calculations for the Authorization Header: Transferring Payload in Multiple
# Chunks" and its trailer variant, in the Amazon S3 API reference: 64 KiB + 1 KiB of 'a'.
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE = "20130524T000000Z"
SCOPE = sigv4.CredentialScope("20130524", "us-east-1", "s3")
KEY = sigv4.derive_signing_key(SECRET, SCOPE)
PAYLOAD_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
PAYLOAD_SIGS = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
TRAILER_SIGS = [
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
]
TRAILER_FIELD = b"x-amz-checksum-crc32c:sOO8/Q=="
TRAILER_SIG = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
CHUNKS = [b"a" * 65536, b"a" * 1024]


def documented_body(sigs: list[str], trailer: bool) -> bytes:
    body = (
        f"10000;chunk-signature={sigs[0]}\r\n".encode() + CHUNKS[0] + b"\r\n"
        + f"400;chunk-signature={sigs[1]}\r\n".encode() + CHUNKS[1] + b"\r\n"
        + f"0;chunk-signature={sigs[2]}\r\n".encode()
    )  # fmt: skip
    if trailer:
        return body + TRAILER_FIELD + f"\r\nx-amz-trailer-signature:{TRAILER_SIG}\r\n\r\n".encode()
    return body + b"\r\n"


def test_signing_reproduces_the_documented_chunk_signatures() -> None:
    signing = ChunkSigning(KEY, DATE, SCOPE, PAYLOAD_SEED)
    body = sign_chunks(CHUNKS, signing)
    assert body == documented_body(PAYLOAD_SIGS, trailer=False)
    assert len(body) == 66824  # the documented Content-Length


def test_signing_reproduces_the_documented_trailer_signature() -> None:
    signing = ChunkSigning(KEY, DATE, SCOPE, TRAILER_SEED)
    assert sign_chunks(CHUNKS, signing, trailer=[TRAILER_FIELD]) == documented_body(
        TRAILER_SIGS, trailer=True
    )


@pytest.mark.parametrize("piece", [1, 7, 997, 70000])
@pytest.mark.parametrize("trailer", [False, True], ids=["payload", "payload-trailer"])
def test_resigning_in_any_pieces_gives_the_documented_body(piece: int, trailer: bool) -> None:
    """A body signed with a placeholder key comes out as if signed with the documented one."""
    fake = ChunkSigning(sigv4.derive_signing_key("placeholder", SCOPE), DATE, SCOPE, "0" * 64)
    client = sign_chunks(CHUNKS, fake, trailer=[TRAILER_FIELD] if trailer else None)
    seed = TRAILER_SEED if trailer else PAYLOAD_SEED
    resigner = ChunkResigner(
        ChunkSigning(KEY, DATE, SCOPE, seed), trailer=trailer, max_chunk_bytes=1 << 20
    )
    out = b"".join(resigner.feed(client[i : i + piece]) for i in range(0, len(client), piece))
    resigner.finish()
    assert out == documented_body(TRAILER_SIGS if trailer else PAYLOAD_SIGS, trailer)
    assert len(out) == len(client)
    assert resigner.decoded_length == 66560


def test_unsigned_trailer_bodies_decode() -> None:
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"
    decoder = AwsChunkedDecoder(signed=False, trailer=True, max_chunk_bytes=100)
    items = decoder.feed(body)
    decoder.finish()
    assert items == [
        Chunk(b"5", b"hello", None),
        Chunk(b"0", b"", None),
        Trailer((b"x-amz-checksum-crc32:NhCmhg==",), None),
    ]


SIG = "a" * 64


@pytest.mark.parametrize(
    ("body", "trailer"),
    [
        (b"5\r\nhello\r\n", False),  # no chunk-signature
        (f"5;chunk-signature={SIG[:-1]}\r\nhello\r\n".encode(), False),  # short signature
        (f"5;chunk-signature={SIG.upper()}\r\nhello\r\n".encode(), False),
        (f"zz;chunk-signature={SIG}\r\n".encode(), False),
        (f"6;chunk-signature={SIG}\r\nhello\r\n".encode() + b"xx", False),  # length lies
        (f"0;chunk-signature={SIG}\r\n\r\nmore".encode(), False),  # data after the end
        (f"0;chunk-signature={SIG}\r\nx\r\n".encode(), False),
        (f"0;chunk-signature={SIG}\r\nx-amz-checksum-crc32:AA==\r\n\r\n".encode(), True),
        (f"101;chunk-signature={SIG}\r\n".encode(), False),  # over max_chunk_bytes
        (b"1" * 5000, False),  # endless size line
    ],
)
def test_bad_framing_is_refused(body: bytes, trailer: bool) -> None:
    decoder = AwsChunkedDecoder(signed=True, trailer=trailer, max_chunk_bytes=256)

    def decode() -> None:
        decoder.feed(body)
        decoder.finish()

    with pytest.raises(ChunkFormatError) as err:
        decode()
    assert SIG not in str(err.value)


def test_a_truncated_body_is_refused_at_the_end() -> None:
    decoder = AwsChunkedDecoder(signed=True, trailer=False, max_chunk_bytes=256)
    decoder.feed(f"5;chunk-signature={SIG}\r\nhello\r\n".encode())
    with pytest.raises(ChunkFormatError):
        decoder.finish()
