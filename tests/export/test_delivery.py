"""Stem deliveries: definitions, tap points, shared returns, tails, presets, formats, mixes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from stemprint.errors import InputError, SessionError
from stemprint.export.package import RenderOptions, render_package
from stemprint.model.load import load_session
from tests.conftest import write_session, write_wav

RATE = 48000


def _session(tmp_path, rng, delivery=None, stems=None, mixes=None, master=None, extra=None):
    names = ("kick", "snare", "bass", "keys", "vox")
    for i, name in enumerate(names):
        x = np.zeros((1, RATE))
        x[0, 2000 * i : 2000 * i + 6000] = 0.1 * rng.uniform(-1, 1, 6000)
        write_wav(tmp_path / f"{name}.wav", x)
    data = {
        "name": "Delivery",
        "tail_seconds": 0.5,
        "tracks": [
            {
                "name": "Kick",
                "clips": [{"file": "kick.wav"}],
                "output": "Drums",
                "sends": [{"to": "Verb", "level_db": -6}],
            },
            {
                "name": "Snare",
                "clips": [{"file": "snare.wav"}],
                "output": "Drums",
                "sends": [{"to": "Verb", "level_db": -3}],
            },
            {"name": "Bass", "clips": [{"file": "bass.wav"}], "pan": -0.2},
            {
                "name": "Keys",
                "clips": [{"file": "keys.wav"}],
                "pan": 0.4,
                "inserts": [{"type": "highpass_filter", "cutoff_frequency_hz": 200}],
                "sends": [{"to": "Verb", "level_db": -9}],
            },
            {
                "name": "Lead Vox",
                "clips": [{"file": "vox.wav"}],
                "output": "Vocals",
                "sends": [{"to": "Verb", "level_db": -6}],
            },
        ],
        "buses": [
            {"name": "Drums", "gain_db": -1.0},
            {
                "name": "Vocals",
                "inserts": [{"type": "peak_filter", "cutoff_frequency_hz": 3000, "gain_db": 3}],
            },
            {
                "name": "Verb",
                "inserts": [
                    {"type": "reverb", "room_size": 0.8, "wet_level": 1.0, "dry_level": 0.0}
                ],
            },
        ],
        "master": master or {},
    }
    if delivery is not None:
        data["delivery"] = delivery
    if stems is not None:
        data["stems"] = stems
    if mixes is not None:
        data["mixes"] = mixes
    data.update(extra or {})
    return load_session(write_session(tmp_path, data))


STEMS = [
    {"name": "Drums", "routes": ["Drums"]},
    {"name": "Music", "routes": ["Bass", "Keys"]},
    {"name": "Vocals", "routes": ["Vocals"]},
]


def _read(out, manifest, role=None):
    return {
        f["name"]: sf.read(str(out / f["path"]), always_2d=True)[0].T
        for f in manifest["files"]
        if role is None or f["role"] == role
    }


def _render(loaded, out, **options):
    return render_package(loaded, out, RenderOptions(bit_depth="32f", **options)).manifest


def test_split_returns_sum_to_the_mix_and_carry_their_tails(tmp_path, rng):
    loaded = _session(tmp_path, rng, {"returns": "split"}, STEMS)
    out = tmp_path / "out"
    manifest = _render(loaded, out)
    stems = _read(out, manifest, "stem")
    assert list(stems) == ["Drums", "Music", "Vocals"]  # no separate reverb stem
    mix = _read(out, manifest, "mix")["Mix"]
    residual = np.max(np.abs(sum(stems.values()) - mix))
    assert 20 * np.log10(residual) < -100
    # Each stem carries its own reverb tail: after every dry clip has ended (at 14000 samples)
    # each stem still rings.
    for name, data in stems.items():
        tail = data[:, 20000:30000]
        assert 20 * np.log10(np.max(np.abs(tail))) > -60, name
    assert manifest["verification"]["passed"] is True


def test_separate_returns_are_their_own_stem(tmp_path, rng):
    loaded = _session(tmp_path, rng, {"returns": "separate"}, STEMS)
    manifest = _render(loaded, tmp_path / "out")
    stems = _read(tmp_path / "out", manifest, "stem")
    assert list(stems) == ["Drums", "Music", "Vocals", "Verb"]
    assert np.max(np.abs(stems["Drums"][:, 20000:])) == 0  # dry drums: silent after the clips
    mix = _read(tmp_path / "out", manifest, "mix")["Mix"]
    assert 20 * np.log10(np.max(np.abs(sum(stems.values()) - mix))) < -100


def test_stem_definition_errors(tmp_path, rng):
    with pytest.raises(SessionError, match="'Kick' is in two stems"):
        render_package(
            _session(tmp_path, rng, None, STEMS + [{"name": "Kick", "routes": ["Kick"]}]),
            tmp_path / "a",
        )
    with pytest.raises(SessionError, match="reach the master outside every stem: Bass"):
        render_package(
            _session(
                tmp_path,
                rng,
                None,
                [s for s in STEMS if s["name"] != "Music"] + [{"name": "Keys", "routes": ["Keys"]}],
            ),
            tmp_path / "b",
        )
    with pytest.raises(SessionError, match="'Gtr\\*' matches no track or bus"):
        render_package(
            _session(tmp_path, rng, None, STEMS + [{"name": "G", "routes": ["Gtr*"]}]),
            tmp_path / "c",
        )
    assert not any((tmp_path / d).exists() for d in "abc")


def test_patterns_and_nonlinear_split_is_reported(tmp_path, rng):
    stems = [{"name": "Kick", "routes": ["Kic*"]}, {"name": "Rest", "routes": ["Snare", "Bass",
             "Keys", "Vocals"]}]  # fmt: skip
    loaded = _session(tmp_path, rng, {"returns": "split"}, stems)
    # Make the split Drums bus non-linear.
    raw = loaded.path.read_text().replace(
        "gain_db: -1.0",
        "gain_db: -1.0\n  inserts:\n  - type: compressor\n    threshold_db: -30\n    ratio: 4",
    )
    loaded.path.write_text(raw)
    manifest = _render(load_session(loaded.path), tmp_path / "out", verify=False)
    kick = next(f for f in manifest["files"] if f["name"] == "Kick")
    assert kick["tracks"] == ["Kick"] and kick["nonlinear_splits"] == ["Drums"]
    assert kick["role"] == "stem_post_fader" and kick["sums_to"] is None
    assert any("splits Drums" in w for w in manifest["warnings"])


@pytest.mark.parametrize("tap", ["pre_fader", "dry", "via_master"])
def test_tap_points(tmp_path, tap):
    loaded = _session(
        tmp_path,
        np.random.default_rng(99),
        {"tap": tap, "returns": "split"},
        STEMS,
        master={"gain_db": -6.0},
    )
    out = tmp_path / "out"
    manifest = _render(loaded, out)
    files = {f["name"]: f for f in manifest["files"]}
    assert files["Drums"]["tap_point"] == tap and files["Drums"]["role"] == f"stem_{tap}"
    data = _read(out, manifest)
    kick = sf.read(str(tmp_path / "kick.wav"))[0]
    snare = sf.read(str(tmp_path / "snare.wav"))[0]
    centre = np.cos(np.pi / 4)
    if tap == "pre_fader":  # the Drums bus before its -1 dB fader: the tracks' post-fader sum
        expected = (kick + snare) * centre
    elif tap == "dry":  # no inserts, no sends, faders and pans kept
        expected = (kick + snare) * centre * 10 ** (-1 / 20)
    else:  # via the master: the stem with its share of the reverb, through the -6 dB master
        expected = None
    if expected is not None:
        np.testing.assert_allclose(data["Drums"][0, :RATE], expected, atol=1e-6)
    else:
        assert np.max(np.abs(data["Drums"][:, 30000:])) > 0  # the reverb share is in it
        split = render_package(
            _session(tmp_path / "s", np.random.default_rng(99), {"returns": "split"}, STEMS),
            tmp_path / "s" / "out",
            RenderOptions(bit_depth="32f"),
        )
        plain = _read(tmp_path / "s" / "out", split.manifest)["Drums"]
        np.testing.assert_allclose(data["Drums"], plain * 10 ** (-6 / 20), atol=1e-6)
    # Verified all the same: every file measured; only stems through a linear master (a
    # -6 dB gain) promise to sum, to the mix.
    assert manifest["verification"]["passed"], manifest["verification"]
    if tap == "via_master":
        assert [(s["name"], s["reference"], s["exact"]) for s in manifest["sums"]] == [
            ("stems via master", "mix.wav", True)
        ]
    else:
        assert manifest["sums"] == []


def test_alt_mixes_match_an_independent_render(tmp_path, rng):
    mixes = [{"name": "Instrumental", "mute": ["Vocals"]}, {"name": "A Cappella",
             "solo": ["Lead Vox"]}]  # fmt: skip
    loaded = _session(
        tmp_path,
        rng,
        None,
        None,
        mixes,
        master={"inserts": [{"type": "compressor", "threshold_db": -20, "ratio": 3}]},
    )
    out = tmp_path / "out"
    manifest = _render(loaded, out)
    alt = _read(out, manifest, "alt_mix")
    assert set(alt) == {"Instrumental", "A Cappella"}
    assert {f["path"] for f in manifest["files"] if f["role"] == "alt_mix"} == {
        "mixes/Instrumental.wav",
        "mixes/A Cappella.wav",
    }
    # Independent renders of the same session with the routes muted.
    raw = loaded.path.read_text()
    for name, edit in (
        ("Instrumental", ("name: Lead Vox", "name: Lead Vox\n  mute: true")),
        ("A Cappella", ("name: Lead Vox", "name: Lead Vox\n  solo: true")),
    ):
        other = tmp_path / name.replace(" ", "")
        other.mkdir()
        for wav in tmp_path.glob("*.wav"):
            (other / wav.name).write_bytes(wav.read_bytes())
        (other / "s.yaml").write_text(raw.replace(*edit))
        independent = render_package(
            load_session(other / "s.yaml"),
            other / "out",
            RenderOptions(bit_depth="32f", verify=False),
        )
        mix = _read(other / "out", independent.manifest, "mix")["Mix"]
        np.testing.assert_allclose(alt[name], mix, atol=1e-6)


def test_presets(tmp_path, rng):
    def roles(preset, **kwargs):
        folder = tmp_path / preset
        folder.mkdir()
        loaded = _session(folder, rng, {"preset": preset, **kwargs})
        manifest = render_package(loaded, folder / "out").manifest
        return manifest, [(f["role"], f["name"]) for f in manifest["files"]]

    manifest, files = roles("mastering")
    assert manifest["bit_depth"] == "24" and manifest["delivery"]["returns"] == "separate"
    assert ("stem", "Verb") in files and manifest["delivery"]["peak_limit_dbfs"] == -3.0
    manifest, files = roles("mixing")
    assert ("stem", "Verb") not in files and manifest["delivery"]["returns"] == "split"
    manifest, files = roles("remix")
    assert ("stem", "Drums") in files and ("stem_dry", "Drums (dry)") in files
    manifest, files = roles("sync")
    assert {n for r, n in files if r == "alt_mix"} == {"Instrumental", "A Cappella", "TV Mix"}
    manifest, files = roles("multitrack")
    assert [n for r, n in files if r == "track"] == ["Kick", "Snare", "Bass", "Keys", "Lead Vox"]
    assert not [n for r, n in files if r.startswith("stem")]
    manifest, files = roles("performance")
    assert {r for r, _ in files if r.startswith("stem")} == {"stem_via_master"}


def test_multitrack_dry_keeps_mono(tmp_path, rng):
    loaded = _session(tmp_path, rng, {"multitrack": "dry", "stems": False})
    manifest = _render(loaded, tmp_path / "out")
    kick = next(f for f in manifest["files"] if f["name"] == "Kick")
    assert kick["path"] == "multitrack/Kick.wav" and kick["channels"] == 1
    data = sf.read(str(tmp_path / "out" / kick["path"]))[0]
    # float32 file: the source to float32 precision
    np.testing.assert_allclose(data[:RATE], sf.read(str(tmp_path / "kick.wav"))[0], atol=1e-7)


def test_until_silent_tail_and_cap(tmp_path, rng):
    tail = {"mode": "until_silent", "threshold_db": -90, "hold_seconds": 0.1, "max_seconds": 5}
    loaded = _session(tmp_path, rng, {"tail": tail})
    manifest = _render(loaded, tmp_path / "a")
    length = manifest["length_samples"]
    assert RATE < length < RATE + 5 * RATE  # the reverb decays before the cap
    files = _read(tmp_path / "a", manifest)
    hold = int(0.1 * RATE)
    threshold = 10 ** (-90 / 20)
    assert {data.shape[1] for data in files.values()} == {length}
    # Cut exactly: every output below the threshold for the hold time, and the sample before
    # it the last one above the threshold in some output.
    assert max(np.max(np.abs(d[:, -hold:])) for d in files.values()) <= threshold
    assert max(np.max(np.abs(d[:, -hold - 1])) for d in files.values()) > threshold
    # A delay with feedback 1.0 never decays: the cap ends it.
    raw = loaded.path.read_text().replace(
        "  - name: Drums\n",
        "  - name: Drums\n    inserts:\n    - type: delay\n"
        "      delay_seconds: 0.05\n      feedback: 1.0\n      mix: 0.5\n",
        1,
    )
    tail_cap = {"mode": "until_silent", "max_seconds": 1.5}
    loaded.path.write_text(raw.replace("mode: until_silent", "mode: until_silent"))
    capped = render_package(
        _session(
            tmp_path / "cap",
            rng,
            {"tail": tail_cap},
            extra={
                "buses": [
                    {
                        "name": "Drums",
                        "inserts": [
                            {"type": "delay", "delay_seconds": 0.05, "feedback": 1.0, "mix": 0.5}
                        ],
                    },
                    {"name": "Vocals"},
                    {"name": "Verb"},
                ]
            },
        ),
        tmp_path / "cap" / "out",
        RenderOptions(verify=False),
    ).manifest
    assert capped["length_samples"] == RATE + int(1.5 * RATE)


@pytest.mark.parametrize(("fmt", "bit_depth", "subtype"),
                         [("aiff", "24", "PCM_24"), ("flac", "16", "PCM_16"),
                          ("wav", "32", "PCM_32")])  # fmt: skip
def test_formats(tmp_path, rng, fmt, bit_depth, subtype):
    loaded = _session(tmp_path, rng, {"format": fmt, "bit_depth": bit_depth})
    manifest = render_package(loaded, tmp_path / "out").manifest
    for entry in manifest["files"]:
        info = sf.info(str(tmp_path / "out" / entry["path"]))
        assert info.subtype == subtype and info.frames == manifest["length_samples"]
    assert manifest["verification"]["passed"] is True


def test_flac_refuses_float(tmp_path, rng):
    loaded = _session(tmp_path, rng, {"format": "flac", "bit_depth": "32f"})
    with pytest.raises(InputError, match="FLAC takes 16 or 24 bit"):
        render_package(loaded, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_delivery_sample_rate(tmp_path, rng):
    loaded = _session(tmp_path, rng, {"sample_rate": 44100})
    out = tmp_path / "out"
    manifest = render_package(loaded, out, RenderOptions(bit_depth="32f")).manifest
    expected = round(int(1.5 * RATE) * 44100 / RATE)
    assert manifest["sample_rate"] == 44100 and manifest["length_samples"] == expected
    for entry in manifest["files"]:
        info = sf.info(str(out / entry["path"]))
        assert info.samplerate == 44100 and info.frames == expected
    assert any("44100 Hz" in w for w in manifest["warnings"])
    assert manifest["verification"]["passed"] is True


def test_file_name_template_and_collision(tmp_path, rng):
    loaded = _session(tmp_path, rng, {"file_name": "{session}_{index}_{stem}_{sample_rate}"})
    manifest = render_package(loaded, tmp_path / "out").manifest
    paths = [f["path"] for f in manifest["files"] if f["role"] == "stem"]
    assert paths[:2] == ["stems/Delivery_01_Bass_48000.wav", "stems/Delivery_02_Keys_48000.wav"]
    bad = _session(tmp_path / "b", rng, {"file_name": "{session}"})
    with pytest.raises(InputError, match="would both be written"):
        render_package(bad, tmp_path / "b" / "out")
    assert not (tmp_path / "b" / "out").exists()


def test_mono_stems_where_the_route_is_mono(tmp_path, rng):
    loaded = _session(tmp_path, rng, {"mono_stems": True, "multitrack": "post_fader"})
    out = tmp_path / "out"
    manifest = render_package(loaded, out, RenderOptions(bit_depth="24")).manifest
    files = {(f["role"], f["name"]): f for f in manifest["files"]}
    # Bass is panned (-0.2): stereo; Kick is centred and mono: one channel.
    assert files[("track", "Kick")]["channels"] == 1
    assert files[("track", "Bass")]["channels"] == 2
    assert files[("stem", "Bass")]["channels"] == 2
    kick = sf.read(str(out / files[("track", "Kick")]["path"]))[0]
    source = sf.read(str(tmp_path / "kick.wav"))[0] * np.sqrt(0.5)
    assert np.max(np.abs(kick[:RATE] - source)) <= 2**-23
    assert sf.info(str(out / files[("track", "Kick")]["path"])).channels == 1
