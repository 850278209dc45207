"""The page's stylesheet and the stem player's script (hand-written, no library).

Invariants
----------
* :data:`PLAYER_JS` reads only the page: the ``player-data`` JSON and the base64 text of the
  ``audio-N`` elements (embedded) or the relative URLs it names (linked). It never fetches:
  the page's Content-Security-Policy forbids every connection.
* Embedded: one ``AudioContext`` at the package's sample rate (``decodeAudioData`` would
  resample otherwise); every stem and the mix are decoded, each stem through its own
  ``GainNode`` (mute, solo, level), and all sources of a start share one ``when``, so they stay
  sample-aligned; looping uses each source's own ``loopStart``/``loopEnd``.
* The null check renders the audible stems at their levels in an ``OfflineAudioContext`` of the
  reference's length and channels (a mono stem into every channel), subtracts the decoded
  reference in the page and prints the residual's peak and RMS in dBFS and the lag of the
  stems (normalised cross-correlation around the reference's peak, ±1024 samples).
  ``#null-out`` carries the figures as ``data-dbfs``, ``data-rms``, ``data-lag``,
  ``data-run`` (a counter) and ``data-state`` (``running``/``done``). It runs on load and
  after every mute, solo or level change.
* Linked: ``<audio>`` elements started together (volume ≤ 1, not sample-locked, no null check).
"""

CSS = """
:root{--ink:#1d232a;--muted:#5a626c;--line:#e2e5e9;--bg:#f4f5f7;--ok:#1a7f37;--bad:#c62828;
--warn:#a35f00;--ctl:372px}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:var(--bg)}
main{max-width:1260px;margin:0 auto;padding:12px 18px 48px}
h1{font-size:20px;margin:0}
h2{font-size:16px;margin:0 0 8px}
h3{font-size:14px;margin:12px 0 6px}
a{color:#1f5f9f}
.top{display:flex;flex-wrap:wrap;gap:6px 16px;align-items:center;padding:6px 0 8px}
.top .sub{color:var(--muted)}
.verdict{font-weight:700;border-radius:5px;padding:2px 10px;letter-spacing:.04em}
.verdict.pass{background:#dff3e4;color:var(--ok)}
.verdict.fail{background:#fde2e1;color:var(--bad)}
nav{display:flex;gap:14px;font-size:13px;margin:0 0 6px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;
margin:10px 0}
.note{color:var(--muted);font-size:13px;margin:4px 0}
.notes{margin:4px 0 0;padding-left:18px;color:var(--warn);font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600;white-space:nowrap}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px;
word-break:break-all}
.sev{font-weight:700;font-size:12px;text-transform:uppercase}
.sev.error{color:var(--bad)}.sev.warning{color:var(--warn)}.sev.info{color:var(--muted)}
.advice{color:#1f5f9f}
.amber{color:var(--warn);font-weight:600}.red{color:var(--bad);font-weight:700}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;
vertical-align:baseline}
svg.plot{width:100%;height:auto;display:block}
svg.plot *{stroke-linejoin:round;stroke-linecap:butt}
.scroll{overflow-x:auto}
.routing{display:block;max-width:100%;height:auto}
.rt-head{font:600 12px system-ui,"DejaVu Sans",sans-serif;fill:#5a626c}
.rt-name{font:600 12px system-ui,"DejaVu Sans",sans-serif;fill:#1d232a}
.rt-kind{font:10px system-ui,"DejaVu Sans",sans-serif;fill:#6a727c}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:13px;margin:0 0 6px}
details.file{border-top:1px solid var(--line);padding:8px 0}
details.file>summary{cursor:pointer;font-weight:600}
details.file>summary .sub{font-weight:400;color:var(--muted);margin-left:8px}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:2px 16px;
margin:8px 0;font-size:13px}
.facts div{overflow-wrap:anywhere}
.facts b{color:var(--muted);font-weight:600;margin-right:6px}
.facts .wide{grid-column:1/-1}
ul.proc{margin:0;padding-left:16px}
table.channels{width:auto;margin:2px 0 6px}
table.channels td,table.channels th.r{min-width:64px}
.key{display:inline-block;width:18px;height:0;border-top:2px solid;vertical-align:middle;
margin:0 4px 0 10px}
.pl-ruler{height:18px;border-bottom:none}
.pl-ticks{position:relative;height:18px;font-size:11px;color:var(--muted)}
.pl-ticks span{position:absolute;top:1px;transform:translateX(-50%);white-space:nowrap}
.pl-ticks span:first-child{transform:none;padding-left:5px}
.pl-bar{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;margin-bottom:8px}
.pl-bar input[type=number]{width:70px}
#pl-seek{flex:1;min-width:200px}
button{font:inherit;font-size:13px;border:1px solid #b9c0c8;background:#fff;border-radius:4px;
padding:2px 9px;cursor:pointer;color:var(--ink)}
button[aria-pressed=true]{background:var(--ink);border-color:var(--ink);color:#fff}
button:disabled{opacity:.5;cursor:default}
#pl-play{min-width:92px;font-weight:600}
.pl-lanes{position:relative}
.pl-row{display:grid;grid-template-columns:var(--ctl) 1fr;align-items:center;
border-bottom:1px solid var(--line);height:34px}
.pl-ctl{display:flex;align-items:center;gap:6px;padding-right:10px;white-space:nowrap}
.pl-name{flex:1;overflow:hidden;text-overflow:ellipsis;font-weight:600}
.pl-level{width:96px}
.pl-db{width:56px;text-align:right;font-variant-numeric:tabular-nums;font-size:12px;
color:var(--muted)}
.pl-lane{height:30px;cursor:pointer;background:#fafbfc}
.pl-lane svg{width:100%;height:100%;display:block}
.pl-off .pl-lane,.pl-off .pl-name{opacity:.35}
.pl-row.mix{background:#f7f8fa}
#pl-head{position:absolute;top:0;bottom:0;width:2px;margin-left:-1px;background:#e0245e;
pointer-events:none;left:var(--ctl)}
#pl-shade{position:absolute;top:0;bottom:0;background:rgba(31,119,180,.12);pointer-events:none}
#null-out{font-weight:600;margin:8px 0 2px}
#null-out .sub{font-weight:400;color:var(--muted)}
"""
"""The report's stylesheet."""

