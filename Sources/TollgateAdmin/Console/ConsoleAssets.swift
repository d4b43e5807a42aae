/// The console's page, script and style, served from the binary (no CDN: it works offline). The
/// script builds every element with `textContent`/`setAttribute`, never `innerHTML`: client-chosen
/// text (paths, User-Agents) is shown as text whatever it contains. Charts are SVG drawn here.
enum ConsoleAssets {
    static let login = """
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><title>Tollgate console · log in</title>
    <meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/console/console.css"></head>
    <body class="login"><main>
    <h1>Tollgate console</h1>
    <form method="post" action="/console/login">
      <label for="token">Admin token (scope read; write to ban and pause)</label>
      <input id="token" name="token" type="password" autocomplete="off" required placeholder="tg_adm_…">
      <button id="login" type="submit">Log in</button>
      <p id="failed" hidden>That token is not an active admin token with the read scope.</p>
    </form>
    <p class="hint">Create one with <code>tollgate admin-tokens create --scopes read,write</code>. The browser keeps only a session cookie, never the token.</p>
    </main><script src="/console/console.js"></script></body></html>
    """

    static let dashboard = """
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><title>Tollgate console</title>
    <meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/console/console.css"></head>
    <body class="dashboard">
    <header><h1>Tollgate</h1><span id="updated">connecting…</span>
      <span class="spacer"></span>
      <button id="kill-switch" type="button" class="danger">Pause all upstream calls</button>
      <form method="post" action="/console/logout"><button type="submit">Log out</button></form></header>
    <main>
    <section class="cards">
      <div class="card"><span class="label">passed (1 h)</span><span id="total-passed" class="big">–</span></div>
      <div class="card"><span class="label">refused (1 h)</span><span id="total-refused" class="big">–</span></div>
      <div class="card"><span class="label">from cache (1 h)</span><span id="total-cached" class="big">–</span></div>
      <div class="card"><span class="label">paid calls per sign-up (1 h)</span><span id="calls-per-signup" class="big">–</span></div>
      <div class="card"><span class="label">saved by the cache today</span><span id="cache-saved" class="big">–</span></div>
    </section>
    <section><h2>Requests by decision, last hour</h2><div id="chart"></div><p id="legend"></p><p id="reasons"></p></section>
    <section><h2>Budgets</h2><table id="budgets"><thead><tr><th>budget</th><th>scope</th><th>spent</th><th>limit</th><th></th><th>cap reached at this pace</th><th>resets</th></tr></thead><tbody></tbody></table></section>
    <div class="columns">
    <section><h2>Top clients (24 h)</h2><table id="top-clients"><thead><tr><th>client</th><th>calls</th><th>refusals</th><th></th></tr></thead><tbody></tbody></table></section>
    <section><h2>Top keys (24 h)</h2><table id="top-keys"><thead><tr><th>key</th><th>calls</th><th>refusals</th><th></th></tr></thead><tbody></tbody></table></section>
    <section id="domains-section" hidden><h2>Email domains (24 h)</h2><table id="domains"><thead><tr><th>domain</th><th>links asked</th><th>links opened</th><th>addresses</th><th>paid calls</th><th>blocked</th><th></th></tr></thead><tbody></tbody></table></section>
    <section><h2>Countries (since start)</h2><table id="countries"><thead><tr><th>country</th><th>calls</th><th>refusals</th></tr></thead><tbody></tbody></table></section>
    </div>
    <section><h2>Recent refusals</h2><table id="recent"><thead><tr><th>time</th><th>client</th><th>request</th><th>user agent</th><th>status</th><th>by</th></tr></thead><tbody></tbody></table></section>
    <div class="columns">
    <section><h2>Alerts</h2><ul id="alerts"></ul></section>
    <section><h2>Bans in force</h2><table id="bans"><thead><tr><th>id</th><th>kind</th><th>value</th><th>until</th><th>by</th></tr></thead><tbody></tbody></table></section>
    </div>
    <p id="error" hidden></p>
    </main><script src="/console/console.js"></script></body></html>
    """

