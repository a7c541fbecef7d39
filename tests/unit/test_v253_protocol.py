"""V.253 without a modem: <DLE> shielding, the voice/command split, G.711, +VSM and caller ID."""

from __future__ import annotations

import itertools
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.lines.at import LineSplitter
from appliance.lines.v253 import (
    CODECS,
    CallerIdField,
    DleDecoder,
    VoiceFormat,
    VoiceLink,
    choose_format,
    parse_cid_line,
    parse_vsm_line,
    shield,
)
from appliance.sim import v253 as sim

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # the stdlib's G.711 (gone in 3.13): a reference no one here wrote
    except ImportError:
        audioop = None

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
EVENT_CODES = st.sampled_from(sorted(set("0123456789*#ABCDbdlhsqu/~^!RH") - {"\x03"}))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, repeats allowed)."""
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# --- <DLE> shielding ---------------------------------------------------------------------------


@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=12))
def test_any_bytes_shielded_then_unshielded_come_back(data, cuts):
    decoder = DleDecoder()
    chunks = [decoder.feed(part) for part in chunked(shield(data), cuts)]
    assert b"".join(c.voice for c in chunks) == data
    assert [e for c in chunks for e in c.events] == []
    assert all(c.rest is None for c in chunks)


@given(
    st.lists(st.one_of(st.binary(min_size=1, max_size=40), EVENT_CODES), max_size=20),
    st.lists(st.integers(0, 900), max_size=12),
)
def test_events_between_voice_bytes_survive_any_chunking(items, cuts):
    stream = b"".join(shield(i) if isinstance(i, bytes) else b"\x10" + i.encode() for i in items)
    decoder = DleDecoder()
    chunks = [decoder.feed(part) for part in chunked(stream, cuts)]
    assert b"".join(c.voice for c in chunks) == b"".join(i for i in items if isinstance(i, bytes))
    assert [e for c in chunks for e in c.events] == [i for i in items if isinstance(i, str)]


def test_a_dle_code_split_across_two_reads_is_one_event():
    decoder = DleDecoder()
    first, second = decoder.feed(b"\x80\x81\x10"), decoder.feed(b"5\x82")
    assert (first.voice, first.events) == (b"\x80\x81", ())
    assert (second.voice, second.events) == (b"\x82", ("5",))


def test_dle_sub_stands_for_two_dle_bytes():
    assert DleDecoder().feed(b"\x01\x10\x1a\x02").voice == b"\x01\x10\x10\x02"


def test_dle_etx_ends_the_stream_and_hands_back_the_text_after_it():
    chunk = DleDecoder().feed(b"\x7f\x10\x10\x10b\x10\x03\r\nOK\r\n")
    assert (chunk.voice, chunk.events, chunk.rest) == (b"\x7f\x10", ("b",), b"\r\nOK\r\n")


# --- the port shared by commands and voice -----------------------------------------------------


class ScriptedPort:
    """A serial port whose reads return the given chunks, one per read, then nothing."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.written = bytearray()
        self.in_waiting = 0

    def read(self, size: int = 1) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def close(self) -> None:
        pass


def read_all(link: VoiceLink, reads: int) -> list[str]:
    splitter = LineSplitter()
    return [line for _ in range(reads) for line in splitter.feed(link.read(64))]


def test_command_text_reaches_the_channel_without_dle_events():
    events: list[str] = []
    link = VoiceLink(ScriptedPort([b"\r\nRI", b"NG\r\n\x10", b"d\r\nNMBR=555\r\n"]), events.append)
    assert read_all(link, 3) == ["RING", "NMBR=555"]
    assert events == ["d"]


@pytest.mark.parametrize("cuts", [[], [3, 10, 11, 12, 300, 301, 530, 531, 540], [11, 529]])
def test_after_connect_the_bytes_are_voice_until_dle_etx_and_its_ok_is_kept_back(cuts):
    voice = bytes(range(256)) * 2
    wire = b"\r\nCONNECT\r\n" + shield(voice) + b"\x10u\x10\x03\r\nOK\r\n\r\nRING\r\n"
    events: list[str] = []
    heard = bytearray()
    link = VoiceLink(ScriptedPort(chunked(wire, cuts)), events.append)
    link.arm(heard.extend)
    lines = read_all(link, 10)
    assert lines == ["CONNECT", "RING"]
    assert bytes(heard) == voice
    assert events == ["u"]
    assert link.stream_closed.is_set() and not link.streaming