PLAYER_JS = r"""
(() => {
  "use strict";
  const D = JSON.parse(document.getElementById("player-data").textContent);
  const $ = (id) => document.getElementById(id);
  const status = $("pl-status"), out = $("null-out"), seek = $("pl-seek"), pos = $("pl-pos");
  const loop = { on: $("pl-loop"), a: $("pl-loop-a"), b: $("pl-loop-b") };
  const head = $("pl-head"), shade = $("pl-shade");
  const stems = D.stems.map((s, i) => ({ ...s, i, mute: false, solo: false, db: 0 }));
  let listen = "stems", engine = null, runs = 0, timer = 0;
  const gainOf = (db) => Math.pow(10, db / 20);
  const clock = (s) => {
    const m = Math.floor(s / 60);
    return m + ":" + (s - 60 * m).toFixed(2).padStart(5, "0");
  };
  const audible = (t) => !t.mute && (!stems.some((x) => x.solo) || t.solo);
  const level = (t) => (audible(t) ? gainOf(t.db) : 0);
  const range = () => {
    const a = Math.max(0, +loop.a.value || 0);
    const b = Math.min(D.duration, +loop.b.value || D.duration);
    return b > a ? [a, b] : [0, D.duration];
  };

  function bytes(id) {
    const text = $(id).textContent.trim();
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text).buffer;
    const bin = atob(text), u = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return u.buffer;
  }

  class WebAudio {
    async load() {
      const ctx = (this.ctx = new AudioContext({ sampleRate: D.rate, latencyHint: "playback" }));
      this.buffers = {};
      const srcs = [...new Set([...stems, D.mix, D.reference].filter(Boolean).map((t) => t.src))];
      await Promise.all(srcs.map(async (src) => {
        this.buffers[src] = await ctx.decodeAudioData(bytes(src));
      }));
      this.bus = ctx.createGain();
      this.bus.connect(ctx.destination);
      for (const t of stems) {
        t.node = ctx.createGain();
        t.node.connect(this.bus);
      }
      if (D.mix) {
        this.mix = ctx.createGain();
        this.mix.connect(ctx.destination);
      }
      this.sources = [];
      this.t0 = 0;
      this.off = 0;
      this.apply(true);
    }
    apply(now) {
      const set = (param, v) => now ? (param.value = v)
        : param.setTargetAtTime(v, this.ctx.currentTime, 0.008);
      for (const t of stems) set(t.node.gain, level(t));
      set(this.bus.gain, listen === "stems" || !this.mix ? 1 : 0);
      if (this.mix) set(this.mix.gain, listen === "mix" ? 1 : 0);
    }
    get playing() { return this.sources.length > 0; }
    position() {
      if (!this.playing) return this.off;
      let p = this.off + this.ctx.currentTime - this.t0;
      const [a, b] = range();
      if (loop.on.checked && this.off < b && p >= b) p = a + ((p - a) % (b - a));
      return Math.min(p, D.duration);
    }
    async play(at) {
      this.stop();
      await this.ctx.resume();
      const [a, b] = range();
      if (loop.on.checked && (at < a || at >= b)) at = a;
      const when = this.ctx.currentTime + 0.06;
      const start = (buffer, node) => {
        const s = this.ctx.createBufferSource();
        s.buffer = buffer;
        s.loop = loop.on.checked;
        s.loopStart = a;
        s.loopEnd = b;
        s.connect(node);
        s.start(when, at);
        this.sources.push(s);
        return s;
      };
      for (const t of stems) start(this.buffers[t.src], t.node);
      if (this.mix) start(this.buffers[D.mix.src], this.mix);
      this.t0 = when;
      this.off = at;
      this.sources[0].onended = () => { if (this.playing && !loop.on.checked) ui.ended(); };
    }
    stop() {
      const p = this.position();
      for (const s of this.sources) { s.onended = null; s.stop(); }
      this.sources = [];
      this.off = p >= D.duration ? 0 : p;
    }
    seek(t) { if (this.playing) this.play(t); else this.off = t; }
  }

  class Linked {
    async load() {
      const all = [...stems, ...(D.mix ? [D.mix] : [])];
      this.els = all.map((t) => { const el = new Audio(); el.preload = "auto"; el.src = t.src;
        t.el = el; return el; });
      await Promise.all(this.els.map((el) => new Promise((ok, fail) => {
        el.addEventListener("loadedmetadata", ok, { once: true });
        const failed = () => fail(new Error("cannot open " + el.src));
        el.addEventListener("error", failed, { once: true });
      })));
      this.els[0].addEventListener("timeupdate", () => {
        const [a, b] = range();
        if (loop.on.checked && this.els[0].currentTime >= b) this.seek(a);
      });
      this.els[0].addEventListener("ended", () => ui.ended());
      this.apply();
    }
    apply() {
      for (const t of stems) t.el.volume = Math.min(1, listen === "mix" && D.mix ? 0 : level(t));
      if (D.mix) D.mix.el.volume = listen === "mix" ? 1 : 0;
    }
    get playing() { return !this.els[0].paused; }
    position() { return this.els[0].currentTime; }
    play(at) { this.seek(at); return Promise.all(this.els.map((el) => el.play())); }
    stop() { for (const el of this.els) el.pause(); }
    seek(t) { for (const el of this.els) el.currentTime = t; }
  }

  async function nullCheck() {
    const id = ++runs;
    out.dataset.state = "running";
    const ref = engine.buffers[D.reference.src];
    const n = ref.length, channels = ref.numberOfChannels;
    const off = new OfflineAudioContext(channels, n, D.rate);
    const on = stems.filter((t) => level(t) > 0);
    for (const t of on) {
      const s = off.createBufferSource(), g = off.createGain();
      s.buffer = engine.buffers[t.src];
      g.gain.value = level(t);
      s.connect(g);
      if (s.buffer.numberOfChannels === 1 && channels > 1) {
        const m = off.createChannelMerger(channels);
        for (let c = 0; c < channels; c++) g.connect(m, 0, c);
        m.connect(off.destination);
      } else g.connect(off.destination);
      s.start(0);
    }
    const sum = await off.startRendering();
    if (id !== runs) return;
    let peak = 0, energy = 0;
    for (let c = 0; c < channels; c++) {
      const r = ref.getChannelData(c), s = sum.getChannelData(c);
      for (let i = 0; i < n; i++) {
        const d = r[i] - s[i], a = Math.abs(d);
        energy += d * d;
        if (a > peak) peak = a;
      }
    }
    const db = (v) => (v > 0 ? 20 * Math.log10(v) : -Infinity);
    const rms = db(Math.sqrt(energy / Math.max(n * channels, 1)));
    const lag = on.length ? lagOf(ref.getChannelData(0), sum.getChannelData(0)) : null;
    Object.assign(out.dataset, { state: "done", run: String(id), dbfs: String(db(peak)),
      rms: String(rms), lag: lag === null ? "" : String(lag),
      audible: on.map((t) => t.name).join("|"),
      length: String(sum.length) });
    const f1 = (v) => (isFinite(v) ? v.toFixed(1) : "-inf");
    out.textContent = `Σ ${on.length} of ${stems.length} stems − ${D.reference.name}: ` +
      "residual peak " +
      `${f1(db(peak))} dBFS, RMS ${f1(rms)} dBFS` + (lag === null ? "" : `, lag ${lag} samples`);
    const detail = document.createElement("span");
    detail.className = "sub";
    detail.textContent = ` (${sum.length} samples at ${sum.sampleRate} Hz, decoded here)`;
    out.append(detail);
  }

  function lagOf(ref, sum) {
    let c = 0;
    for (let i = 1; i < ref.length; i++) if (Math.abs(ref[i]) > Math.abs(ref[c])) c = i;
    const half = 4096, max = 1024;
    const a = Math.max(max, c - half), b = Math.min(ref.length - max, c + half);
    let best = 0, score = -Infinity;
    for (let lag = -max; lag <= max; lag++) {
      let acc = 0, energy = 0;
      for (let i = a; i < b; i++) {
        const v = sum[i + lag];
        acc += ref[i] * v;
        energy += v * v;
      }
      const r = energy > 0 ? acc / Math.sqrt(energy) : 0;
      if (r > score) { score = r; best = lag; }
    }
    return best;
  }

  const ui = {
    play: $("pl-play"),
    sync() {
      this.play.textContent = engine && engine.playing ? "❚❚ Pause" : "▶ Play";
      for (const t of stems) {
        const row = document.querySelector(`[data-stem="${t.i}"]`);
        row.querySelector(".pl-m").setAttribute("aria-pressed", String(t.mute));
        row.querySelector(".pl-s").setAttribute("aria-pressed", String(t.solo));
        row.querySelector(".pl-db").textContent = (t.db > 0 ? "+" : "") + t.db.toFixed(1) + " dB";
        row.classList.toggle("pl-off", !audible(t));
      }
      for (const b of document.querySelectorAll("[data-listen]"))
        b.setAttribute("aria-pressed", String(b.dataset.listen === listen));
    },
    ended() { engine.stop(); engine.off = 0; this.sync(); },
    place(el, a, b) {
      const lane = "(100% - var(--ctl))";
      el.style.left = `calc(var(--ctl) + ${lane} * ${a / D.duration})`;
      if (b !== undefined) el.style.width = `calc(${lane} * ${(b - a) / D.duration})`;
    },
    tick() {
      if (engine) {
        const p = engine.position();
        pos.textContent = clock(p);
        if (document.activeElement !== seek) seek.value = String(p);
        this.place(head, p);
      }
      requestAnimationFrame(() => ui.tick());
    },
  };

  function changed() {
    engine.apply(false);
    ui.sync();
    if (engine instanceof WebAudio && D.reference) {
      clearTimeout(timer);
      timer = setTimeout(() => nullCheck().catch(report), 120);
    }
  }
  const report = (e) => { status.textContent = "The player stopped: " + e.message; };

  function wire() {
    ui.play.addEventListener("click", async () => {
      if (engine.playing) engine.stop(); else await engine.play(engine.position());
      ui.sync();
    });
    seek.addEventListener("input", () => {
      engine.seek(+seek.value);
      pos.textContent = clock(+seek.value);
    });
    const looped = () => {
      const [a, b] = range();
      shade.hidden = !loop.on.checked;
      ui.place(shade, a, b);
    };
    for (const el of [loop.on, loop.a, loop.b])
      el.addEventListener("change", () => {
        looped();
        if (engine.playing) engine.play(engine.position());
      });
    for (const lane of document.querySelectorAll(".pl-lane"))
      lane.addEventListener("click", (e) => {
        const r = lane.getBoundingClientRect();
        engine.seek(Math.max(0, Math.min(1, (e.clientX - r.left) / r.width)) * D.duration);
      });
    for (const b of document.querySelectorAll("[data-listen]"))
      b.addEventListener("click", () => { listen = b.dataset.listen; changed(); });
    for (const t of stems) {
      const row = document.querySelector(`[data-stem="${t.i}"]`);
      row.querySelector(".pl-m").addEventListener("click", () => { t.mute = !t.mute; changed(); });
      row.querySelector(".pl-s").addEventListener("click", () => { t.solo = !t.solo; changed(); });
      row.querySelector(".pl-level").addEventListener("input", (e) => {
        t.db = +e.target.value;
        changed();
      });
    }
    const run = $("pl-null");
    if (run) run.addEventListener("click", () => nullCheck().catch(report));
  }

  async function start() {
    engine = D.mode === "link" ? new Linked() : new WebAudio();
    status.textContent = D.mode === "link" ? "Opening the package's files…" :
      `Decoding ${D.files} files (${D.codec})…`;
    await engine.load();
    wire();
    ui.play.disabled = false;
    ui.sync();
    ui.tick();
    status.textContent = D.mode === "link"
      ? "Ready (linked files, started together; not sample-locked)."
      : `Ready: ${D.files} files decoded at ${engine.ctx.sampleRate} Hz, ` +
        "every stem started on one clock.";
    document.body.dataset.player = "ready";
    if (engine instanceof WebAudio && D.reference) await nullCheck();
  }
  start().catch(report);
})();
"""
"""The stem player (module header)."""