    static let style = """
    :root { --bg: #f6f7f9; --fg: #1b1f24; --muted: #5b6470; --card: #fff; --line: #d8dde3; --pass: #2f7d4f; --refuse: #c0392b; --cache: #2c6db3; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 14px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
    header { display: flex; align-items: center; gap: 12px; padding: 10px 20px; background: #1b1f24; color: #fff; }
    header h1 { font-size: 18px; margin: 0; } header form { margin: 0; } .spacer { flex: 1; }
    #updated { color: #aab2bd; font-size: 12px; }
    main { padding: 16px 20px; max-width: 1200px; margin: 0 auto; }
    h2 { font-size: 15px; margin: 18px 0 8px; }
    .cards { display: flex; flex-wrap: wrap; gap: 12px; }
    .card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 170px; }
    .label { display: block; color: var(--muted); font-size: 12px; } .big { font-size: 24px; font-weight: 600; }
    .columns { display: flex; flex-wrap: wrap; gap: 20px; } .columns section { flex: 1; min-width: 300px; }
    table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); }
    th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); font-size: 13px; vertical-align: top; }
    td.text { font-family: ui-monospace, monospace; word-break: break-all; max-width: 320px; }
    button { font: inherit; padding: 3px 10px; border: 1px solid var(--line); border-radius: 4px; background: #fff; cursor: pointer; }
    button.danger { background: var(--refuse); color: #fff; border-color: var(--refuse); } button.resume { background: var(--pass); color: #fff; }
    #chart svg { width: 100%; height: 180px; background: var(--card); border: 1px solid var(--line); }
    .bar { height: 8px; background: var(--line); border-radius: 4px; min-width: 80px; } .bar span { display: block; height: 8px; border-radius: 4px; background: var(--pass); }
    .bar.hot span { background: var(--refuse); }
    #alerts li.firing { color: var(--refuse); } #alerts li.recovered { color: var(--pass); }
    #error { color: var(--refuse); }
    body.login main { max-width: 420px; margin-top: 10vh; } body.login form { display: grid; gap: 8px; }
    body.login input { font: inherit; padding: 6px; } .hint { color: var(--muted); font-size: 12px; } #failed { color: var(--refuse); }
    """