def test_connect_ending_in_a_bare_cr_still_starts_the_stream():
    heard = bytearray()
    link = VoiceLink(ScriptedPort([b"\r\nCONNECT\r", b"\x80\x81"]), lambda code: None)
    link.arm(heard.extend)
    assert read_all(link, 2) == ["CONNECT"]
    assert bytes(heard) == b"\x80\x81"


def test_waiting_for_the_end_of_a_stream_that_only_sent_dle_etx_returns_to_commands():
    link = VoiceLink(ScriptedPort([b"\r\nCONNECT\r\n\x80\x10\x03"]), lambda code: None)
    link.arm(lambda data: None)
    link.read(64)
    assert link.stream_ended.is_set()
    assert link.wait_closed(0.01) and not link.streaming


def test_writes_from_two_threads_do_not_interleave():
    port = ScriptedPort([])
    link = VoiceLink(port, lambda code: None)
    frames = [bytes([n]) * 300 for n in (1, 2)]
    threads = [
        threading.Thread(target=lambda f=f: [link.write(f) for _ in range(50)]) for f in frames
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    blocks = [bytes(port.written[i : i + 300]) for i in range(0, len(port.written), 300)]
    assert sorted(set(blocks)) == frames


# --- G.711 and 8-bit linear --------------------------------------------------------------------


@pytest.mark.skipif(audioop is None, reason="the stdlib audioop is gone in this Python")
@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_matches_the_stdlib_for_every_sample_and_code(law):
    to_law = audioop.lin2ulaw if law == "ulaw" else audioop.lin2alaw
    from_law = audioop.ulaw2lin if law == "ulaw" else audioop.alaw2lin
    reference = to_law(ALL_INT16.astype("<i2").tobytes(), 2)
    decoded = np.frombuffer(from_law(bytes(range(256)), 2), "<i2")
    assert CODECS[law].encode(ALL_INT16) == reference  # the driver
    assert np.array_equal(CODECS[law].decode(bytes(range(256))), decoded)
    assert sim.encode(law, ALL_INT16) == reference  # the emulator, written apart
    assert np.array_equal(sim.decode(law, bytes(range(256))), decoded)


@pytest.mark.parametrize(
    ("law", "sample", "code"),
    [("ulaw", 0, 0xFF), ("ulaw", 32124, 0x80), ("ulaw", -32124, 0x00), ("ulaw", -15996, 0x10),
     ("alaw", 8, 0xD5), ("alaw", -8, 0x55), ("alaw", -32256, 0x2A), ("alaw", -2752, 0x10),
     ("u8", 0, 0x80), ("u8", -28672, 0x10), ("s8", 0, 0x00), ("s8", 4096, 0x10)],
)  # fmt: skip
def test_known_codes_decode_and_encode_both_ways(law, sample, code):
    assert CODECS[law].decode(bytes([code]))[0] == sample
    assert CODECS[law].encode(np.array([sample], np.int16)) == bytes([code])
    assert sim.encode(law, np.array([sample])) == bytes([code])


@pytest.mark.parametrize("law", ["ulaw", "alaw", "u8", "s8"])
def test_every_code_survives_decode_then_encode(law):
    codes = bytes(range(256))
    again = CODECS[law].encode(CODECS[law].decode(codes))
    if law == "ulaw":  # 0x7F is u-law's negative zero: it comes back as 0xFF
        codes = codes.replace(b"\x7f", b"\xff")
    assert again == codes


def test_a_tone_through_ulaw_keeps_a_38_db_signal_to_noise_ratio():
    tone = np.round(8000 * np.sin(2 * np.pi * 1000 * np.arange(8000) / 8000)).astype(np.int16)
    error = CODECS["ulaw"].decode(CODECS["ulaw"].encode(tone)).astype(float) - tone
    assert 10 * np.log10(np.mean(tone.astype(float) ** 2) / np.mean(error**2)) > 33


# --- +VSM formats ------------------------------------------------------------------------------

USR_5637 = [  # AT+VSM=? on firmware 1.2.23 (NCID's hangup documentation)
    '128,"8-BIT LINEAR",(7200,8000,11025)',
    '129,"16-BIT LINEAR",(7200,8000,11025)',
    '130,"8-BIT ALAW",(8000)',
    '131,"8-BIT ULAW",(8000)',
    '132,"IMA ADPCM",(7200,8000,11025)',
]
CX93001 = [  # AT+VSM=? on CX93001-EIS_V0.2013-V92 (the same documentation)
    '0,"SIGNED PCM",8,0,8000,0,0',
    '1,"UNSIGNED PCM",8,0,8000,0,0',
    '129,"IMA ADPCM",4,0,8000,0,0',
    '130,"UNSIGNED PCM",8,0,8000,0,0',
    '131,"Mu-Law",8,0,8000,0,0',
    '132,"A-Law",8,0,8000,0,0',
    '133,"14 bit PCM",14,0,8000,0,0',
]


def test_usr_short_form_formats_are_read():
    formats = [parse_vsm_line(line) for line in USR_5637]
    assert [f.codec for f in formats] == ["u8", None, "alaw", "ulaw", None]
    assert formats[0] == VoiceFormat(128, "8-BIT LINEAR", None, ((7200, 7200), (8000, 8000),
                                                                 (11025, 11025)))  # fmt: skip
    assert not formats[2].supports(7200) and formats[2].supports(8000)


def test_v253_long_form_formats_are_read():
    formats = [parse_vsm_line(line) for line in CX93001]
    assert [f.codec for f in formats] == ["s8", "u8", None, "u8", "ulaw", "alaw", None]
    assert formats[6].bits == 14


@pytest.mark.parametrize(
    ("line", "codec", "rate_ok"),
    [('4,"G711U",8,0,(8000),(0),(0)', "ulaw", True),  # t38modem's V.253 codes
     ('5,"G711A",8,0,(8000),(0),(0)', "alaw", True),
     ('131,"G.711 ULAW",8,0,(8000),(0),(0)', "ulaw", True),
     ('1,"UNSIGNED PCM",8,0,(7200-11025),0,0', "u8", True),
     ('140,"2 Bit ADPCM",2,0,(7200,8000,11025),0,0', None, True),
     ('1,"UNSIGNED PCM",8,0,7200,0,0', "u8", False)],
)  # fmt: skip
def test_other_modems_formats(line, codec, rate_ok):
    voice = parse_vsm_line(line)
    assert (voice.codec, voice.supports(8000)) == (codec, rate_ok)


@pytest.mark.parametrize(
    ("lines", "cml"),
    [(USR_5637, 131), (CX93001, 131), (USR_5637[:3], 130), (USR_5637[:1], 128),
     (CX93001[:1], 0), (CX93001[2:3], None)],
)  # fmt: skip
def test_the_best_8000_hz_format_is_chosen(lines, cml):
    chosen = choose_format(parse_vsm_line(line) for line in lines)
    assert (chosen.cml if chosen else None) == cml


@pytest.mark.parametrize(
    "line", ["OK", "", '128,"8-BIT LINEAR"', "+VSM: 128", '1,"X",8,0,fast,0,0']
)
def test_lines_that_are_not_formats_are_refused(line):
    with pytest.raises(ValueError):
        parse_vsm_line(line)


# --- caller ID ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "tag", "value", "caller"),
    [("DATE=0117", "DATE", "0117", "0117"),  # USR 5637 (callattendant issue 11)
     ("NMBR=5551234567", "NMBR", "5551234567", "5551234567"),
     ("NAME=WIRELESS CALLER", "NAME", "WIRELESS CALLER", "WIRELESS CALLER"),
     ("NMBR = 0207123456", "NMBR", "0207123456", "0207123456"),  # Conexant, with spaces
     ("TIME = 1310", "TIME", "1310", "1310"),
     ("NMBR=P", "NMBR", "P", ""),  # private
     ("NMBR=O", "NMBR", "O", ""),  # out of area
     ("DDN_NMBR=5551234567", "DDN_NMBR", "5551234567", "5551234567")],
)  # fmt: skip
def test_caller_id_lines_are_read(line, tag, value, caller):
    field = parse_cid_line(line)
    assert field == CallerIdField(tag, value)
    assert field.caller_value == caller


@pytest.mark.parametrize("line", ["RING", "OK", "NUMBER=1", "NMBR 555", ""])
def test_other_lines_are_not_caller_id(line):
    with pytest.raises(ValueError):
        parse_cid_line(line)


# --- the emulator's command splitting ----------------------------------------------------------


def test_command_lines_split_into_commands():
    assert sim.split_commands("E0V1+VCID=1") == ["E0", "V1", "+VCID=1"]
    assert sim.split_commands("-SCID=1;+VCID=1;-STE=3") == ["-SCID=1", "+VCID=1", "-STE=3"]
    assert sim.split_commands("&FS0=0+VSM=131,8000") == ["&F", "S0=0", "+VSM=131,8000"]
    with pytest.raises(ValueError):
        sim.split_commands("E0%%")
