"""Each kind of bad input gives one clear error naming the file, the field and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from stemprint.errors import AudioFileError, InputError, RenderError, SessionError
from stemprint.graph.compile import compile_session
from stemprint.model.load import load_session
from tests.conftest import render_arrays, write_session, write_wav


@pytest.fixture
def audio(tmp_path):
    write_wav(tmp_path / "a.wav", 0.1 * np.ones((1, 4800)))
    return tmp_path


def _compile(path, **kwargs):
    return compile_session(load_session(path), **kwargs)


def _raises(exc_type, path, *fragments, **kwargs):
    with pytest.raises(exc_type) as info:
        _compile(path, **kwargs)
    text = info.value.format()
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    assert info.value.exit_code in (2,)
    return text


def test_missing_audio_file(audio):
    path = write_session(audio, {"tracks": [{"name": "A", "clips": [{"file": "nope.wav"}]}]})
    _raises(
        AudioFileError,
        path,
        "audio file not found",
        "nope.wav",
        "tracks[0].clips[0].file",
        "relative to the session file",
    )


def test_corrupt_wav(audio):
    (audio / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    path = write_session(audio, {"tracks": [{"name": "A", "clips": [{"file": "bad.wav"}]}]})
    _raises(AudioFileError, path, "cannot read audio file", "bad.wav", "corrupt")


def test_unknown_bus_in_output_suggests_the_close_name(audio):
    path = write_session(
        audio,
        {
            "tracks": [{"name": "A", "clips": [{"file": "a.wav"}], "output": "Drumz"}],
            "buses": [{"name": "Drums"}],
        },
    )
    _raises(
        SessionError,
        path,
        "outputs to unknown bus 'Drumz'",
        "tracks[0].output",
        "did you mean 'Drums'",
        "session.yaml:",
    )


def test_unknown_bus_in_send(audio):
    path = write_session(
        audio,
        {"tracks": [{"name": "A", "clips": [{"file": "a.wav"}], "sends": [{"to": "Verb"}]}]},
    )
    _raises(SessionError, path, "sends to unknown bus 'Verb'", "tracks[0].sends[0].to")


def test_duplicate_names(audio):
    path = write_session(
        audio,
        {"tracks": [{"name": "A", "clips": [{"file": "a.wav"}]}, {"name": "A"}]},
    )
    _raises(SessionError, path, "duplicate name 'A' at tracks[1]", "tracks[0]")


def test_track_and_bus_may_share_a_name(audio):
    path = write_session(
        audio,
        {
            "tracks": [{"name": "Bass", "clips": [{"file": "a.wav"}], "output": "Bass"}],
            "buses": [{"name": "Bass"}],
        },
    )
    out, graph = render_arrays(path)
    assert [s.name for s in graph.stems] == ["Bass"]
    assert out["stem:Bass"].any()


def test_stems_with_the_same_name_are_an_error(audio):
    path = write_session(
        audio,
        {"tracks": [{"name": "Bass", "clips": [{"file": "a.wav"}]}], "buses": [{"name": "Bass"}]},
    )
    _raises(SessionError, path, "stems would share a name")


def test_routing_cycle_is_printed(audio):
    path = write_session(
        audio,
        {
            "tracks": [{"name": "T", "clips": [{"file": "a.wav"}], "output": "Drums"}],
            "buses": [
                {"name": "Drums", "output": "Room"},
                {"name": "Room", "sends": [{"to": "Drums"}]},
            ],
        },
    )
    text = _raises(SessionError, path, "routing cycle")
    assert "Drums → Room → Drums" in text or "Room → Drums → Room" in text


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1.0, "must be zero or positive"), (float("nan"), "finite"), (float("inf"), "finite")],
)
def test_negative_or_nan_time(audio, value, message):
    path = write_session(
        audio, {"tracks": [{"name": "A", "clips": [{"file": "a.wav", "start_seconds": value}]}]}
    )
    text = _raises(SessionError, path, message, "tracks[0].clips[0].start_seconds")
    assert ":9" in text or ":" in text.split("tracks")[0]  # carries a line number


def test_error_names_the_line(audio):
    (audio / "s.yaml").write_text(
        "stemprint: 1\ntracks:\n  - name: A\n    clips:\n      - file: a.wav\n"
        "        start_seconds: -2\n",
        "utf-8",
    )
    text = _raises(SessionError, audio / "s.yaml", "s.yaml:6", "start_seconds")
    assert "zero or positive" in text


def test_unknown_field_suggests(audio):
    path = write_session(
        audio, {"tracks": [{"name": "A", "gian_db": 3, "clips": [{"file": "a.wav"}]}]}
    )
    _raises(SessionError, path, "unknown field 'gian_db'", "did you mean 'gain_db'")


def test_clip_past_end_of_file(audio):
    path = write_session(
        audio,
        {
            "tracks": [
                {
                    "name": "A",
                    "clips": [{"file": "a.wav", "offset_seconds": 0.05, "duration_seconds": 0.08}],
                }
            ]
        },
    )
    _raises(
        SessionError,
        path,
        "runs past the end of a.wav",
        "duration_seconds",
        "shorten duration_seconds to at most 0.050000",
    )


def test_offset_past_end_of_file(audio):
    path = write_session(
        audio, {"tracks": [{"name": "A", "clips": [{"file": "a.wav", "offset_seconds": 1}]}]}
    )
    _raises(SessionError, path, "past the end of a.wav", "offset_seconds")


def test_sample_rate_mismatch_is_a_warning(audio):
    write_wav(audio / "b.wav", 0.1 * np.ones((1, 4410)), 44100)
    path = write_session(audio, {"tracks": [{"name": "A", "clips": [{"file": "b.wav"}]}]})
    graph = _compile(path)
    warning = "b.wav: 44100 Hz, resampled to 48000 Hz (soxr, very high quality)"
    assert list(graph.warnings) == [warning]


def test_yaml_syntax_error_has_line(audio):
    (audio / "s.yaml").write_text("stemprint: 1\ntracks:\n  - name: A\n   clips: [\n", "utf-8")
    with pytest.raises(SessionError) as info:
        load_session(audio / "s.yaml")
    assert "YAML syntax error" in info.value.format()
    assert info.value.line is not None and info.value.line >= 3


def test_yaml_never_constructs_objects(audio):
    (audio / "s.yaml").write_text(
        "stemprint: 1\nname: !!python/object/apply:os.system ['echo pwned']\n", "utf-8"
    )
    with pytest.raises(SessionError, match="YAML"):
        load_session(audio / "s.yaml")


def test_unknown_insert_type_lists_choices(audio):
    path = write_session(
        audio,
        {
            "tracks": [
                {
                    "name": "Snare",
                    "clips": [{"file": "a.wav"}],
                    "inserts": [{"type": "gain"}, {"type": "compresor"}],
                }
            ]
        },
    )
    _raises(
        InputError,
        path,
        "unknown insert type 'compresor'",
        "'Snare'",
        "inserts[1]",
        "did you mean 'compressor'",
        "valid types:",
        "highpass_filter",
    )


def test_unknown_insert_parameter_lists_valid_ones(audio):
    path = write_session(
        audio,
        {
            "tracks": [
                {
                    "name": "Snare",
                    "clips": [{"file": "a.wav"}],
                    "inserts": [{"type": "compressor", "treshold_db": -10}],
                }
            ]
        },
    )
    _raises(
        InputError,
        path,
        "unknown parameter 'treshold_db' for compressor",
        "did you mean 'threshold_db'",
        "inserts[0]",
        "'Snare'",
    )


def test_invalid_insert_value(audio):
    path = write_session(
        audio,
        {
            "tracks": [
                {
                    "name": "A",
                    "clips": [{"file": "a.wav"}],
                    "inserts": [{"type": "compressor", "ratio": "lots"}],
                }
            ]
        },
    )
    _raises(InputError, path, "invalid parameters for compressor")


def test_external_plugins_need_opt_in(audio):
    (audio / "x.vst3").mkdir()
    path = write_session(
        audio,
        {
            "tracks": [
                {
                    "name": "A",
                    "clips": [{"file": "a.wav"}],
                    "inserts": [{"type": "vst3", "path": "x.vst3"}],
                }
            ]
        },
    )
    _raises(InputError, path, "native code", "--allow-plugins")


def test_nan_from_a_plugin_names_the_route(audio):
    path = write_session(
        audio,
        {
            "tracks": [
                {
                    "name": "Loud",
                    "clips": [{"file": "a.wav"}],
                    "inserts": [{"type": "gain", "gain_db": 2000}],
                }
            ]
        },
    )
    with pytest.raises(RenderError) as info:
        render_arrays(path)
    assert "track 'Loud' produced NaN or Inf after its inserts" in info.value.format()


def test_nan_in_a_float_file_names_the_route(audio):
    x = np.zeros((1, 480))
    x[0, 100] = np.nan
    write_wav(audio / "n.wav", x, subtype="FLOAT")
    path = write_session(audio, {"tracks": [{"name": "Bad", "clips": [{"file": "n.wav"}]}]})
    with pytest.raises(RenderError) as info:
        render_arrays(path)
    assert "'Bad' produced NaN or Inf after its clips" in info.value.format()
    assert "sample 100" in info.value.format()