    static let script = #"""
    "use strict";
    (function () {
      const $ = (id) => document.getElementById(id);
      if (document.body.classList.contains("login")) {
        if (location.search.indexOf("failed") >= 0) $("failed").hidden = false;
        return;
      }
      const SVG = "http://www.w3.org/2000/svg";
      function el(tag, text, attrs) {
        const e = document.createElement(tag);
        if (text !== undefined && text !== null) e.textContent = String(text);
        for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
        return e;
      }
      function row(cells) {
        const tr = document.createElement("tr");
        for (const c of cells) {
          if (c instanceof Node) { const td = document.createElement("td"); td.append(c); tr.append(td); }
          else if (c && c.text !== undefined) tr.append(el("td", c.text, { class: "text" }));
          else tr.append(el("td", c));
        }
        return tr;
      }
      function fill(id, rows) { const body = $(id).tBodies[0]; body.replaceChildren(...rows); }
      async function post(path, body) {
        const r = await fetch(path, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
                                      body: JSON.stringify(body || {}) });
        if (!r.ok) { const p = await r.json().catch(() => ({})); showError((p.detail || "the write failed") + " (" + r.status + ")"); }
        poll();
      }
      function showError(text) { const e = $("error"); e.textContent = text; e.hidden = !text; }
      function banButton(value) {
        const b = el("button", "Ban 1 h", { type: "button", class: "ban", "data-value": value });
        b.addEventListener("click", () => post("/console/api/bans",
          { kind: value.indexOf("/") >= 0 ? "prefix" : "address", value: value, duration_seconds: 3600, reason: "console" }));
        return b;
      }
      function keyBanButton(id) {
        const b = el("button", "Ban key", { type: "button", class: "ban-key", "data-value": id });
        b.addEventListener("click", () => post("/console/api/bans", { kind: "key", value: id, reason: "console" }));
        return b;
      }
      function domainBanButton(domain) {
        const b = el("button", "Block 24 h", { type: "button", class: "ban-domain", "data-value": domain });
        b.addEventListener("click", () => post("/console/api/bans", { kind: "domain", value: domain, duration_seconds: 86400, reason: "console" }));
        return b;
      }
      function chart(series) {
        const cols = series.columns, idx = (n) => cols.indexOf(n);
        const refusalCols = cols.map((c, i) => i).filter((i) => i >= 4 && cols[i].indexOf("status:") !== 0);
        const points = series.buckets.map((b) => ({ t: b[0], passed: b[1 + idx("passed")],
          cached: b[1 + idx("cached")], refused: refusalCols.reduce((s, i) => s + b[1 + i], 0) }));
        const max = Math.max(1, ...points.map((p) => Math.max(p.passed, p.cached, p.refused)));
        const w = 1000, h = 160, step = w / Math.max(1, points.length - 1);
        const svg = document.createElementNS(SVG, "svg");
        svg.setAttribute("viewBox", "0 0 " + w + " " + (h + 20));
        svg.setAttribute("role", "img");
        const title = document.createElementNS(SVG, "title");
        const sums = { passed: 0, refused: 0, cached: 0 };
        for (const p of points) { sums.passed += p.passed; sums.refused += p.refused; sums.cached += p.cached; }
        title.textContent = "passed " + sums.passed + ", refused " + sums.refused + ", cached " + sums.cached;
        svg.append(title);
        for (const [name, color] of [["passed", "#2f7d4f"], ["refused", "#c0392b"], ["cached", "#2c6db3"]]) {
          const line = document.createElementNS(SVG, "polyline");
          line.setAttribute("fill", "none"); line.setAttribute("stroke", color); line.setAttribute("stroke-width", "2");
          line.setAttribute("data-series", name); line.setAttribute("data-total", String(sums[name]));
          line.setAttribute("points", points.map((p, i) => (i * step).toFixed(1) + "," + (h - (p[name] / max) * (h - 10)).toFixed(1)).join(" "));
          svg.append(line);
        }
        const label = document.createElementNS(SVG, "text");
        label.setAttribute("x", "4"); label.setAttribute("y", String(h + 16)); label.setAttribute("font-size", "12");
        label.textContent = "max " + max + " per " + series.bucket_seconds + " s; the last hour, oldest on the left";
        svg.append(label);
        $("chart").replaceChildren(svg);
        $("legend").textContent = "passed " + sums.passed + " · refused " + sums.refused + " · cached " + sums.cached;
      }
      function render(d) {
        $("updated").textContent = "updated " + d.now;
        $("total-passed").textContent = d.totals.passed;
        $("total-refused").textContent = d.totals.refused;
        $("total-cached").textContent = d.totals.cached;
        $("calls-per-signup").textContent = d.calls_per_signup === null ? "no sign-ups" : d.calls_per_signup;
        $("cache-saved").textContent = d.cache_today ? d.cache_today.saved + " (" + d.cache_today.hits + " hits)" : "–";
        chart(d.series);
        $("reasons").textContent = "refused by: " + (Object.entries(d.totals.by_reason).map(([k, v]) => k + " " + v).join(", ") || "nothing");
        fill("budgets", d.budgets.map((b) => {
          const bar = el("div", null, { class: "bar" + (b.percent >= 80 ? " hot" : "") });
          const fillBar = el("span", null, {}); fillBar.style.width = Math.min(100, b.percent) + "%"; bar.append(fillBar);
          return row([b.name, b.scope, b.spent, b.limit, bar, b.cap_reached_at || "not this period", b.resets_at]);
        }));
        fill("top-clients", (d.top_clients || []).map((c) => { const r = row([{ text: c.key }, c.calls, c.refusals, banButton(c.key)]); r.setAttribute("data-client", c.key); return r; }));
        fill("top-keys", (d.top_keys || []).map((k) => row([{ text: k.key }, k.calls, k.refusals, keyBanButton(k.key)])));
        $("domains-section").hidden = !(d.top_domains && d.top_domains.length);
        fill("domains", (d.top_domains || []).map((m) => row([{ text: m.domain }, m.requested, m.confirmed, m.addresses, m.calls,
                                                             m.blocked_until || "", m.blocked_until ? "" : domainBanButton(m.domain)])));
        fill("countries", d.countries.map((c) => row([c.country, c.calls, c.refusals])));
        fill("recent", d.recent_refusals.map((r) => row([r.at.slice(11, 19), { text: r.client }, { text: r.method + " " + r.path },
                                                          { text: r.user_agent }, r.status, r.reason])));
        $("alerts").replaceChildren(...(d.alerts.length ? d.alerts.map((a) => el("li", a.at.slice(11, 19) + " " + a.rule + ": " + a.text, { class: a.state }))
                                                         : [el("li", "none")]));
        fill("bans", (d.bans || []).map((b) => row([b.id, b.kind, { text: b.value }, b.expires_at || "removed by hand", { text: b.created_by }])));
        const paused = (d.paused || []).indexOf("*") >= 0;
        const kill = $("kill-switch");
        kill.textContent = paused ? "Resume upstream calls" : "Pause all upstream calls";
        kill.className = paused ? "resume" : "danger";
        kill.dataset.paused = paused ? "yes" : "no";
        showError("");
      }
      async function poll() {
        try {
          const r = await fetch("/console/api/overview", { credentials: "same-origin" });
          if (r.status === 401) { location.reload(); return; }
          render(await r.json());
        } catch (e) { showError("cannot reach the gateway: " + e); }
      }
      $("kill-switch").addEventListener("click", () => {
        const paused = $("kill-switch").dataset.paused === "yes";
        post("/console/api/routes/all/" + (paused ? "resume" : "pause"));
      });
      poll();
      setInterval(poll, 2000);
    })();
    """#
}
